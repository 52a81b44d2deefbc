import assert from "node:assert/strict";
import {
  afterStream,
  type LocalOutcome,
  nextStream,
  parseStreamStart,
  resumeClaim,
  signedStreamTwiml,
  streamTwiml,
  verifyStreamStart,
} from "./stream_contract.ts";
import type { CallRecord, CallStatus } from "./store.ts";

function call(status: CallStatus, overrides: Partial<CallRecord> = {}): CallRecord {
  return { callSid: "CA1", tenantId: "t", status, endReason: null, handoffCount: 0, usage: {}, ...overrides };
}

const local = (status: CallStatus, reason = "x"): LocalOutcome => ({ status, reason });

Deno.test("a failed call gets the apology, a completed one a hang-up", () => {
  assert.equal(afterStream(call("failed"), null), "apologize");
  assert.equal(afterStream(call("completed"), null), "hang_up");
});

Deno.test("a call never finalized, or not found, gets the apology", () => {
  assert.equal(afterStream(call("in_progress"), null), "apologize");
  assert.equal(afterStream(null, null), "apologize");
});

Deno.test("this worker's own outcome counts while the row is not written yet", () => {
  assert.equal(afterStream(call("in_progress"), local("failed")), "apologize");
  assert.equal(afterStream(call("in_progress"), local("completed")), "hang_up");
  assert.equal(afterStream(null, local("completed")), "hang_up");
  assert.equal(
    afterStream(call("failed"), local("completed")),
    "apologize",
    "the stored row wins once written",
  );
});

Deno.test("a handed-off call continues on a new stream, unless its row cannot be read", () => {
  assert.equal(afterStream(call("handed_off"), null), "resume");
  assert.equal(afterStream(call("in_progress"), local("handed_off")), "resume");
  assert.equal(afterStream(null, local("handed_off")), "apologize");
});

Deno.test("the next stream is the next handoff, resumed as the handoff left the conversation", () => {
  assert.deepEqual(
    nextStream(call("handed_off", { handoffCount: 2, endReason: "handoff:forced:reply" }), null),
    { handoff: 3, mode: "reply" },
  );
  assert.deepEqual(
    nextStream(
      call("handed_off", { endReason: "handoff:quiet:listen" }),
      local("handed_off", "handoff:x:reply"),
    ),
    { handoff: 1, mode: "listen" },
    "the row wins once written",
  );
  assert.deepEqual(
    nextStream(call("in_progress", { handoffCount: 1 }), local("handed_off", "handoff:beforeunload:reply")),
    { handoff: 2, mode: "reply" },
  );
});

Deno.test("a stream's start parameters read back what the TwiML put on it", () => {
  const start = {
    tenantId: "t1",
    toNumber: "+14155550100",
    token: "tok",
    resume: { handoff: 2, mode: "reply" as const },
  };
  const twiml = streamTwiml({ actionUrl: "https://x/a", streamUrl: "wss://x/s" }, start);
  const params = Object.fromEntries(
    [...twiml.matchAll(/<Parameter name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1], m[2]]),
  );
  assert.deepEqual(parseStreamStart(params), start);
  assert.deepEqual(resumeClaim(start.resume), "2:reply");
});

Deno.test("a first stream carries no resume pair and a half or malformed pair is invalid", () => {
  assert.deepEqual(parseStreamStart({ tenant_id: "t1", to_number: "+1", stream_token: "k" }), {
    tenantId: "t1",
    toNumber: "+1",
    token: "k",
    resume: null,
  });
  assert.deepEqual(parseStreamStart({ tenant_id: "t1", handoff: "1" }), "invalid");
  assert.deepEqual(parseStreamStart({ tenant_id: "t1", handoff: "0", resume: "reply" }), "invalid");
  assert.deepEqual(parseStreamStart({ tenant_id: "t1", handoff: "1", resume: "shout" }), "invalid");
  assert.deepEqual(parseStreamStart({}), { tenantId: "", toNumber: "", token: "", resume: null });
});

const URLS = { actionUrl: "https://x/a", streamUrl: "wss://x/s" };

function twimlParams(twiml: string): Record<string, string> {
  return Object.fromEntries(
    [...twiml.matchAll(/<Parameter name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1], m[2]]),
  );
}

Deno.test("a stream started by signed TwiML verifies as the call it was signed for", async () => {
  for (const resume of [null, { handoff: 3, mode: "listen" as const }]) {
    const call = { callSid: "CA1", tenantId: "t1", toNumber: "+14155550100", resume };
    const params = twimlParams(await signedStreamTwiml("auth", URLS, call));
    assert.deepEqual(await verifyStreamStart("auth", "CA1", params), call);
  }
});

Deno.test("a stream whose parameters or call differ from what was signed is not believed", async () => {
  const call = {
    callSid: "CA1",
    tenantId: "t1",
    toNumber: "+1",
    resume: { handoff: 1, mode: "reply" as const },
  };
  const params = twimlParams(await signedStreamTwiml("auth", URLS, call));
  assert.equal(await verifyStreamStart("other", "CA1", params), null, "another auth token");
  assert.equal(await verifyStreamStart("auth", "CA2", params), null, "another call");
  assert.equal(await verifyStreamStart("auth", "CA1", { ...params, tenant_id: "t2" }), null);
  assert.equal(await verifyStreamStart("auth", "CA1", { ...params, resume: "listen" }), null);
  assert.equal(await verifyStreamStart("auth", "CA1", { ...params, handoff: "0" }), null, "malformed");
  assert.equal(await verifyStreamStart("auth", "CA1", { ...params, stream_token: "" }), null);
  const { handoff: _h, resume: _r, ...firstStream } = params;
  assert.equal(await verifyStreamStart("auth", "CA1", firstStream), null, "the resume claim is signed");
});
