import assert from "node:assert/strict";
import { afterStream } from "./after_stream.ts";
import type { CallRecord, CallStatus } from "./store.ts";

function call(status: CallStatus): CallRecord {
  return { callSid: "CA1", tenantId: "t", status, endReason: null, handoffCount: 0, usage: {} };
}

Deno.test("a failed call gets the apology, a completed one a hang-up", () => {
  assert.equal(afterStream(call("failed"), null), "apologize");
  assert.equal(afterStream(call("completed"), null), "hang_up");
});

Deno.test("a call never finalized, or not found, gets the apology", () => {
  assert.equal(afterStream(call("in_progress"), null), "apologize");
  assert.equal(afterStream(null, null), "apologize");
});

Deno.test("this worker's own outcome counts while the row is not written yet", () => {
  assert.equal(afterStream(call("in_progress"), "failed"), "apologize");
  assert.equal(afterStream(call("in_progress"), "completed"), "hang_up");
  assert.equal(afterStream(null, "completed"), "hang_up");
  assert.equal(afterStream(call("failed"), "completed"), "apologize", "the stored row wins once written");
});
