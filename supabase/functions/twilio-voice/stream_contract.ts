// The stream/handoff contract in one place: the <Parameter>s the webhook puts on the
// <Connect><Stream>, building that TwiML with the token that signs them, parsing and verifying
// them from the stream's `start` frame, and what Twilio hears after the stream ends (the <Connect
// action> request). Twilio asks only when the function closed the stream while the caller is still
// on the line, so the call row, finalized before the close, says why: a failure gets the apology, a
// completed call a hang-up, and a call handed off at the worker's wall clock (handoff.ts) a new
// <Connect><Stream> that continues it.

import { isResumeMode, type ResumeMode, resumeModeOf } from "./handoff.ts";
import type { CallRecord, CallStatus, TransferOutcome } from "./store.ts";
import { streamToken, verifyStreamToken } from "./stream_token.ts";
import { connectStreamTwiml } from "./twiml.ts";

/** Names of the <Parameter>s the webhook puts on the stream (handoff and resume only on a stream
 * that continues a handed-off call). */
export const STREAM_PARAMS = {
  tenantId: "tenant_id",
  toNumber: "to_number",
  token: "stream_token",
  handoff: "handoff",
  resume: "resume",
  issuedAt: "issued_at",
} as const;

/** What the webhook tells the stream; `resume` only on a stream that continues a handed-off call. */
export interface StreamStart {
  tenantId: string;
  toNumber: string;
  token: string;
  resume: { handoff: number; mode: ResumeMode } | null;
  /** When the token was signed (unix seconds); -1 when the parameter is missing. */
  issuedAt: number;
}

/** One stream of a call, as the webhook or the connect action starts it and the stream, once its
 * token checks out, believes it. */
export interface StreamCall {
  callSid: string;
  tenantId: string;
  toNumber: string;
  resume: StreamStart["resume"];
}

/** The TwiML that starts a stream of `call`, with a token signing all of it (resume and the
 * time of signing, `issuedAt` in unix seconds, included). */
export async function signedStreamTwiml(
  authToken: string,
  urls: { actionUrl: string; streamUrl: string },
  call: StreamCall,
  issuedAt: number,
): Promise<string> {
  const token = await streamToken(authToken, { ...call, resume: resumeClaim(call.resume), issuedAt });
  return streamTwiml(urls, {
    tenantId: call.tenantId,
    toNumber: call.toNumber,
    token,
    resume: call.resume,
    issuedAt,
  });
}

export type StreamVerification =
  | { ok: true; call: StreamCall }
  | { ok: false; reason: "bad_stream_token" | "stream_token_expired" };

/** The stream's call from its `start` frame (CallSid and customParameters), unless the parameters
 * are malformed, the token does not sign them, or it was signed outside the window around `nowS`
 * (unix seconds; stream_token.ts). */
export async function verifyStreamStart(
  authToken: string,
  callSid: string,
  params: Record<string, string>,
  nowS: number,
): Promise<StreamVerification> {
  const start = parseStreamStart(params);
  if (start === "invalid" || !start.token || !start.tenantId) {
    return { ok: false, reason: "bad_stream_token" };
  }
  const call = { callSid, tenantId: start.tenantId, toNumber: start.toNumber, resume: start.resume };
  const claims = { ...call, resume: resumeClaim(start.resume), issuedAt: start.issuedAt };
  switch (await verifyStreamToken(authToken, claims, start.token, nowS)) {
    case "valid":
      return { ok: true, call };
    case "expired":
      return { ok: false, reason: "stream_token_expired" };
    case "invalid":
      return { ok: false, reason: "bad_stream_token" };
  }
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
    [STREAM_PARAMS.issuedAt]: String(start.issuedAt),
  };
  if (start.resume) {
    parameters[STREAM_PARAMS.handoff] = String(start.resume.handoff);
    parameters[STREAM_PARAMS.resume] = start.resume.mode;
  }
  return connectStreamTwiml({ ...urls, parameters });
}

/** The `start` frame's customParameters read back; "invalid" when the resume pair is malformed
 * (half present, a handoff number that is not 1..999999, an unknown mode) or the issue time is not
 * a number of seconds. Missing strings are "" and a missing time -1, so the token check rejects
 * them. */
