import assert from "node:assert/strict";
import { decodeTwilioFrame, MAX_TWILIO_FRAME_CHARS, twilioEncoder } from "./twilio_frames.ts";

const PAYLOAD = btoa(String.fromCharCode(...new Uint8Array(160).fill(0xff)));

function decode(message: unknown) {
  return decodeTwilioFrame(JSON.stringify(message));
}

Deno.test("start carries the call, the stream and the custom parameters", () => {
  const decoded = decode({
    event: "start",
    sequenceNumber: "1",
    streamSid: "MZ1",
    start: {
      streamSid: "MZ1",
      accountSid: "AC1",
      callSid: "CA1",
      tracks: ["inbound"],
      customParameters: { tenant_id: "t", token: "abc", ignored: 5 },
      mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
    },
  });
  assert.deepEqual(decoded, {
    ok: true,
    frame: {
      event: "start",
      streamSid: "MZ1",
      callSid: "CA1",
      accountSid: "AC1",
      customParameters: { tenant_id: "t", token: "abc" },
      encoding: "audio/x-mulaw",
    },
  });
});

Deno.test("media, mark, dtmf, stop and connected decode to their fields", () => {
  assert.deepEqual(
    decode({
      event: "media",
      sequenceNumber: "3",
      streamSid: "MZ1",
      media: { track: "inbound", chunk: "2", timestamp: "20", payload: PAYLOAD },
    }),
    { ok: true, frame: { event: "media", track: "inbound", payload: PAYLOAD } },
  );
  assert.deepEqual(decode({ event: "mark", streamSid: "MZ1", mark: { name: "item_1:40" } }), {
    ok: true,
    frame: { event: "mark", name: "item_1:40" },
  });
  assert.deepEqual(decode({ event: "dtmf", dtmf: { track: "inbound_track", digit: "#" } }), {
    ok: true,
    frame: { event: "dtmf", digit: "#" },
  });
  assert.deepEqual(decode({ event: "stop", stop: { accountSid: "AC1", callSid: "CA1" } }), {
    ok: true,
    frame: { event: "stop" },
  });
  assert.deepEqual(decode({ event: "connected", protocol: "Call", version: "1.0.0" }), {
    ok: true,
    frame: { event: "connected" },
  });
});

Deno.test("bad frames are refused with a reason, never thrown", () => {
  assert.deepEqual(decodeTwilioFrame(new ArrayBuffer(4)), { ok: false, reason: "binary" });
  assert.deepEqual(decodeTwilioFrame("x".repeat(MAX_TWILIO_FRAME_CHARS + 1)), {
    ok: false,
    reason: "oversized",
  });
  assert.deepEqual(decodeTwilioFrame("not json"), { ok: false, reason: "not_json" });
  assert.deepEqual(decode({ event: "dance" }), { ok: false, reason: "unknown_event", event: "dance" });
  assert.deepEqual(decode({ event: "media", media: { payload: 'x"}' } }), {
    ok: false,
    reason: "bad_shape",
    event: "media",
  });
  assert.deepEqual(decode({ event: "media" }), { ok: false, reason: "bad_shape", event: "media" });
  assert.deepEqual(decode({ event: "dtmf", dtmf: { digit: "12" } }), {
    ok: false,
    reason: "bad_shape",
    event: "dtmf",
  });
  assert.deepEqual(decode({ event: "start", start: {} }), { ok: false, reason: "bad_shape", event: "start" });
});

Deno.test("the encoder builds the JSON Twilio expects", () => {
  const encode = twilioEncoder('MZ"1');
  assert.deepEqual(JSON.parse(encode.media(PAYLOAD)), {
    event: "media",
    streamSid: 'MZ"1',
    media: { payload: PAYLOAD },
  });
  assert.deepEqual(JSON.parse(encode.mark('item"1:20')), {
    event: "mark",
    streamSid: 'MZ"1',
    mark: { name: 'item"1:20' },
  });
  assert.deepEqual(JSON.parse(encode.clear()), { event: "clear", streamSid: 'MZ"1' });
});
