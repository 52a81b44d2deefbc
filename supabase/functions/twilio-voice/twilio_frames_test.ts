import assert from "node:assert/strict";
import {
  decodeTwilioFrame,
  decodeTwilioFrameFully,
  decodeTwilioMediaFast,
  MAX_TWILIO_FRAME_CHARS,
  twilioEncoder,
} from "./twilio_frames.ts";
import { agreementMix, AWKWARD_PIECES, jsonMutations, random } from "./testing/json_mutations.ts";

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

// ---- the media fast path agrees with the full decoder ----

const AGREEMENT_SEED = 0x7c0ffee;
const AGREEMENT_CASES = 20_000;

function agreementCases(seed: number, count: number): string[] {
  const next = random(seed);
  const { int, pick, base64, hex, shuffle, insert, replaceOne, insertAtQuote, escapeOne, hostileBase64 } =
    jsonMutations(next);
  const awkward = AWKWARD_PIECES;

  function media(): Record<string, unknown> {
    const chunk = 1 + int(100_000);
    const size = pick([0, 1, 2, 3, 160, 160, 160, 161, 320, int(4000)]);
    return {
      event: "media",
      sequenceNumber: String(chunk + 2),
      media: {
        track: pick(["inbound", "inbound", "outbound", "inbound_track", "x"]),
        chunk: String(chunk),
        timestamp: String(chunk * 20),
        payload: base64(size),
      },
      streamSid: "MZ" + hex(32),
    };
  }
  const twilioForm = (frame: Record<string, unknown>) => JSON.stringify(frame);

  function reordered(frame: Record<string, unknown>): string {
    return JSON.stringify({ ...shuffle(frame), media: shuffle(frame.media as Record<string, unknown>) });
  }

  function mutant(): string {
    const frame = media();
    const text = twilioForm(frame);
    const m = frame.media as Record<string, unknown>;
    switch (int(25)) {
      case 0:
        return reordered(frame);
      case 1:
        return JSON.stringify(frame, null, pick([1, 2, "\t"]));
      case 2:
        return insert(text, pick([" ", "\n", "\t", "\r"]));
      case 3:
        return escapeOne(text);
      case 4:
        return text.replace('"event":"media"', pick(['"event":"\\u006dedia"', '"\\u0065vent":"media"']));
      case 5:
        // Duplicate keys: JSON.parse keeps the last one.
        return text.replace(
          '"payload":',
          pick(['"payload":"AAAA","payload":', '"payload":1,"payload":', '"track":"evil","payload":']),
        );
      case 6:
        return text.slice(0, -1) +
          pick([',"event":"mark"}', ',"media":null}', ',"extra":1}', ',"streamSid":"MZ2"}']);
      case 7:
        return text.replace(/"(sequenceNumber|chunk|timestamp)":"(\d+)"/, '"$1":$2');
      case 8:
        return text.replace(
          /"payload":"[^"]*"/,
          pick(['"payload":123', '"payload":null', '"payload":["AAAA"]']),
        );
      case 9:
        return text.replace(
          /"track":"[a-z_]+"/,
          pick(['"track":1', '"track":null', '"track":"in\\"bound"', '"track":""']),
        );
      case 10:
        return text.slice(0, int(text.length));
      case 11:
        return next() < 0.5 ? insert(text, pick(awkward)) : insertAtQuote(text, pick(awkward));
      case 12:
        return replaceOne(text, pick(awkward));
      case 13:
        return text.slice(0, int(text.length)) + text.slice(int(text.length));
      case 14: {
        m.payload = hostileBase64();
        return twilioForm(frame);
      }
      case 15: {
        // Around the size limit: the last characters Twilio could send, and one more.
        const envelope = text.length - (m.payload as string).length;
        const room = MAX_TWILIO_FRAME_CHARS - envelope;
        const size = Math.floor(room / 4) * 4 + pick([-4, 0, 4]);
        m.payload = "A".repeat(size);
        const sized = twilioForm(frame);
        const spare = MAX_TWILIO_FRAME_CHARS - sized.length;
        return spare >= 0 && spare < 4
          ? sized.replace('"chunk":"', '"chunk":"' + "1".repeat(spare + int(2)))
          : sized;
      }
      case 16:
        frame.media = pick([null, [], "AAAA", 5, { payload: m.payload }]);
        return twilioForm(frame);
      case 17: {
        const drop = pick(["sequenceNumber", "streamSid", "event"]);
        delete frame[drop];
        return twilioForm(frame);
      }
      case 18: {
        delete m[pick(["track", "chunk", "timestamp", "payload"])];
        return twilioForm(frame);
      }
      case 19:
        frame.event = pick(["Media", "media ", "mark", "", "médía"]);
        return twilioForm(frame);
      case 20:
        frame.streamSid = pick(["MZ\u00e9", "MZ-1", "", "MZ" + hex(32) + "\\", 'MZ"1']);
        return twilioForm(frame);
      case 21:
        // A payload byte changed for another base64 character: still a valid frame, and still fast.
        return text.replace(
          /"payload":"([A-Za-z0-9+/]+)/,
          (all, body: string) => all.slice(0, -body.length) + replaceOne(body, pick(["A", "+", "/", "9"])),
        );
      case 22:
        return "\ufeff" + text;
      case 23:
        // Raw JSON spliced into the payload, as a sender that does not escape would write it.
        return text.replace(
          '"payload":"',
          '"payload":"' + pick(['AAAA"},"streamSid":"MZ1"},"x":"', 'AAAA","payload":"', 'AAAA"}}', 'AA\\"']),
        );
      default:
        return text + pick(["", " ", "\n", "}", "x"]);
    }
  }

  return agreementMix(next, count, {
    valid: () => twilioForm(media()),
    mutant,
    tokens: ['"event"', '"media"', '"payload"', '{"event":"media",'],
  });
}

