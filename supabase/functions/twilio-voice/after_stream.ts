// What Twilio hears after the stream ends (the <Connect action> request). Twilio asks only when the
// function closed the stream while the caller is still on the line, so the call row, finalized
// before the close, says why.
//
// Issue 6 (long calls) adds a third answer here: a handed-off call gets a new <Connect><Stream>
// with a resume parameter.

import type { CallRecord, CallStatus } from "./store.ts";

export type AfterStream = "hang_up" | "apologize";

/**
 * @param call the call row, or null when it could not be read
 * @param localStatus how this worker saw the call end, if it served it (the row may still be
 *   queued for writing when Twilio asks)
 */
export function afterStream(call: CallRecord | null, localStatus: CallStatus | null): AfterStream {
  const status = call && call.status !== "in_progress" ? call.status : localStatus ?? call?.status ?? null;
  switch (status) {
    case "completed":
    case "handed_off":
      return "hang_up";
    default:
      // failed, or never finalized (the worker died mid-call), or unknown: the caller was cut off.
      return "apologize";
  }
}
