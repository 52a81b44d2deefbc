// The lease's timing and the claim's worker, without a database (the store's half is in
// testing/store_conformance.ts; the connect action's in app_test.ts; a real kill in tests/test_fleet.py).

import assert from "node:assert/strict";
import {
  claimingAs,
  CRASH_RESUME_REASON,
  CRASH_RESUME_WAIT_MS,
  LEASE_LAPSE_MS,
  LEASE_RENEW_MS,
  startWorkerLease,
} from "./crash_resume.ts";
import { resumeModeOf } from "./handoff.ts";
import { createLogger } from "./log.ts";
import type { StoreBackend } from "./store.ts";

/** Only the calls these tests make; anything else would throw. */
function recordingStore(calls: unknown[][]): StoreBackend {
  return {
    claimCallStream: (...args: unknown[]) => {
      calls.push(["claim", ...args]);
      return Promise.resolve(null);
    },
    renewWorkerLease: (workerId: string) => {
      calls.push(["renew", workerId]);
      return Promise.resolve();
    },
    releaseWorkerLease: (workerId: string) => {
      calls.push(["release", workerId]);
      return Promise.resolve();
    },
    getCall: () => Promise.resolve(null),
  } as unknown as StoreBackend;
}

Deno.test("a lapse is several missed renewals, and the wait for one stays inside Twilio's 15 s", () => {
  assert.ok(LEASE_LAPSE_MS >= 3 * LEASE_RENEW_MS);
  assert.ok(CRASH_RESUME_WAIT_MS > LEASE_LAPSE_MS && CRASH_RESUME_WAIT_MS < 15_000);
  assert.equal(resumeModeOf(CRASH_RESUME_REASON), "reply", "after the silence the agent speaks first");
});

Deno.test("a stream's claim names the worker; the other methods pass through", async () => {
  const calls: unknown[][] = [];
  const store = claimingAs(recordingStore(calls), "worker-1");
  await store.claimCallStream("CA1", "tenant", 2);
  assert.equal(await store.getCall("CA1"), null);
  assert.deepEqual(calls, [["claim", "CA1", "tenant", 2, "worker-1"]]);
});

Deno.test("the lease is renewed at once and on every tick until released, then deleted", async () => {
  const calls: unknown[][] = [];
  const lease = startWorkerLease(recordingStore(calls), createLogger({ sink: () => {} }), 20);
  await new Promise((resolve) => setTimeout(resolve, 75));
  await lease.release();
  const renewals = calls.filter(([kind]) => kind === "renew").length;
  assert.ok(renewals >= 3, `renewed ${renewals} times`);
  assert.deepEqual(calls.at(-1), ["release", lease.workerId]);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(calls.filter(([kind]) => kind === "renew").length, renewals, "no renewal after release");
});