export function parseStreamStart(params: Record<string, string>): StreamStart | "invalid" {
  const handoff = params[STREAM_PARAMS.handoff];
  const mode = params[STREAM_PARAMS.resume];
  let resume: StreamStart["resume"] = null;
  if (handoff !== undefined || mode !== undefined) {
    if (!/^[1-9][0-9]{0,5}$/.test(handoff ?? "") || !isResumeMode(mode)) return "invalid";
    resume = { handoff: Number(handoff), mode };
  }
  const issuedAt = params[STREAM_PARAMS.issuedAt];
  if (issuedAt !== undefined && !/^[0-9]{1,12}$/.test(issuedAt)) return "invalid";
  return {
    tenantId: params[STREAM_PARAMS.tenantId] ?? "",
    toNumber: params[STREAM_PARAMS.toNumber] ?? "",
    token: params[STREAM_PARAMS.token] ?? "",
    resume,
    issuedAt: issuedAt === undefined ? -1 : Number(issuedAt),
  };
}

/** The resume claim signed into a resumed stream's token (stream_token.ts). */
export function resumeClaim(resume: StreamStart["resume"]): string | undefined {
  return resume ? `${resume.handoff}:${resume.mode}` : undefined;
}

export type AfterStream = "hang_up" | "apologize" | "resume" | "transfer";

/** How a stream served by this worker ended (the row may still be queued for writing). */
export interface LocalOutcome {
  status: CallStatus;
  reason: string;
  /** Which stream of the call it was: 0 the first, n the one that resumed handoff n. */
  stream: number;
  /** The transfer tool ended the stream: the number to dial. */
  transferTo?: string;
}

/** This worker's outcome for the call, while it is still news: a connect action may beat the
 * row's write, but once the row has been claimed by a later stream (handoff_count moved past the
 * outcome's stream) that outcome is history, and a replayed connect action must not act on it. */
export function currentLocalOutcome(
  call: CallRecord | null,
  local: LocalOutcome | null,
): LocalOutcome | null {
  if (local === null || call === null) return local;
  return call.handoffCount === local.stream ? local : null;
}

/**
 * @param call the call row, or null when it could not be read
 * @param local how this worker saw the call end, if it served it
 */
export function afterStream(call: CallRecord | null, local: LocalOutcome | null): AfterStream {
  const status = call && call.status !== "in_progress" ? call.status : local?.status ?? call?.status ?? null;
  switch (status) {
    case "completed":
      // A transfer is dialled once: after Twilio reported its outcome, a replay only hangs up.
      return transferTarget(call, local) !== null && !call?.transferOutcome ? "transfer" : "hang_up";
    case "handed_off":
      // Without the row there is no tenant to continue with, and the next stream could not
      // resume it either.
      return call === null ? "apologize" : "resume";
    default:
      // failed, or never finalized (the worker died mid-call), or unknown: the caller was cut off.
      return "apologize";
  }
}

/** The number a call's transfer dials: from the row, or from this worker's outcome before the row
 * is written. */
export function transferTarget(call: CallRecord | null, local: LocalOutcome | null): string | null {
  if (call?.status === "completed") return call.transferTo ?? local?.transferTo ?? null;
  return local?.status === "completed" ? local.transferTo ?? null : null;
}

/**
 * Twilio's DialCallStatus on the transfer's <Dial action> request: what the row records, and
 * whether the call comes back to the agent (nobody took it) or is over (taken, or the caller hung
 * up while it rang). https://www.twilio.com/docs/voice/twiml/dial#dialcallstatus
 */
export function transferOutcomeOf(dialCallStatus: string): { outcome: TransferOutcome; comesBack: boolean } {
  switch (dialCallStatus) {
    case "completed":
    case "answered":
      return { outcome: "answered", comesBack: false };
    case "busy":
    case "no-answer":
      return { outcome: dialCallStatus, comesBack: true };
    case "canceled":
      return { outcome: "canceled", comesBack: false };
    default:
      return { outcome: "failed", comesBack: true };
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
