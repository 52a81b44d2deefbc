// Entry point of the twilio-voice Edge Function. The same file runs on Supabase's Edge Runtime
// (Deno 2.1) and on plain Deno (`deno run -A index.ts`, listening on PORT, default 8000).

import { createApp, turnStoreWriters } from "./app.ts";
import { type Config, ConfigError, loadConfig } from "./config.ts";
import { claimingAs, createCrashResumer, startWorkerLease } from "./crash_resume.ts";
import { createLogger, errorMessage, type Logger } from "./log.ts";
import type { StoreBackend } from "./store.ts";
import { createPostgresBackend } from "./store_postgres.ts";
import { createRestBackend } from "./store_rest.ts";
import { TurnStore } from "./turn_store.ts";
import { toolRunner } from "./tool_runner.ts";
import { createSqlToolPool } from "./tool_sql.ts";

// Supabase counts a worker's wall clock from the worker's start, and a worker serves many calls:
// the handoff budget runs from here (module evaluation, as early as this code can see). See
// handoff.ts for why plain Deno counts per stream instead.
const WORKER_STARTED_AT = performance.now();

/** What Supabase's Edge Runtime adds to the global scope; absent on plain Deno. */
interface EdgeRuntimeApi {
  waitUntil(promise: Promise<unknown>): void;
}

// On beforeunload the runtime is about to end the worker (wall clock, CPU or memory limit): live
// calls are handed off to a fresh worker, and the writes have to land within its short grace period.
const SHUTDOWN_FLUSH_MS = 2_000;
// SIGTERM on a self-hosted worker: every live call is handed off at its next quiet moment, forced
// after DRAIN_QUIET_WAIT_MS (12 s, handoff.ts; a handoff also waits for a running tool), then the
// turn store is flushed and the process exits. Matches DRAIN_BOUND_S in supactl/selfhost/manifests.py (the pod's grace period covers it
// plus the flush).
const DRAIN_BOUND_MS = 30_000;

const edgeRuntime = (globalThis as { EdgeRuntime?: EdgeRuntimeApi }).EdgeRuntime;

function openBackend(config: Config): StoreBackend {
  return config.turnStore === "postgres"
    ? createPostgresBackend(config.supabaseDbUrl!)
    : createRestBackend(config.supabaseUrl!, config.supabaseServiceRoleKey!);
}

function secretsOf(config: Config): (string | null)[] {
  const dbPassword = config.supabaseDbUrl ? safeUrlPassword(config.supabaseDbUrl) : null;
  return [
    config.twilioAuthToken,
    config.openaiApiKey,
    config.supabaseServiceRoleKey,
    config.supabaseDbUrl,
    dbPassword,
  ];
}

// A short password (the local stack's "postgres") is no secret, and masking it would mask every
// "postgres" in the log; real database passwords are long.
const MIN_MASKED_PASSWORD = 12;

function safeUrlPassword(url: string): string | null {
  try {
    const password = decodeURIComponent(new URL(url).password);
    return password.length >= MIN_MASKED_PASSWORD ? password : null;
  } catch {
    return null;
  }
}

function serveMisconfigured(error: ConfigError, log: Logger): void {
  log.error("config.invalid", { message: error.message });
  if (!edgeRuntime) Deno.exit(1);
  // On Supabase, answer every request with the variable names to fix (never their values).
  Deno.serve(() => new Response(error.message + "\n", { status: 500 }));
}

