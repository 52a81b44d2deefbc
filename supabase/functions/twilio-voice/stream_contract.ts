// The stream/handoff contract in one place: the <Parameter>s the webhook puts on the
// <Connect><Stream>, building that TwiML with the token that signs them, parsing and verifying
// them from the stream's `start` frame, and what Twilio hears after the stream ends (the <Connect
// action> request). Twilio asks only when the function closed the stream while the caller is still
// on the line, so the call row, finalized before the close, says why: a failure gets the apology, a
// completed call a hang-up, and a call handed off at the worker's wall clock (handoff.ts) a new
// <Connect><Stream> that continues it.

import { isResumeMode, type ResumeMode, resumeModeOf } from "./handoff.ts";
import type { CallRecord, CallStatus } from "./store.ts";
import { isValidStreamToken, streamToken } from "./stream_token.ts";
import { connectStreamTwiml } from "./twiml.ts";

/** Names of the <Parameter>s the webhook puts on the stream (handoff and resume only on a stream
 * that continues a handed-off call). */
export const STREAM_PARAMS = {
  tenantId: "tenant_id",
  toNumber: "to_number",
  token: "stream_token",
  handoff: "handoff",
  resume: "resume",
} as const;

/** What the webhook tells the stream; `resume` only on a stream that continues a handed-off call. */
export interface StreamStart {
  tenantId: string;
  toNumber: string;
  token: string;
  resume: { handoff: number; mode: ResumeMode } | null;
}

/** One stream of a call, as the webhook or the connect action starts it and the stream, once its
 * token checks out, believes it. */
export interface StreamCall {
  callSid: string;
  tenantId: string;
  toNumber: string;
  resume: StreamStart["resume"];
}

/** The TwiML that starts a stream of `call`, with a token signing all of it (resume included). */
export async function signedStreamTwiml(
  authToken: string,
  urls: { actionUrl: string; streamUrl: string },
  call: StreamCall,
): Promise<string> {
  const token = await streamToken(authToken, { ...call, resume: resumeClaim(call.resume) });
  return streamTwiml(urls, { tenantId: call.tenantId, toNumber: call.toNumber, token, resume: call.resume });
}

/** The stream's call from its `start` frame (CallSid and customParameters), or null when the
 * parameters are malformed or the token does not sign them. */
export async function verifyStreamStart(
  authToken: string,
  callSid: string,
  params: Record<string, string>,
): Promise<StreamCall | null> {
  const start = parseStreamStart(params);
  if (start === "invalid" || !start.token || !start.tenantId) return null;
  const call = { callSid, tenantId: start.tenantId, toNumber: start.toNumber, resume: start.resume };
  const claims = { ...call, resume: resumeClaim(start.resume) };
  return await isValidStreamToken(authToken, claims, start.token) ? call : null;
}

/** The <Connect><Stream> TwiML for a first stream or (with `resume`) a resumed one. */
export function streamTwiml(
  urls: { actionUrl: string; streamUrl: string },
  start: StreamStart,
): string {
  const parameters: Record<string, string> = {
    [STREAM_PARAMS.tenantId]: start.tenantId,
    [STREAM_PARAMS.toNumber]: start.toNumber,
    [STREAM_PARAMS.token]: start.token,
  };
  if (start.resume) {
    parameters[STREAM_PARAMS.handoff] = String(start.resume.handoff);
    parameters[STREAM_PARAMS.resume] = start.resume.mode;
  }
  return connectStreamTwiml({ ...urls, parameters });
}

/** The `start` frame's customParameters read back; "invalid" when the resume pair is malformed
 * (half present, a handoff number that is not 1..999999, an unknown mode). Missing strings are
 * "" so the token check rejects them. */
export function parseStreamStart(params: Record<string, string>): StreamStart | "invalid" {
  const handoff = params[STREAM_PARAMS.handoff];
  const mode = params[STREAM_PARAMS.resume];
  let resume: StreamStart["resume"] = null;
  if (handoff !== undefined || mode !== undefined) {
    if (!/^[1-9][0-9]{0,5}$/.test(handoff ?? "") || !isResumeMode(mode)) return "invalid";
    resume = { handoff: Number(handoff), mode };
  }
  return {
    tenantId: params[STREAM_PARAMS.tenantId] ?? "",
    toNumber: params[STREAM_PARAMS.toNumber] ?? "",
    token: params[STREAM_PARAMS.token] ?? "",
    resume,
  };
}

/** The resume claim signed into a resumed stream's token (stream_token.ts). */
export function resumeClaim(resume: StreamStart["resume"]): string | undefined {
  return resume ? `${resume.handoff}:${resume.mode}` : undefined;
}

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
