import assert from "node:assert/strict";
import { planCall, planClaim, type StoreFindings } from "./call_planner.ts";
import { DEFAULT_INSTRUCTIONS, DEFAULT_VOICE } from "./session_config.ts";
import type { AgentSettings, CallRecord, TurnRow } from "./store.ts";
import type { StreamCall } from "./stream_contract.ts";

const CALL_SID = "CA0123456789abcdef0123456789abcdef";
const TENANT = "tenant-a";
const DEFAULT_MODEL = "gpt-realtime";

const firstStream: StreamCall = {
  callSid: CALL_SID,
  tenantId: TENANT,
  toNumber: "+14155550100",
  resume: null,
};
const resumedStream: StreamCall = { ...firstStream, resume: { handoff: 2, mode: "reply" } };

const agent: AgentSettings = {
  instructions: "You are Acme's receptionist.",
  voice: "cedar",
  greeting: "Acme, good morning!",
  model: "gpt-realtime-mini",
  transcriptionModel: null,
  turnDetection: null,
};

const callRow: CallRecord = {
  callSid: CALL_SID,
  tenantId: TENANT,
  status: "in_progress",
  endReason: null,
  handoffCount: 2,
  usage: { input_tokens: 120, output_tokens: 40 },
  streamClaimed: true,
};

function turn(seq: number, role: TurnRow["role"], text: string): TurnRow {
  return { tenantId: TENANT, callSid: CALL_SID, role, text, itemId: `item_${seq}`, seq, interrupted: false };
}

const ownNumber: StoreFindings = { owner: { tenantId: TENANT, agent }, resumed: null };

Deno.test("a first stream is greeted, numbers its turns from 0 and uses the tenant's agent", () => {
  const plan = planCall(firstStream, ownNumber, DEFAULT_MODEL);
  assert.equal(plan.call.greeting, "Acme, good morning!");
  assert.equal(plan.call.firstSeq, 0);
  assert.equal(plan.call.resume, undefined);
  assert.equal(plan.call.priorUsage, undefined);
  assert.equal(plan.call.priorMetrics, undefined);
  assert.equal(plan.call.session.instructions, "You are Acme's receptionist.");
  assert.equal(plan.call.session.audio.output.voice, "cedar");
  assert.equal(plan.model, "gpt-realtime-mini");
  assert.deepEqual(plan.warnings, []);
});

Deno.test("a tenant without agent settings gets the defaults and the configured model", () => {
  const plan = planCall(
    firstStream,
    { owner: { tenantId: TENANT, agent: null }, resumed: null },
    DEFAULT_MODEL,
  );
  assert.equal(plan.call.greeting, null);
  assert.equal(plan.call.session.instructions, DEFAULT_INSTRUCTIONS);
  assert.equal(plan.call.session.audio.output.voice, DEFAULT_VOICE);
  assert.equal(plan.model, DEFAULT_MODEL);
  assert.deepEqual(plan.warnings, []);
});

Deno.test("a blank model setting falls back to the configured model", () => {
  const blank = { owner: { tenantId: TENANT, agent: { ...agent, model: "  " } }, resumed: null };
  assert.equal(planCall(firstStream, blank, DEFAULT_MODEL).model, DEFAULT_MODEL);
});

Deno.test("a number moved to another tenant keeps the call with the default agent, and says so", () => {
  const moved = { owner: { tenantId: "tenant-b", agent }, resumed: null };
  const plan = planCall(firstStream, moved, DEFAULT_MODEL);
  assert.equal(plan.call.greeting, null, "never the other tenant's greeting");
  assert.equal(plan.call.session.instructions, DEFAULT_INSTRUCTIONS);
  assert.equal(plan.model, DEFAULT_MODEL);
  assert.deepEqual(plan.warnings, [{ event: "call.number_moved", fields: {} }]);
});

Deno.test("a number nobody owns any more keeps the call with the default agent, quietly", () => {
  const plan = planCall(firstStream, { owner: null, resumed: null }, DEFAULT_MODEL);
  assert.equal(plan.call.session.instructions, DEFAULT_INSTRUCTIONS);
  assert.deepEqual(plan.warnings, []);
});

Deno.test("settings that break a rule or the GA schema fall back to defaults, named by column", () => {
  const bad = {
    owner: {
      tenantId: TENANT,
      agent: { ...agent, voice: "robot", turnDetection: { type: "server_vad", extra: 1 } },
    },
    resumed: null,
  };
  const plan = planCall(firstStream, bad, DEFAULT_MODEL);
  assert.equal(plan.call.session.audio.output.voice, DEFAULT_VOICE);
  assert.deepEqual(plan.call.session.audio.input.turn_detection, { type: "server_vad" });
  assert.deepEqual(plan.warnings, [
    { event: "agent.setting_rejected", fields: { fields: "voice" } },
    { event: "agent.settings_dropped", fields: { fields: "turn_detection.extra" } },
  ]);
});

