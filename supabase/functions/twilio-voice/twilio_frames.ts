// Twilio Media Streams wire format, both ways. Pure: a string in, a typed frame out.
// https://www.twilio.com/docs/voice/media-streams/websocket-messages

import { type Decoded, isBase64, isObject, parseObject } from "./wire.ts";

export type TwilioFrame =
  | { event: "connected" }
  | {
    event: "start";
    streamSid: string;
    callSid: string;
    accountSid: string;
    customParameters: Record<string, string>;
    encoding: string | null;
  }
  | { event: "media"; track: string; payload: string }
  | { event: "mark"; name: string }
  | { event: "dtmf"; digit: string }
  | { event: "stop" };

// A media frame is ~300 characters (160 µ-law bytes as base64 plus envelope); `start` carries our
// few customParameters. Anything near this size is not a frame Twilio sends.
export const MAX_TWILIO_FRAME_CHARS = 64 * 1024;

function stringRecord(value: unknown): Record<string, string> {
  const record: Record<string, string> = {};
  if (!isObject(value)) return record;
  for (const [name, item] of Object.entries(value)) {
    if (typeof item === "string") record[name] = item;
  }
  return record;
}

export function decodeTwilioFrame(data: unknown): Decoded<TwilioFrame> {
  const parsed = parseObject(data, MAX_TWILIO_FRAME_CHARS);
  if (!parsed.ok) return parsed;
  const message = parsed.frame;
  const event = message.event;
  const bad = { ok: false, reason: "bad_shape", event: String(event) } as const;
  switch (event) {
    case "media": {
      const media = message.media;
      if (!isObject(media) || typeof media.payload !== "string" || !isBase64(media.payload)) return bad;
      const track = typeof media.track === "string" ? media.track : "inbound";
      return { ok: true, frame: { event, track, payload: media.payload } };
    }
    case "mark": {
      const mark = message.mark;
      if (!isObject(mark) || typeof mark.name !== "string") return bad;
      return { ok: true, frame: { event, name: mark.name } };
    }
    case "dtmf": {
      const dtmf = message.dtmf;
      if (!isObject(dtmf) || typeof dtmf.digit !== "string" || !/^[0-9*#A-D]$/.test(dtmf.digit)) return bad;
      return { ok: true, frame: { event, digit: dtmf.digit } };
    }
    case "start": {
      const start = message.start;
      if (!isObject(start) || typeof start.callSid !== "string") return bad;
      const streamSid = typeof start.streamSid === "string" ? start.streamSid : message.streamSid;
      if (typeof streamSid !== "string") return bad;
      const format = isObject(start.mediaFormat) ? start.mediaFormat : {};
      return {
        ok: true,
        frame: {
          event,
          streamSid,
          callSid: start.callSid,
          accountSid: typeof start.accountSid === "string" ? start.accountSid : "",
          customParameters: stringRecord(start.customParameters),
          encoding: typeof format.encoding === "string" ? format.encoding : null,
        },
      };
    }
    case "stop":
      return { ok: true, frame: { event } };
    case "connected":
      return { ok: true, frame: { event } };
    default:
      return { ok: false, reason: "unknown_event", event: String(event) };
  }
}

/** Builders for what the function sends Twilio, bound to one stream. The stream id is escaped once;
 * payloads are base64 (checked by the Realtime codec), so the hot path is string concatenation. */
export interface TwilioEncoder {
  media(payload: string): string;
  mark(name: string): string;
  clear(): string;
}

export function twilioEncoder(streamSid: string): TwilioEncoder {
  const sid = JSON.stringify(streamSid);
  const mediaPrefix = `{"event":"media","streamSid":${sid},"media":{"payload":"`;
  const markPrefix = `{"event":"mark","streamSid":${sid},"mark":{"name":`;
  const clear = `{"event":"clear","streamSid":${sid}}`;
  return {
    media: (payload) => mediaPrefix + payload + '"}}',
    mark: (name) => markPrefix + JSON.stringify(name) + "}}",
    clear: () => clear,
  };
}
