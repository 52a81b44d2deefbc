// The Twilio side of a Media Stream for in-process tests: a signed upgrade (Deno's WebSocket cannot
// send headers, so npm:ws), then frames shaped like Twilio's.

import WebSocket from "ws";
import { computeSignature, type Param } from "../twilio_signature.ts";
import { waitFor } from "./realtime_stub.ts";

export interface TwilioStreamClient {
  /** Every frame the function sent, parsed. */
  received: Record<string, unknown>[];
  closed: Promise<number>;
  send(frame: Record<string, unknown>): void;
  start(callSid: string, customParameters: Record<string, string>): void;
  media(payload: string): void;
  /** Echo a mark, as Twilio does once the audio before it has played. */
  markPlayed(name: string): void;
  stop(): void;
  close(): void;
  waitFor<T>(probe: () => T | undefined | false, what: string): Promise<T>;
}

export const STREAM_SID = "MZ00000000000000000000000000000001";

export async function connectTwilioStream(
  streamUrl: string,
  authToken: string | null,
): Promise<TwilioStreamClient> {
  const headers: Record<string, string> = {};
  if (authToken !== null) headers["x-twilio-signature"] = await computeSignature(authToken, streamUrl);
  const socket = new WebSocket(streamUrl, { headers });
  const received: Record<string, unknown>[] = [];
  let sequence = 0;
  socket.on("message", (data: unknown) => received.push(JSON.parse(String(data))));
  const closed = new Promise<number>((resolve) => socket.on("close", (code: number) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    socket.on("open", () => resolve());
    socket.on("error", (error: Error) => reject(error));
  });
  const send = (frame: Record<string, unknown>) => {
    sequence++;
    socket.send(JSON.stringify({ sequenceNumber: String(sequence), ...frame }));
  };
  send({ event: "connected", protocol: "Call", version: "1.0.0" });
  let chunk = 0;
  return {
    received,
    closed,
    send,
    start: (callSid, customParameters) =>
      send({
        event: "start",
        streamSid: STREAM_SID,
        start: {
          streamSid: STREAM_SID,
          accountSid: "AC00000000000000000000000000000001",
          callSid,
          tracks: ["inbound"],
          customParameters,
          mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
        },
      }),
    media: (payload) => {
      chunk++;
      send({
        event: "media",
        streamSid: STREAM_SID,
        media: { track: "inbound", chunk: String(chunk), timestamp: String(chunk * 20), payload },
      });
    },
    markPlayed: (name) => send({ event: "mark", streamSid: STREAM_SID, mark: { name } }),
    stop: () =>
      send({
        event: "stop",
        streamSid: STREAM_SID,
        stop: { accountSid: "AC00000000000000000000000000000001", callSid: "" },
      }),
    close: () => socket.close(),
    waitFor: (probe, what) => waitFor(probe, what),
  };
}

/** A signed form POST, as Twilio sends its webhooks. */
export async function signedPost(url: string, authToken: string, params: Param[]): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": await computeSignature(authToken, url, params),
    },
    body: new URLSearchParams(params.map(([name, value]) => [name, value])),
  });
}