Deno.test("a resumed stream is not greeted, restores the turns and continues numbering and usage", () => {
  const turns = [
    turn(0, "user", "Hi"),
    turn(1, "assistant", "Hello!"),
    turn(3, "user", "  "),
    turn(2, "user", "Hours?"),
  ];
  const metrics = { turns: [], audio_in_ms: 3000, audio_out_ms: 900 };
  const plan = planCall(
    resumedStream,
    { ...ownNumber, resumed: { call: { ...callRow, metrics }, turns } },
    DEFAULT_MODEL,
  );
  assert.equal(plan.call.greeting, null, "it was greeted on its first stream");
  assert.equal(plan.call.firstSeq, 4, "after every stored turn, the blank one included");
  assert.equal(plan.call.resume?.mode, "reply");
  assert.deepEqual(plan.call.resume?.turns.map((row) => row.text), ["Hi", "Hello!", "Hours?"]);
  assert.deepEqual(plan.call.priorUsage, { input_tokens: 120, output_tokens: 40 });
  assert.deepEqual(plan.call.priorMetrics, metrics, "the earlier streams' turns and audio");
});

Deno.test("a resumed stream with no stored turns starts at seq 0 with nothing to restore", () => {
  const plan = planCall(
    resumedStream,
    { ...ownNumber, resumed: { call: callRow, turns: [] } },
    DEFAULT_MODEL,
  );
  assert.equal(plan.call.firstSeq, 0);
  assert.deepEqual(plan.call.resume, { turns: [], mode: "reply" });
});

Deno.test("a stream whose claim was refused is refused and leaves the row to its owner", () => {
  for (const stream of [firstStream, resumedStream]) {
    assert.deepEqual(planClaim(stream, null), {
      kind: "refuse",
      reason: "stream_claim_refused",
      warnings: [{ event: "stream.claim_refused", fields: { stream: stream.resume?.handoff ?? 0 } }],
    });
  }
});

Deno.test("a stream whose claim succeeded goes on with the claimed row", () => {
  assert.deepEqual(planClaim(resumedStream, callRow), { kind: "go_on", call: callRow, warnings: [] });
  assert.deepEqual(planClaim(firstStream, callRow), { kind: "go_on", call: callRow, warnings: [] });
});

Deno.test("with the store unreachable a first stream goes on unchecked and a resume is refused", () => {
  assert.deepEqual(planClaim(firstStream, "unavailable"), {
    kind: "go_on",
    call: null,
    warnings: [{ event: "stream.claim_unchecked", fields: { stream: 0 } }],
  });
  assert.deepEqual(planClaim(resumedStream, "unavailable"), {
    kind: "refuse",
    reason: "stream_claim_unavailable",
    warnings: [{ event: "stream.claim_unavailable", fields: { stream: 2 } }],
  });
});

Deno.test("a first stream ignores resume findings it did not ask for", () => {
  const plan = planCall(
    firstStream,
    { ...ownNumber, resumed: { call: callRow, turns: [turn(5, "user", "x")] } },
    DEFAULT_MODEL,
  );
  assert.equal(plan.call.firstSeq, 0);
  assert.equal(plan.call.greeting, "Acme, good morning!");
});

Deno.test("a resume restores the newest turns and tool calls that fit one budget together", () => {
  const toolCall = (seq: number) => ({
    tenantId: TENANT,
    callSid: "CA1",
    seq,
    callId: `call_${seq}`,
    name: "lookup",
    arguments: {},
    output: "{}",
    status: "ok" as const,
    durationMs: 1,
  });
  const turnAt = (seq: number, text: string) => ({
    tenantId: TENANT,
    callSid: "CA1",
    role: "user" as const,
    text,
    itemId: `item_${seq}`,
    seq,
    interrupted: false,
  });
  const all = planCall(
    resumedStream,
    {
      ...ownNumber,
      resumed: { call: callRow, turns: [turnAt(1, "hi")], toolCalls: [toolCall(0), toolCall(2)] },
    },
    DEFAULT_MODEL,
  );
  assert.deepEqual(all.call.resume?.toolCalls?.map((call) => call.seq), [0, 2]);
  assert.equal(all.call.firstSeq, 3, "after the last tool call too");
  const long = "x".repeat(15_000);
  const cut = planCall(
    resumedStream,
    {
      ...ownNumber,
      resumed: {
        call: callRow,
        turns: [turnAt(1, long), turnAt(3, long)],
        toolCalls: [toolCall(0), toolCall(2), toolCall(4)],
      },
    },
    DEFAULT_MODEL,
  );
  // Newest first until the budget is spent: 4, 3 and 2 fit (15,020 characters), 1 does not, and
  // neither does the older tool call behind it.
  assert.deepEqual(cut.call.resume?.turns.map((turn) => turn.seq), [3]);
  assert.deepEqual(cut.call.resume?.toolCalls?.map((call) => call.seq), [2, 4]);
});
