// The worker's operational endpoints, at the root of a self-hosted worker's port (never under the
// function's route, so the Ingress, which exposes only /twilio-voice, does not publish them):
//   GET /healthz  live: the process answers (200), nothing checked, nothing read.
//   GET /readyz   503 while draining or while the database is unreachable; the database check is
//                 one bounded read at most every READY_CHECK_INTERVAL_MS, its answer cached, so a
//                 probe (or an attacker hammering it) never costs a query of its own.
//   GET /metrics  Prometheus text (metrics.ts). With METRICS_TOKEN set, only with
//                 `Authorization: Bearer <METRICS_TOKEN>`; without it, only off Supabase's Edge
//                 Runtime (on Edge these paths never reach the function, but a token is the only
//                 way a scrape of a hosted worker would be allowed). The metrics carry counts only:
//                 no tenant, number, call id or secret.

import { EXPOSITION_CONTENT_TYPE, type Registry } from "./metrics.ts";
import { timingSafeEqual } from "./twilio_signature.ts";

export const HEALTH_PATH = "/healthz";
export const READY_PATH = "/readyz";
export const METRICS_PATH = "/metrics";
const OPS_PATHS = new Set([HEALTH_PATH, READY_PATH, METRICS_PATH]);

// A probe every few seconds sees a database outage within ~5 s, and a fleet of workers costs the
// database one cheap read per worker per interval.
export const READY_CHECK_INTERVAL_MS = 5_000;
// A read slower than this counts as unreachable: the probe's own timeout is a few seconds.
export const READY_CHECK_TIMEOUT_MS = 2_000;

export interface OpsDeps {
  registry: Registry;
  draining(): boolean;
  /** One cheap read of the database; rejects (or never settles) when it is unreachable. */
  pingDatabase(): Promise<unknown>;
  metricsToken: string | null;
  /** True on Supabase's Edge Runtime: no token, no /metrics. */
  onEdge: boolean;
  now: () => number;
  readyCheckIntervalMs?: number;
  readyCheckTimeoutMs?: number;
}

export interface OpsEndpoints {
  /** The answer for an ops path, or null when the request is not one of them. */
  handle(request: Request): Promise<Response> | null;
}

export function createOpsEndpoints(deps: OpsDeps): OpsEndpoints {
  const interval = deps.readyCheckIntervalMs ?? READY_CHECK_INTERVAL_MS;
  const timeout = deps.readyCheckTimeoutMs ?? READY_CHECK_TIMEOUT_MS;
  let databaseReachable = false;
  let checkedAt = -Infinity;
  let checking: Promise<void> | null = null;

  function checkDatabase(): Promise<void> {
    if (checking) return checking;
    checkedAt = deps.now();
    let timer: number | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("database check timed out")), timeout);
    });
    checking = Promise.race([deps.pingDatabase(), timedOut]).then(
      () => void (databaseReachable = true),
      () => void (databaseReachable = false),
    ).finally(() => {
      clearTimeout(timer);
      checking = null;
    });
    return checking;
  }

  async function ready(): Promise<Response> {
    if (deps.draining()) return plain(503, "draining");
    // The first probe waits for the first check; later ones answer from the cache and refresh
    // it in the background, so a probe never waits longer than the check's own bound.
    if (checkedAt === -Infinity) await checkDatabase();
    else if (deps.now() - checkedAt >= interval) void checkDatabase();
    if (deps.draining()) return plain(503, "draining");
    return databaseReachable ? plain(200, "ready") : plain(503, "database unreachable");
  }

  function metrics(request: Request): Response {
    if (deps.metricsToken !== null) {
      const given = request.headers.get("authorization") ?? "";
      if (!timingSafeEqual(given, `Bearer ${deps.metricsToken}`)) return plain(401, "bearer token required");
    } else if (deps.onEdge) {
      return plain(404, "not found");
    }
    return new Response(deps.registry.render(), { headers: { "content-type": EXPOSITION_CONTENT_TYPE } });
  }

  return {
    handle(request) {
      const path = new URL(request.url).pathname;
      if (!OPS_PATHS.has(path)) return null;
      if (request.method !== "GET" && request.method !== "HEAD") {
        return Promise.resolve(plain(405, "method not allowed"));
      }
      if (path === HEALTH_PATH) return Promise.resolve(plain(200, "ok"));
      if (path === READY_PATH) return ready();
      return Promise.resolve(metrics(request));
    },
  };
}

function plain(status: number, body: string): Response {
  return new Response(body + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}