Deno.test("the media fast path reads Twilio's own form; other spellings go to the full decoder", () => {
  const sid = "MZ18ad3ab5a668481ce02b83e7395059f0";
  // The docs' example as Twilio writes it on the wire (compact), and bench/loadgen.ts's frame.
  const docs =
    `{"event":"media","sequenceNumber":"3","media":{"track":"outbound","chunk":"1","timestamp":"5","payload":"${PAYLOAD}"},"streamSid":"${sid}"}`;
  const loadgen =
    `{"event":"media","sequenceNumber":"12","media":{"track":"inbound","chunk":"10","timestamp":"200","payload":"${PAYLOAD}"},"streamSid":"${sid}"}`;
  assert.deepEqual(decodeTwilioMediaFast(docs), { event: "media", track: "outbound", payload: PAYLOAD });
  assert.deepEqual(decodeTwilioMediaFast(loadgen), { event: "media", track: "inbound", payload: PAYLOAD });
  // The simulator writes Python's json.dumps: spaces after separators, streamSid before media.
  const simulator =
    `{"event": "media", "sequenceNumber": "12", "streamSid": "${sid}", "media": {"track": "inbound", "chunk": "10", "timestamp": "200", "payload": "${PAYLOAD}"}}`;
  assert.equal(decodeTwilioMediaFast(simulator), null);
  assert.deepEqual(decodeTwilioFrame(simulator), {
    ok: true,
    frame: { event: "media", track: "inbound", payload: PAYLOAD },
  });
});

Deno.test("the media fast path agrees with the full decoder on valid, near-valid and hostile frames", () => {
  let fast = 0;
  for (const [index, data] of agreementCases(AGREEMENT_SEED, AGREEMENT_CASES).entries()) {
    const full = decodeTwilioFrameFully(data);
    const media = decodeTwilioMediaFast(data);
    const context = `case ${index} (seed ${AGREEMENT_SEED}): ${JSON.stringify(data.slice(0, 400))}`;
    if (media !== null) {
      fast++;
      assert.deepEqual({ ok: true, frame: media }, full, context);
    }
    assert.deepEqual(decodeTwilioFrame(data), full, context);
  }
  // Not vacuous: the valid frames and the harmless mutations take the fast path.
  assert.ok(fast > AGREEMENT_CASES * 0.35, `only ${fast} of ${AGREEMENT_CASES} took the fast path`);
});

Deno.test("what is not text never reaches the fast path", () => {
  for (const data of [new ArrayBuffer(4), new Uint8Array([0x7b]), null, undefined, 5, { event: "media" }]) {
    assert.deepEqual(decodeTwilioFrame(data), decodeTwilioFrameFully(data));
  }
});
