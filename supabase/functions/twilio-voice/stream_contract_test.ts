import assert from "node:assert/strict";
import {
  afterStream,
  currentLocalOutcome,
  type LocalOutcome,
  nextStream,
  parseStreamStart,
  resumeClaim,
  signedStreamTwiml,
  streamTwiml,
  transferOutcomeOf,
  transferTarget,
  verifyStreamStart,
} from "./stream_contract.ts";
import type { CallRecord, CallStatus } from "./store.ts";

function call(status: CallStatus, overrides: Partial<CallRecord> = {}): CallRecord {
  return {
    callSid: "CA1",
    tenantId: "t",
    status,
    endReason: null,
    handoffCount: 0,
    usage: {},
    streamClaimed: true,
    ...overrides,
  };
}

const local = (status: CallStatus, reason = "x", stream = 0): LocalOutcome => ({ status, reason, stream });

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

Deno.test("this worker's outcome of a stream is history once a later stream claimed the row", () => {
  const handedOff = local("handed_off", "handoff:quiet:listen", 1);
  // The row not written yet: still at the stream that handed off.
  assert.equal(currentLocalOutcome(call("in_progress", { handoffCount: 1 }), handedOff), handedOff);
  // Resumed since (handoff_count 2): a connect action replayed now gets no resume from it.
  const live = call("in_progress", { handoffCount: 2 });
  assert.equal(currentLocalOutcome(live, handedOff), null);
  assert.equal(afterStream(live, currentLocalOutcome(live, handedOff)), "apologize");
  // Without the row the outcome is all there is.
  assert.equal(currentLocalOutcome(null, handedOff), handedOff);
});

Deno.test("a stream's start parameters read back what the TwiML put on it", () => {
  const start = {
    tenantId: "t1",
    toNumber: "+14155550100",
    token: "tok",
    resume: { handoff: 2, mode: "reply" as const },
    issuedAt: 1_796_300_000,
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
    issuedAt: -1,
  });
  assert.deepEqual(parseStreamStart({ tenant_id: "t1", handoff: "1" }), "invalid");
  assert.deepEqual(parseStreamStart({ tenant_id: "t1", handoff: "0", resume: "reply" }), "invalid");
  assert.deepEqual(parseStreamStart({ tenant_id: "t1", handoff: "1", resume: "shout" }), "invalid");
  assert.deepEqual(parseStreamStart({}), {
    tenantId: "",
    toNumber: "",
    token: "",
    resume: null,
    issuedAt: -1,
  });
  for (const issuedAt of ["", "-5", "1e9", "12.5", "1".repeat(13)]) {
    assert.deepEqual(parseStreamStart({ tenant_id: "t1", issued_at: issuedAt }), "invalid", issuedAt);
  }
});

const URLS = { actionUrl: "https://x/a", streamUrl: "wss://x/s" };

function twimlParams(twiml: string): Record<string, string> {
  return Object.fromEntries(
    [...twiml.matchAll(/<Parameter name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1], m[2]]),
  );
}

const NOW = 1_796_300_000;
const refused = (reason: string) => ({ ok: false, reason });

Deno.test("a stream started by signed TwiML verifies as the call it was signed for", async () => {
  for (const resume of [null, { handoff: 3, mode: "listen" as const }]) {
    const call = { callSid: "CA1", tenantId: "t1", toNumber: "+14155550100", resume };
    const params = twimlParams(await signedStreamTwiml("auth", URLS, call, NOW));
    assert.equal(params.issued_at, String(NOW));
    assert.deepEqual(await verifyStreamStart("auth", "CA1", params, NOW + 2), { ok: true, call });
  }
});

