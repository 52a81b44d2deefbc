import assert from "node:assert/strict";
import { Registry } from "./metrics.ts";
import { createOpsEndpoints, type OpsDeps } from "./ops_endpoints.ts";

const TOKEN = "a-metrics-token-of-enough-length";

function endpoints(overrides: Partial<OpsDeps> = {}) {
  let now = 0;
  let pings = 0;
  let reachable = true;
  let draining = false;
  const registry = new Registry();
  const ops = createOpsEndpoints({
    registry,
    draining: () => draining,
    pingDatabase: () => {
      pings++;
      return reachable ? Promise.resolve(null) : Promise.reject(new Error("connection refused"));
    },
    metricsToken: null,
    onEdge: false,
    now: () => now,
    readyCheckIntervalMs: 1_000,
    readyCheckTimeoutMs: 50,
    ...overrides,
  });
  const get = async (path: string, headers: HeadersInit = {}) => {
    const response = await ops.handle(new Request(`http://worker${path}`, { headers }));
    assert.ok(response, `${path} is an ops path`);
    return { status: response.status, body: await response.text() };
  };
  return {
    ops,
    get,
    pings: () => pings,
    advance: (ms: number) => now += ms,
    setReachable: (value: boolean) => reachable = value,
    drain: () => draining = true,
  };
}

Deno.test("healthz is live; other paths are not the ops endpoints' to answer", async () => {
  const worker = endpoints();
  assert.equal((await worker.get("/healthz")).status, 200);
  assert.equal(worker.ops.handle(new Request("http://worker/twilio-voice")), null);
  const post = await worker.ops.handle(new Request("http://worker/readyz", { method: "POST" }));
  assert.equal(post!.status, 405);
  assert.equal(worker.pings(), 0, "liveness reads nothing");
});

Deno.test("readyz: one cached, bounded database check per interval, 503 when unreachable or draining", async () => {
  const worker = endpoints();
  assert.deepEqual(await worker.get("/readyz"), { status: 200, body: "ready\n" });
  for (let i = 0; i < 20; i++) await worker.get("/readyz");
  assert.equal(worker.pings(), 1, "probes within the interval answer from the cache");
  worker.setReachable(false);
  worker.advance(1_000);
  await worker.get("/readyz"); // starts the refresh, answers the cached value
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(await worker.get("/readyz"), { status: 503, body: "database unreachable\n" });
  assert.equal(worker.pings(), 2);
  worker.setReachable(true);
  worker.advance(1_000);
  await worker.get("/readyz");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal((await worker.get("/readyz")).status, 200);
  worker.drain();
  assert.deepEqual(await worker.get("/readyz"), { status: 503, body: "draining\n" });
});

Deno.test("readyz: a database that never answers is unreachable after the check's timeout", async () => {
  const worker = endpoints({ pingDatabase: () => new Promise(() => {}) });
  const started = performance.now();
  assert.deepEqual(await worker.get("/readyz"), { status: 503, body: "database unreachable\n" });
  assert.ok(performance.now() - started < 1_000);
});

Deno.test("metrics: a bearer token when METRICS_TOKEN is set; on Edge without one, not found", async () => {
  const guarded = endpoints({ metricsToken: TOKEN });
  assert.equal((await guarded.get("/metrics")).status, 401);
  assert.equal((await guarded.get("/metrics", { authorization: `Bearer ${TOKEN}x` })).status, 401);
  assert.equal((await guarded.get("/metrics", { authorization: TOKEN })).status, 401);
  const scraped = await guarded.ops.handle(
    new Request("http://worker/metrics", { headers: { authorization: `Bearer ${TOKEN}` } }),
  );
  assert.equal(scraped!.status, 200);
  assert.match(scraped!.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  assert.equal((await endpoints({ onEdge: true }).get("/metrics")).status, 404);
  assert.equal((await endpoints({ onEdge: true, metricsToken: TOKEN }).get("/metrics")).status, 401);
  assert.equal((await endpoints().get("/metrics")).status, 200, "self-hosted, unguarded: the pod network");
});
