// What Twilio hears after the stream ends (the <Connect action> request). Twilio asks only when the
// function closed the stream while the caller is still on the line, so the call row, finalized
// before the close, says why: a failure gets the apology, a completed call a hang-up, and a call
// handed off at the worker's wall clock (handoff.ts) a new <Connect><Stream> that continues it.

import { type ResumeMode, resumeModeOf } from "./handoff.ts";
import type { CallRecord, CallStatus } from "./store.ts";

export type AfterStream = "hang_up" | "apologize" | "resume";

/** How a stream served by this worker ended (the row may still be queued for writing). */
export interface LocalOutcome {
  status: CallStatus;
  reason: string;
}

/**
 * @param call the call row, or null when it could not be read
 * @param local how this worker saw the call end, if it served it
 */
export function afterStream(call: CallRecord | null, local: LocalOutcome | null): AfterStream {
  const status = call && call.status !== "in_progress" ? call.status : local?.status ?? call?.status ?? null;
  switch (status) {
    case "completed":
      return "hang_up";
    case "handed_off":
      // Without the row there is no tenant to continue with, and the next stream could not
      // resume it either.
      return call === null ? "apologize" : "resume";
    default:
      // failed, or never finalized (the worker died mid-call), or unknown: the caller was cut off.
      return "apologize";
  }
}

/** The next stream of a handed-off call: its handoff number and how the model resumes. */
export function nextStream(
  call: CallRecord,
  local: LocalOutcome | null,
): { handoff: number; mode: ResumeMode } {
  const reason = call.status === "handed_off" ? call.endReason : local?.reason ?? null;
  // handoff_count counts resumed handoffs; this stream resumes the next one.
  return { handoff: call.handoffCount + 1, mode: resumeModeOf(reason) };
}
