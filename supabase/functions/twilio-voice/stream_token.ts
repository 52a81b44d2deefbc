// The per-call token the webhook hands to the stream as a <Parameter>. The stream's `start` frame
// carries customParameters verbatim, so without it anyone who could open the upgrade could claim
// any tenant or number; with it, only TwiML this function signed (HMAC-SHA256 keyed by the Twilio
// auth token) is believed.

import { timingSafeEqual } from "./twilio_signature.ts";

export interface StreamClaims {
  callSid: string;
  tenantId: string;
  toNumber: string;
  /** On a stream that continues a handed-off call: which handoff and how to resume
   * (`<number>:<mode>`). Each stream of a call gets its own token, and these cannot be forged. */
  resume?: string;
}

const encoder = new TextEncoder();

export async function streamToken(authToken: string, claims: StreamClaims): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(authToken),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  // A separator no claim can contain keeps ("ab","c") and ("a","bc") apart.
  const resume = claims.resume ? `\nresume ${claims.resume}` : "";
  const message = `twilio-voice-stream\n${claims.callSid}\n${claims.tenantId}\n${claims.toNumber}${resume}`;
  const digest = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export async function isValidStreamToken(
  authToken: string,
  claims: StreamClaims,
  token: string,
): Promise<boolean> {
  if (/[\n]/.test(claims.callSid + claims.tenantId + claims.toNumber + (claims.resume ?? ""))) return false;
  return timingSafeEqual(await streamToken(authToken, claims), token);
}