Deno.test("a stream whose parameters or call differ from what was signed is not believed", async () => {
  const call = {
    callSid: "CA1",
    tenantId: "t1",
    toNumber: "+1",
    resume: { handoff: 1, mode: "reply" as const },
  };
  const params = twimlParams(await signedStreamTwiml("auth", URLS, call, NOW));
  const bad = refused("bad_stream_token");
  const verify = (callSid: string, p: Record<string, string>, key = "auth") =>
    verifyStreamStart(key, callSid, p, NOW);
  assert.deepEqual(await verify("CA1", params, "other"), bad, "another auth token");
  assert.deepEqual(await verify("CA2", params), bad, "another call");
  assert.deepEqual(await verify("CA1", { ...params, tenant_id: "t2" }), bad);
  assert.deepEqual(await verify("CA1", { ...params, resume: "listen" }), bad);
  assert.deepEqual(await verify("CA1", { ...params, handoff: "0" }), bad, "malformed");
  assert.deepEqual(await verify("CA1", { ...params, stream_token: "" }), bad);
  assert.deepEqual(
    await verify("CA1", { ...params, issued_at: String(NOW + 30) }),
    bad,
    "the time is signed",
  );
  const { issued_at: _i, ...noTime } = params;
  assert.deepEqual(await verify("CA1", noTime), bad, "a token without its time");
  const { handoff: _h, resume: _r, ...firstStream } = params;
  assert.deepEqual(await verify("CA1", firstStream), bad, "the resume claim is signed");
});

Deno.test("TwiML signed more than a minute ago, or too far ahead, starts no stream", async () => {
  const call = { callSid: "CA1", tenantId: "t1", toNumber: "+1", resume: null };
  const params = twimlParams(await signedStreamTwiml("auth", URLS, call, NOW));
  assert.deepEqual(await verifyStreamStart("auth", "CA1", params, NOW + 61), refused("stream_token_expired"));
  assert.deepEqual(await verifyStreamStart("auth", "CA1", params, NOW - 6), refused("stream_token_expired"));
  assert.deepEqual(await verifyStreamStart("auth", "CA1", params, NOW + 60), { ok: true, call });
});

Deno.test("a call the transfer tool ended is dialled once; after Twilio's outcome a replay hangs up", () => {
  const transferred = call("completed", { endReason: "transferred", transferTo: "+15550001234" });
  assert.equal(afterStream(transferred, null), "transfer");
  assert.equal(transferTarget(transferred, null), "+15550001234");
  assert.equal(afterStream({ ...transferred, transferOutcome: "answered" }, null), "hang_up");
  // Before the row is written, this worker's outcome knows the number.
  const pending = { ...local("completed", "transferred"), transferTo: "+15550001234" };
  assert.equal(afterStream(call("in_progress"), pending), "transfer");
  assert.equal(transferTarget(call("in_progress"), pending), "+15550001234");
  assert.equal(transferTarget(call("completed"), null), null);
});

Deno.test("DialCallStatus: taken or cancelled ends the call, anything else brings it back to the agent", () => {
  assert.deepEqual(transferOutcomeOf("completed"), { outcome: "answered", comesBack: false });
  assert.deepEqual(transferOutcomeOf("answered"), { outcome: "answered", comesBack: false });
  assert.deepEqual(transferOutcomeOf("canceled"), { outcome: "canceled", comesBack: false });
  assert.deepEqual(transferOutcomeOf("no-answer"), { outcome: "no-answer", comesBack: true });
  assert.deepEqual(transferOutcomeOf("busy"), { outcome: "busy", comesBack: true });
  assert.deepEqual(transferOutcomeOf("failed"), { outcome: "failed", comesBack: true });
  assert.deepEqual(transferOutcomeOf(""), { outcome: "failed", comesBack: true });
});

Deno.test("a resume after an unanswered transfer carries its own mode", () => {
  const back = call("handed_off", { handoffCount: 1, endReason: "handoff:transfer_unanswered" });
  assert.deepEqual(nextStream(back, null), { handoff: 2, mode: "transfer_unanswered" });
  assert.deepEqual(parseStreamStart({ handoff: "2", resume: "transfer_unanswered" }), {
    tenantId: "",
    toNumber: "",
    token: "",
    resume: { handoff: 2, mode: "transfer_unanswered" },
    issuedAt: -1,
  });
});
