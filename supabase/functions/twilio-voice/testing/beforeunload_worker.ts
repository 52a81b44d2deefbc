// A worker for turn_store_test.ts: records a call's turns and, mid-call, gets `beforeunload`
// as the Edge Runtime sends it before retiring a worker. Its handler flushes the TurnStore and
// then the process exits at once, as the runtime would end the worker: whatever is not in the
// database by then is lost.

import { createLogger } from "../log.ts";
import { createPostgresBackend } from "../store_postgres.ts";
import { TurnStore } from "../turn_store.ts";

const env = (name: string) => {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const callSid = env("CALL_SID");
const tenantId = env("TENANT_ID");
const turns = Number(env("TURNS"));
const flushBoundMs = Number(env("FLUSH_BOUND_MS"));

const store = new TurnStore(createPostgresBackend(env("TEST_DATABASE_URL")), {
  logger: createLogger({ sink: () => {} }),
});

addEventListener("beforeunload", () => {
  store.flush(flushBoundMs).then((result) => {
    console.log(JSON.stringify(result));
    Deno.exit(0);
  });
});

for (let seq = 0; seq < turns; seq++) {
  const role = seq % 2 === 0 ? "user" : "assistant";
  const turn = {
    tenantId,
    callSid,
    role,
    text: `turn ${seq}`,
    itemId: `item_${seq}`,
    seq,
    interrupted: false,
  } as const;
  store.record(turn);
  // Barge-in on every third assistant turn: the same item again, flagged a moment later.
  if (role === "assistant" && seq % 3 === 0) {
    store.record({ ...turn, text: `turn ${seq} (cut)`, interrupted: true });
  }
  // Let some writes start, so beforeunload finds some turns in flight and some still queued.
  if (seq % 7 === 0) await new Promise((resolve) => setTimeout(resolve, 3));
}
dispatchEvent(new CustomEvent("beforeunload", { detail: { reason: "WallClockTime" } }));
