// Calls longer than a worker's wall clock: when to move the call to a fresh worker, what the next
// stream is told, and how much of the conversation the new model session gets back.
//
// Supabase ends a worker at its wall clock (150 s on the free plan, 400 s on paid plans:
// https://supabase.com/docs/guides/functions/limits), counted from the worker's start, and one
// worker serves many requests: it takes new ones until 50 % of its wall clock, then it is retired
// and new requests get a new worker (supabase/edge-runtime#183 "retire workers at the 50% of
// wall-clock limit"; supabase/cli#1695 "an isolate can handle multiple requests ... till the wall
// clock limit"). So on Supabase the budget runs from worker start (module load; the runtime's
// own boot before that is covered by the margin below), and a handoff late in a worker's life
// lands on a fresh worker. Plain Deno has no wall clock and one process serves every stream, so
// there the budget runs per stream (otherwise every stream after the first limit would be handed
// off at once).

import type { ToolCallRow, TurnRow } from "./store.ts";

/** "crash": not a handoff its worker made: another worker took the call over once the dead
 * worker's lease lapsed (crash_resume.ts). */
export type HandoffTrigger = "quiet" | "forced" | "beforeunload" | "drain" | "crash";
/** The shutdown reason of a self-hosted worker's SIGTERM drain: its calls hand off as "drain". */
export const DRAIN_REASON = "drain";
/** How long a drain waits for a call's quiet moment before handing it off regardless. A phone
 * conversation pauses between turns every 5-20 s, nearly always inside this; it stays well inside
 * the drain's bound (DRAIN_BOUND_MS, 30 s, in index.ts), which also covers the flush after it. */
export const DRAIN_QUIET_WAIT_MS = 12_000;
/** What the next stream's model does first: wait for the caller, or reply at once (the handoff
 * cut a reply short, or the caller's last words had no answer yet), or tell the caller that the
 * transfer it asked for was not answered (the call came back from a <Dial>). */
export type ResumeMode = "listen" | "reply" | "transfer_unanswered";

/** Times on the clock the bridge is fed with (performance.now() in ms). */
export interface HandoffSchedule {
  /** From here on, hand off at the first moment neither side is speaking. */
  quietFromMs: number;
  /** Hand off now, speaking or not. */
  forceAtMs: number;
}

// Forced handoff this far before the limit: max(5 s, 5 %), 20 s on paid plans, 7.5 s on free. It
// must cover the turn store's flush (normally ~10 ms, one retry ~100 ms), a timer late on a busy
// isolate, and the runtime's boot before our module loaded (cold starts take up to ~1-2 s), with
// room to spare: a call cut by the runtime loses its queued audio and whatever is not flushed.
const FORCE_MARGIN_MIN_MS = 5_000;
const FORCE_MARGIN_SHARE = 0.05;
// Start looking for a quiet moment this far before the limit: max(30 s, 15 %), 60 s on paid, 30 s
// on free. A phone conversation has a pause between turns every 5-20 s, so this window nearly
// always finds one before the forced point; opening it earlier would only spend budget.
const QUIET_WINDOW_MIN_MS = 30_000;
const QUIET_WINDOW_SHARE = 0.15;
// With a limit of a few seconds (tests, demos) the floors would swallow the whole budget: cap the
// margin at a quarter and the window at half of the limit, so a stream still lives half of it.
const FORCE_MARGIN_MAX_SHARE = 0.25;
const QUIET_WINDOW_MAX_SHARE = 0.5;

/**
 * @param originMs when the budget started: the worker's start on Supabase, the stream's on plain Deno
 * @param streamStartMs when this stream started. A stream that begins inside a worker's quiet
 *   window (Supabase retires workers at 50 %, so it should not happen) is scheduled from its own
 *   start instead, so it cannot be handed off the moment it begins, again and again; the
 *   runtime's beforeunload still hands it off if the worker really ends.
 */
export function handoffSchedule(limitS: number, originMs: number, streamStartMs: number): HandoffSchedule {
  const limitMs = limitS * 1000;
  const margin = Math.min(
    Math.max(FORCE_MARGIN_MIN_MS, limitMs * FORCE_MARGIN_SHARE),
    limitMs * FORCE_MARGIN_MAX_SHARE,
  );
  const window = Math.min(
    Math.max(QUIET_WINDOW_MIN_MS, limitMs * QUIET_WINDOW_SHARE),
    limitMs * QUIET_WINDOW_MAX_SHARE,
  );
  const base = streamStartMs > originMs + limitMs - window ? streamStartMs : originMs;
  return { quietFromMs: base + limitMs - window, forceAtMs: base + limitMs - margin };
}

