// The per-call token the webhook hands to the stream as a <Parameter>. The stream's `start` frame
// carries customParameters verbatim, so without it anyone who could open the upgrade could claim
// any tenant or number; with it, only TwiML this function signed (HMAC-SHA256 keyed by the Twilio
// auth token), recently, is believed. That it is this call's stream, once, the call row decides
// (claim_call_stream, call_session.ts): a token proves who wrote the TwiML and when, not that
// nobody has used it yet.

import { hmacSha256Hex } from "./hmac.ts";
import { timingSafeEqual } from "./twilio_signature.ts";

export interface StreamClaims {
  callSid: string;
  tenantId: string;
  toNumber: string;
  /** On a stream that continues a handed-off call: which handoff and how to resume
   * (`<number>:<mode>`). Each stream of a call gets its own token, and these cannot be forged. */
  resume?: string;
  /** When the TwiML was signed, in unix seconds. */
  issuedAt: number;
}

// Twilio opens the stream as soon as it has fetched the TwiML (the socket is up within a second
// of the webhook's answer, `start` milliseconds later; the connect action's next stream the same),
// so a minute is generous for a slow network and a queued request while still making a captured
// TwiML useless soon after. Its tokens are checked by whichever worker the stream lands on, so
// clocks may differ slightly: a token up to a few seconds in the future is still believed.
export const STREAM_TOKEN_MAX_AGE_S = 60;
export const STREAM_TOKEN_MAX_SKEW_S = 5;

export type TokenVerdict = "valid" | "invalid" | "expired";

export async function streamToken(authToken: string, claims: StreamClaims): Promise<string> {
  // A separator no claim can contain keeps ("ab","c") and ("a","bc") apart.
  const resume = claims.resume ? `\nresume ${claims.resume}` : "";
  const message = `twilio-voice-stream\n${claims.callSid}\n${claims.tenantId}\n${claims.toNumber}${resume}` +
    `\nissued ${claims.issuedAt}`;
  return await hmacSha256Hex(authToken, message);
}

/** Whether `token` signs `claims` and was issued within the window around `nowS` (unix seconds).
 * The signature is checked first and in constant time; only a genuine token can be "expired". */
export async function verifyStreamToken(
  authToken: string,
  claims: StreamClaims,
  token: string,
  nowS: number,
): Promise<TokenVerdict> {
  if (/[\n]/.test(claims.callSid + claims.tenantId + claims.toNumber + (claims.resume ?? ""))) {
    return "invalid";
  }
  if (!Number.isSafeInteger(claims.issuedAt) || claims.issuedAt < 0) return "invalid";
  if (!timingSafeEqual(await streamToken(authToken, claims), token)) return "invalid";
  const age = nowS - claims.issuedAt;
  return age <= STREAM_TOKEN_MAX_AGE_S && age >= -STREAM_TOKEN_MAX_SKEW_S ? "valid" : "expired";
}