function main(): void {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) return serveMisconfigured(error, createLogger());
    throw error;
  }
  const log = createLogger({ secrets: secretsOf(config) });
  const backend = openBackend(config);
  const turnStore = new TurnStore(backend, { logger: log });
  // SQL tools need a database connection: with TURN_STORE=rest they run only when SUPABASE_DB_URL
  // is set too (otherwise such a tool answers the model an error).
  const sqlTools = config.supabaseDbUrl ? createSqlToolPool(config.supabaseDbUrl) : null;
  const runTool = toolRunner({
    signingKey: (tenantId) => backend.toolSigningKey(tenantId),
    sql: sqlTools?.execute ?? null,
    privateHostsAllowed: config.toolUrlsAllowPrivate,
  });
  // A plain-Deno worker (a self-hosted fleet) holds a lease, so a crash's calls resume elsewhere
  // (crash_resume.ts). On the Edge Runtime no timer may keep an idle worker alive: its claims name
  // no worker, and a crash there apologises as before.
  const lease = edgeRuntime ? null : startWorkerLease(backend, log);
  const app = createApp({
    runTool,
    config,
    store: lease ? claimingAs(backend, lease.workerId) : backend,
    // Hosted workers' rows name no worker, so waiting for a lease there would only delay the apology.
    resumeCrashed: lease ? createCrashResumer(backend) : undefined,
    log,
    openWriter: turnStoreWriters(turnStore),
    waitUntil: edgeRuntime ? (promise) => edgeRuntime.waitUntil(promise) : undefined,
    workerStartedAt: edgeRuntime ? WORKER_STARTED_AT : null,
    turnStoreCounts: () => ({ pending: turnStore.pending, dropped: turnStore.dropped }),
    onEdge: edgeRuntime !== undefined,
  });

  const shutdown = async (reason: string) => {
    log.warn("worker.shutdown", { reason, active_calls: app.activeCalls });
    try {
      await Promise.race([
        app.shutdown(reason),
        new Promise((resolve) => setTimeout(resolve, SHUTDOWN_FLUSH_MS)),
      ]);
      await turnStore.flush(SHUTDOWN_FLUSH_MS);
    } catch (error) {
      log.error("worker.shutdown_failed", { message: errorMessage(error) });
    }
  };
  // A socket error in one call (postgres.js under Deno can raise "write UNKNOWN" on a connection
  // the server reset) must not end the worker and every other call on it.
  globalThis.addEventListener("error", (event) => {
    event.preventDefault();
    log.error("worker.uncaught_error", { message: errorMessage(event.error ?? event.message) });
  });
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    log.error("worker.unhandled_rejection", { message: errorMessage(event.reason) });
  });
  globalThis.addEventListener("beforeunload", (event) => {
    const reason = (event as CustomEvent<{ reason?: string }>).detail?.reason ?? "unload";
    const flushed = shutdown(String(reason));
    edgeRuntime?.waitUntil(flushed);
  });

  if (edgeRuntime) {
    Deno.serve((request) => app.handle(request));
    return;
  }
  const server = Deno.serve({
    port: config.port,
    hostname: config.host,
    onListen: ({ hostname, port }) =>
      log.info("server.listening", { hostname, port, turn_store: config.turnStore }),
  }, (request) => app.handle(request));
  // Plain Deno gets no beforeunload on a signal: drain before a container stops (/readyz 503 and no
  // new stream at once; live calls handed off, and another instance behind the same URL answers
  // Twilio's connect action).
  const drain = async (signal: string) => {
    const startedAt = performance.now();
    log.warn("worker.drain_started", { signal, active_calls: app.activeCalls });
    await Promise.race([app.drain(), new Promise((resolve) => setTimeout(resolve, DRAIN_BOUND_MS))]);
    await shutdown(signal);
    log.warn("worker.drained", {
      drain_ms: Math.round(performance.now() - startedAt),
      active_calls: app.activeCalls,
      turn_store_pending: turnStore.pending,
    });
  };
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, async () => {
        if (stopping) return;
        stopping = true;
        await drain(signal);
        // Only now, every call handed off and flushed: a call still here becomes resumable at once.
        await lease?.release().catch((error) =>
          log.warn("worker.lease_release_failed", { message: errorMessage(error) })
        );
        await server.shutdown();
        await backend.close();
        await sqlTools?.close();
        Deno.exit(0);
      });
    } catch {
      // Not every platform has every signal (Windows has no SIGTERM listener).
    }
  }
}

main();
