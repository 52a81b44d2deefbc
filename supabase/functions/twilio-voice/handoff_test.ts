import assert from "node:assert/strict";
import {
  handoffReason,
  handoffSchedule,
  restorableContext,
  restorableTurns,
  RESTORED_CONTEXT_MAX_CHARS,
  resumeModeOf,
} from "./handoff.ts";
import type { TurnRow } from "./store.ts";

Deno.test("the schedule leaves a quiet window and a forced margin before the wall clock", () => {
  // Paid plan: look for a quiet moment from 340 s, force at 380 s (20 s margin).
  assert.deepEqual(handoffSchedule(400, 0, 0), { quietFromMs: 340_000, forceAtMs: 380_000 });
  // Free plan: from 120 s, forced at 142.5 s.
  assert.deepEqual(handoffSchedule(150, 0, 0), { quietFromMs: 120_000, forceAtMs: 142_500 });
  // A limit of a few seconds (tests): half of it for the stream, the margin a quarter.
  assert.deepEqual(handoffSchedule(8, 0, 0), { quietFromMs: 4_000, forceAtMs: 6_000 });
});

Deno.test("the budget runs from the worker's start, not the stream's", () => {
  // A stream that began 100 s into a worker's life has 240 s until its quiet window.
  assert.deepEqual(handoffSchedule(400, 5_000, 105_000), { quietFromMs: 345_000, forceAtMs: 385_000 });
});

Deno.test("a stream that begins inside the worker's quiet window is scheduled from its own start", () => {
  // Never handed off the moment it begins (that would repeat for every stream on the worker).
  assert.deepEqual(handoffSchedule(400, 0, 350_000), { quietFromMs: 690_000, forceAtMs: 730_000 });
});

const turn = (
  seq: number,
  text: string,
  role: TurnRow["role"] = seq % 2 ? "assistant" : "user",
): TurnRow => ({
  tenantId: "t",
  callSid: "CA1",
  role,
  text,
  itemId: `item_${seq}`,
  seq,
  interrupted: false,
});

Deno.test("every turn comes back, in order, while the conversation fits the context budget", () => {
  const turns = [turn(0, "Hello"), turn(1, "Hi, how can I help?"), turn(2, "  "), turn(3, "Bye")];
  assert.deepEqual(restorableTurns(turns).map((t) => t.seq), [0, 1, 3], "empty turns are skipped");
});

Deno.test("past the budget the newest turns are kept and the oldest dropped", () => {
  const turns = Array.from({ length: 10 }, (_, seq) => turn(seq, "x".repeat(100)));
  assert.deepEqual(restorableTurns(turns, 350).map((t) => t.seq), [7, 8, 9]);
  const long = restorableTurns([turn(0, "a".repeat(500) + "THE END")], 100);
  assert.equal(long.length, 1);
  assert.equal(long[0].text.length, 100);
  assert.ok(long[0].text.endsWith("THE END"), "a turn longer than the budget keeps its end");
  assert.ok(RESTORED_CONTEXT_MAX_CHARS >= 8_000, "a 400 s call's text fits whole");
});

Deno.test("the resume mode travels in the handed-off call's end_reason", () => {
  assert.equal(resumeModeOf(handoffReason("forced", "reply")), "reply");
  assert.equal(resumeModeOf(handoffReason("quiet", "listen")), "listen");
  assert.equal(resumeModeOf(null), "listen");
  assert.equal(resumeModeOf("model_error:reply"), "listen", "only a handoff's reason counts");
});

Deno.test("turns and tool calls share the restore budget, newest first", () => {
  const call = (seq: number, output: string) => ({
    tenantId: "t",
    callSid: "CA1",
    seq,
    callId: `call_${seq}`,
    name: "lookup",
    arguments: { id: 1 },
    output,
    status: "ok" as const,
    durationMs: 5,
  });
  const turns = [turn(0, "hello"), turn(2, "x".repeat(50)), turn(4, "thanks")];
  // A tool's 8,000-character answer spends the budget: the older turn before it gives way.
  const big = restorableContext(turns, [call(1, "a".repeat(40)), call(3, "b".repeat(8000))], 8030);
  assert.deepEqual(big.turns.map((t) => t.seq), [4]);
  assert.deepEqual(big.toolCalls.map((c) => c.seq), [3]);
  const all = restorableContext(turns, [call(1, "a"), call(3, "b")]);
  assert.deepEqual([all.turns.map((t) => t.seq), all.toolCalls.map((c) => c.seq)], [[0, 2, 4], [1, 3]]);
  // Nothing fits whole: the newest turn's end, no tool call.
  const tiny = restorableContext([turn(0, "a".repeat(500) + "END")], [call(1, "z".repeat(900))], 100);
  assert.equal(tiny.toolCalls.length, 0);
  assert.ok(tiny.turns[0].text.endsWith("END"));
});