// gpt-realtime has a 32k-token context window (openai-cookbook, "Context summarization with
// Realtime API"). Restored turns are text, ~4 characters a token: 16,000 characters is ~4k tokens,
// an eighth of the window, leaving the rest to the tenant's instructions and to the new stream's
// audio (an audio second costs ~10x the tokens of its transcript).
export const RESTORED_CONTEXT_MAX_CHARS = 16_000;

/** The turns a new model session gets back, in conversation order: the newest first when the
 * budget cuts (what was said last matters most to the next reply), the oldest dropped. */
export function restorableTurns(turns: readonly TurnRow[], maxChars = RESTORED_CONTEXT_MAX_CHARS): TurnRow[] {
  const kept: TurnRow[] = [];
  let used = 0;
  for (let i = turns.length - 1; i >= 0; i--) {
    const turn = turns[i];
    if (!turn.text.trim()) continue;
    if (used + turn.text.length > maxChars) {
      // A single turn longer than the budget still gives its end, the part nearest the present.
      if (kept.length === 0) kept.push({ ...turn, text: "…" + turn.text.slice(-(maxChars - 1)) });
      break;
    }
    used += turn.text.length;
    kept.push(turn);
  }
  return kept.reverse();
}

/** What a tool call costs the restored context: its name, its arguments and its output, as text. */
function toolCallChars(call: ToolCallRow): number {
  return call.name.length + (JSON.stringify(call.arguments) ?? "").length + call.output.length;
}

/** The turns and tool calls a new model session gets back, under one budget: the newest first
 * when it cuts, so a call whose tools answered at length gives up its oldest turns, not its
 * context's size limit (tool outputs are up to 8,192 characters each). */
export function restorableContext(
  turns: readonly TurnRow[],
  toolCalls: readonly ToolCallRow[],
  maxChars = RESTORED_CONTEXT_MAX_CHARS,
): { turns: TurnRow[]; toolCalls: ToolCallRow[] } {
  const newestFirst = [
    ...turns.filter((turn) => turn.text.trim()).map((turn) => ({ seq: turn.seq, turn })),
    ...toolCalls.map((call) => ({ seq: call.seq, call })),
  ].sort((a, b) => b.seq - a.seq);
  let used = 0;
  const keptTurns: TurnRow[] = [];
  const keptCalls: ToolCallRow[] = [];
  for (const row of newestFirst) {
    const size = "turn" in row ? row.turn.text.length : toolCallChars(row.call);
    if (used + size > maxChars) break;
    used += size;
    if ("turn" in row) keptTurns.push(row.turn);
    else keptCalls.push(row.call);
  }
  if (keptTurns.length === 0 && keptCalls.length === 0) {
    // Nothing fits whole: the newest turn's end, as restorableTurns gives it.
    return { turns: restorableTurns(turns, maxChars), toolCalls: [] };
  }
  return { turns: keptTurns.reverse(), toolCalls: keptCalls.reverse() };
}

/** The calls row's end_reason while handed off; the connect action reads the mode back from it
 * (it may run on another worker than the one that handed off). */
export function handoffReason(trigger: HandoffTrigger, mode: ResumeMode): string {
  return `handoff:${trigger}:${mode}`;
}

export function resumeModeOf(endReason: string | null): ResumeMode {
  if (endReason === TRANSFER_UNANSWERED_REASON) return "transfer_unanswered";
  return endReason?.startsWith("handoff:") && endReason.endsWith(":reply") ? "reply" : "listen";
}

export function isResumeMode(value: string | undefined): value is ResumeMode {
  return value === "listen" || value === "reply" || value === "transfer_unanswered";
}

/** The calls row's end_reason while a call whose transfer nobody answered waits for its stream. */
export const TRANSFER_UNANSWERED_REASON = "handoff:transfer_unanswered";

/** Told to the new model session when the call came back from a transfer nobody answered. */
export const TRANSFER_UNANSWERED_PROMPT =
  "You transferred the caller to a person, but nobody answered the transfer, so the caller is " +
  "back with you on the line. Tell the caller briefly that nobody answered, and offer to help " +
  "them yourself or take a message. Do not greet the caller again.";

/** Told to the new model session (a system item) when it must speak first after a handoff. */
export const RESUME_PROMPT =
  "The phone line was just moved to a new connection and the caller is still on it. " +
  "Do not greet the caller again. If your last reply was cut off, finish it briefly without " +
  "repeating what you already said; if the caller's last message has no answer yet, answer it now.";
