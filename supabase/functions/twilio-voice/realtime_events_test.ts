import assert from "node:assert/strict";
import {
  assistantTextItem,
  decodeAudioDeltaFast,
  decodeServerEvent,
  decodeServerEventFully,
  encodeAudioAppend,
  encodeFunctionCallOutput,
  encodeItemCreate,
  encodeResponseCreate,
  encodeSessionUpdate,
  encodeTruncate,
  flattenUsage,
  MAX_MODEL_FRAME_CHARS,
  textItem,
} from "./realtime_events.ts";
import { buildSessionConfig } from "./session_config.ts";
import { agreementMix, AWKWARD_PIECES, jsonMutations, random } from "./testing/json_mutations.ts";

const decode = (event: unknown) => decodeServerEvent(JSON.stringify(event));
const AUDIO = btoa("\xff".repeat(480));

Deno.test("audio deltas keep the item and the payload unchanged", () => {
  assert.deepEqual(
    decode({
      type: "response.output_audio.delta",
      event_id: "e",
      response_id: "r",
      item_id: "i1",
      output_index: 0,
      content_index: 0,
      delta: AUDIO,
    }),
    { ok: true, frame: { type: "response.output_audio.delta", responseId: "r", itemId: "i1", delta: AUDIO } },
  );
});

Deno.test("session.updated reports both audio formats", () => {
  const updated = decode({
    type: "session.updated",
    session: {
      type: "realtime",
      audio: {
        input: { format: { type: "audio/pcmu" } },
        output: { format: { type: "audio/pcm", rate: 24000 } },
      },
    },
  });
  assert.deepEqual(updated, {
    ok: true,
    frame: { type: "session.updated", inputFormat: "audio/pcmu", outputFormat: "audio/pcm" },
  });
  assert.deepEqual(decode({ type: "session.updated", session: {} }), {
    ok: true,
    frame: { type: "session.updated", inputFormat: null, outputFormat: null },
  });
});

Deno.test("errors, transcripts and conversation items decode", () => {
  assert.deepEqual(
    decode({
      type: "error",
      error: { type: "invalid_request_error", code: "invalid_api_key", message: "bad" },
    }),
    {
      ok: true,
      frame: { type: "error", code: "invalid_api_key", errorType: "invalid_request_error", message: "bad" },
    },
  );
  assert.deepEqual(decode({ type: "input_audio_buffer.speech_started", item_id: "u1", audio_start_ms: 10 }), {
    ok: true,
    frame: { type: "input_audio_buffer.speech_started", itemId: "u1" },
  });
  assert.deepEqual(
    decode({
      type: "conversation.item.added",
      previous_item_id: null,
      item: { id: "u1", type: "message", role: "user" },
    }),
    {
      ok: true,
      frame: { type: "conversation.item.added", itemId: "u1", role: "user" },
    },
  );
  assert.deepEqual(
    decode({
      type: "conversation.item.input_audio_transcription.completed",
      item_id: "u1",
      content_index: 0,
      transcript: "hello",
      usage: { type: "tokens", input_tokens: 3, output_tokens: 1, total_tokens: 4 },
    }),
    {
      ok: true,
      frame: {
        type: "conversation.item.input_audio_transcription.completed",
        itemId: "u1",
        transcript: "hello",
        usage: { input_tokens: 3, output_tokens: 1, total_tokens: 4 },
      },
    },
  );
  assert.deepEqual(
    decode({ type: "response.output_audio_transcript.done", item_id: "a1", transcript: "hi there" }),
    {
      ok: true,
      frame: { type: "response.output_audio_transcript.done", itemId: "a1", transcript: "hi there" },
    },
  );
});

Deno.test("response.done carries status, reason and flattened usage", () => {
  const done = decode({
    type: "response.done",
    response: {
      id: "r1",
      status: "cancelled",
      status_details: { type: "cancelled", reason: "turn_detected" },
      output: [
        {
          id: "a1",
          type: "message",
          role: "assistant",
          content: [{ type: "output_audio", transcript: "Sure, one" }],
        },
        { id: "a2", type: "message", role: "assistant", content: [{ type: "output_audio" }] },
        { id: "f1", type: "function_call", name: "x" },
      ],
      usage: {
        total_tokens: 30,
        input_tokens: 20,
        output_tokens: 10,
        input_token_details: {
          cached_tokens: 5,
          audio_tokens: 15,
          cached_tokens_details: { audio_tokens: 4 },
        },
        output_token_details: { audio_tokens: 8, text_tokens: 2 },
      },
    },
  });
  assert.deepEqual(done, {
    ok: true,
    frame: {
      type: "response.done",
      responseId: "r1",
      status: "cancelled",
      reason: "turn_detected",
      usage: {
        total_tokens: 30,
        input_tokens: 20,
        output_tokens: 10,
        "input_token_details.cached_tokens": 5,
        "input_token_details.audio_tokens": 15,
        "input_token_details.cached_tokens_details.audio_tokens": 4,
        "output_token_details.audio_tokens": 8,
        "output_token_details.text_tokens": 2,
      },
      transcripts: [{ itemId: "a1", transcript: "Sure, one" }],
      // f1 is no complete function_call (no call_id): nothing to run.
      functionCalls: [],
    },
  });
});

Deno.test("function calls: a done item decodes to its call, a message item to none; response.done lists completed ones", () => {
  const call = {
    id: "item_f",
    type: "function_call",
    call_id: "call_1",
    name: "lookup",
    arguments: '{"a":1}',
  };
  assert.deepEqual(
    decode({ type: "response.output_item.done", response_id: "r1", item: { ...call, status: "completed" } }),
    {
      ok: true,
      frame: {
        type: "response.output_item.done",
        responseId: "r1",
        call: { itemId: "item_f", callId: "call_1", name: "lookup", arguments: '{"a":1}' },
      },
    },
  );
  const message = { id: "a1", type: "message", role: "assistant", content: [] };
  assert.deepEqual(decode({ type: "response.output_item.done", response_id: "r1", item: message }), {
    ok: true,
    frame: { type: "response.output_item.done", responseId: "r1", call: null },
  });
  const done = decode({
    type: "response.done",
    response: {
      id: "r1",
      status: "completed",
      output: [message, call, { ...call, call_id: "c2", status: "incomplete" }],
    },
  });
  assert.ok(done.ok && done.frame.type === "response.done");
  assert.deepEqual(done.frame.functionCalls, [{
    itemId: "item_f",
    callId: "call_1",
    name: "lookup",
    arguments: '{"a":1}',
  }]);
});

Deno.test("a function_call_output is a conversation.item.create with the call's id", () => {
  assert.deepEqual(JSON.parse(encodeFunctionCallOutput("call_1", '{"ok":true}')), {
    type: "conversation.item.create",
    item: { type: "function_call_output", call_id: "call_1", output: '{"ok":true}' },
  });
});

Deno.test("beta names, bad shapes and oversized frames are refused; known GA noise is ignored", () => {
  assert.deepEqual(decode({ type: "response.audio.delta", item_id: "a", delta: AUDIO }), {
    ok: false,
    reason: "unknown_event",
    event: "response.audio.delta",
  });
  assert.deepEqual(decode({ type: "response.output_audio.delta", item_id: "a", delta: "not base64!" }), {
    ok: false,
    reason: "bad_shape",
    event: "response.output_audio.delta",
  });
  assert.deepEqual(decode({ type: "input_audio_buffer.speech_started" }).ok, false);
  assert.deepEqual(decodeServerEvent("x".repeat(MAX_MODEL_FRAME_CHARS + 1)), {
    ok: false,
    reason: "oversized",
  });
  assert.deepEqual(decodeServerEvent(new Uint8Array(2)), { ok: false, reason: "binary" });
  assert.deepEqual(decode({ type: "rate_limits.updated", rate_limits: [] }), {
    ok: true,
    frame: { type: "ignored", name: "rate_limits.updated" },
  });
});

Deno.test("client events encode to the GA JSON", () => {
  assert.equal(
    encodeAudioAppend(AUDIO),
    JSON.stringify({ type: "input_audio_buffer.append", audio: AUDIO }),
    "the hot path's template is byte for byte what JSON.stringify would send",
  );
  assert.deepEqual(JSON.parse(encodeItemCreate(textItem("dtmf_1", "user", "pressed 5"))), {
    type: "conversation.item.create",
    item: {
      id: "dtmf_1",
      type: "message",
      role: "user",
      content: [{ type: "input_text", text: "pressed 5" }],
    },
  });
  assert.equal(
    encodeTruncate("a1", 340),
    '{"type":"conversation.item.truncate","item_id":"a1","content_index":0,"audio_end_ms":340}',
  );
  assert.equal(encodeResponseCreate(), '{"type":"response.create"}');
});

Deno.test("session.update wraps the session as given", () => {
  const { session } = buildSessionConfig(null);
  assert.deepEqual(JSON.parse(encodeSessionUpdate(session)), { type: "session.update", session });
});

Deno.test("flattenUsage keeps numbers only", () => {
  assert.deepEqual(flattenUsage({ type: "tokens", input_tokens: 1, bad: "2", inf: Infinity, n: null }), {
    input_tokens: 1,
  });
  assert.deepEqual(flattenUsage(null), {});
});

Deno.test("the end of caller speech and the reply's transcript deltas decode (the handoff waits on them)", () => {
  assert.deepEqual(
    decodeServerEvent(JSON.stringify({ type: "input_audio_buffer.speech_stopped", item_id: "item_u" })),
    {
      ok: true,
      frame: { type: "input_audio_buffer.speech_stopped", itemId: "item_u" },
    },
  );
  assert.deepEqual(
    decodeServerEvent(
      JSON.stringify({ type: "response.output_audio_transcript.delta", item_id: "item_a", delta: "Hel" }),
    ),
    { ok: true, frame: { type: "response.output_audio_transcript.delta", itemId: "item_a", delta: "Hel" } },
  );
});

Deno.test("restored assistant turns encode as GA assistant messages with output_text", () => {
  assert.equal(
    encodeItemCreate(assistantTextItem("restored_1", "Nine to five.")),
    '{"type":"conversation.item.create","item":{"id":"restored_1","type":"message","role":"assistant",' +
      '"content":[{"type":"output_text","text":"Nine to five."}]}}',
  );
});

// ---- the audio delta fast path agrees with the full decoder ----

const DELTA_AGREEMENT_SEED = 0xde17a;
const DELTA_AGREEMENT_CASES = 20_000;

function deltaAgreementCases(seed: number, count: number): string[] {
  const next = random(seed);
  const { int, pick, base64, hex, shuffle, insert, replaceOne, insertAtQuote, escapeOne, hostileBase64 } =
    jsonMutations(next);

  function delta(): Record<string, unknown> {
    // 20 ms of µ-law is 160 bytes; the API also sends larger deltas, and the last one of a reply is short.
    const size = pick([0, 1, 2, 3, 160, 160, 160, 161, 480, 4800, int(4000)]);
    return {
      type: "response.output_audio.delta",
      event_id: "event_" + hex(pick([0, 8, 22])),
      response_id: pick(["resp_" + hex(22), "", "resp_A_b9"]),
      item_id: pick(["item_" + hex(22), "", "item_B"]),
      output_index: pick([0, 0, 1, 12]),
      content_index: pick([0, 0, 3]),
      delta: base64(size),
    };
  }
  const apiForm = (event: Record<string, unknown>) => JSON.stringify(event);

  function mutant(): string {
    const event = delta();
    const text = apiForm(event);
    switch (int(22)) {
      case 0:
        return apiForm(shuffle(event));
      case 1:
        return JSON.stringify(event, null, pick([1, 2, "\t"]));
      case 2:
        return insert(text, pick([" ", "\n", "\t", "\r"]));
      case 3:
        return escapeOne(text);
      case 4:
        return text.replace(
          '"type":"response.output_audio.delta"',
          pick(['"type":"response.output_audio.\\u0064elta"', '"\\u0074ype":"response.output_audio.delta"']),
        );
      case 5:
        // Duplicate keys: JSON.parse keeps the last one.
        return text.replace(
          '"delta":',
          pick([
            '"delta":"AAAA","delta":',
            '"delta":1,"delta":',
            '"item_id":"evil","delta":',
            '"type":"error","delta":',
          ]),
        );
      case 6:
        return text.slice(0, -1) +
          pick([
            ',"type":"error"}',
            ',"delta":null}',
            ',"extra":1}',
            ',"item_id":"item_2"}',
            ',"delta":"AAAA"}',
          ]);
      case 7:
        return text.replace(
          /"(output_index|content_index)":(\d+)/,
          pick(['"$1":"$2"', '"$1":0$2', '"$1":-$2', '"$1":$2.0', '"$1":$2e0', '"$1":null']),
        );
      case 8:
        return text.replace(/"delta":"[^"]*"/, pick(['"delta":123', '"delta":null', '"delta":["AAAA"]']));
      case 9:
        return text.replace(
          /"item_id":"[^"]*"/,
          pick([
            '"item_id":1',
            '"item_id":null',
            '"item_id":"it\\"em"',
            '"item_id":"\\u00e9"',
            '"item_id":"a-b"',
          ]),
        );
      case 10:
        return text.replace(
          /"response_id":"[^"]*"/,
          pick(['"response_id":1', '"response_id":null', '"response_id":"r\\/1"', '"response_id":"r.1"']),
        );
      case 11:
        return text.slice(0, int(text.length));
      case 12:
        return next() < 0.5 ? insert(text, pick(AWKWARD_PIECES)) : insertAtQuote(text, pick(AWKWARD_PIECES));
      case 13:
        return replaceOne(text, pick(AWKWARD_PIECES));
      case 14:
        return text.slice(0, int(text.length)) + text.slice(int(text.length));
      case 15:
        event.delta = hostileBase64();
        return apiForm(event);
      case 16: {
        // Around the size limit: the largest delta the decoder reads, and one more (rarely: 2 MB each).
        if (next() < 0.9) return text;
        const envelope = text.length - (event.delta as string).length;
        const room = MAX_MODEL_FRAME_CHARS - envelope;
        event.delta = "A".repeat(Math.floor(room / 4) * 4 + pick([-4, 0, 4]));
        return apiForm(event);
      }
      case 17:
        delete event[
          pick(["event_id", "response_id", "item_id", "output_index", "content_index", "delta", "type"])
        ];
        return apiForm(event);
      case 18:
        event.type = pick([
          "response.output_audio_transcript.delta",
          "response.audio.delta",
          "Response.output_audio.delta",
          "",
        ]);
        return apiForm(event);
      case 19:
        // Raw JSON spliced into the delta, as a sender that does not escape would write it.
        return text.replace(
          '"delta":"',
          '"delta":"' + pick(['AAAA","type":"error","x":"', 'AAAA","delta":"', 'AAAA"}', 'AA\\"']),
        );
      case 20:
        return "\ufeff" + text;
      default:
        return text + pick(["", " ", "\n", "}", "x"]);
    }
  }

  return agreementMix(next, count, {
    valid: () => apiForm(delta()),
    mutant,
    tokens: ['"type"', '"response.output_audio.delta"', '"delta"'],
  });
}

Deno.test("the audio delta fast path reads the API's own form; other spellings go to the full decoder", () => {
  // bench/loadgen.ts's peer writes the API's compact form.
  const compact =
    `{"type":"response.output_audio.delta","event_id":"event_bench","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"${AUDIO}"}`;
  const expected = {
    type: "response.output_audio.delta",
    responseId: "resp_1",
    itemId: "item_1",
    delta: AUDIO,
  };
  assert.deepEqual(decodeAudioDeltaFast(compact), expected);
  // The dev stack's loopback peer writes Python's json.dumps: spaces after separators.
  const spaced = JSON.stringify(JSON.parse(compact), null, 1);
  assert.equal(decodeAudioDeltaFast(spaced), null);
  assert.deepEqual(decodeServerEvent(spaced), { ok: true, frame: expected });
});

Deno.test("the audio delta fast path agrees with the full decoder on valid, near-valid and hostile events", () => {
  let fast = 0;
  for (const [index, data] of deltaAgreementCases(DELTA_AGREEMENT_SEED, DELTA_AGREEMENT_CASES).entries()) {
    const full = decodeServerEventFully(data);
    const audio = decodeAudioDeltaFast(data);
    const context = `case ${index} (seed ${DELTA_AGREEMENT_SEED}): ${JSON.stringify(data.slice(0, 400))}`;
    if (audio !== null) {
      fast++;
      assert.deepEqual({ ok: true, frame: audio }, full, context);
    }
    assert.deepEqual(decodeServerEvent(data), full, context);
  }
  // Not vacuous: the valid events and the harmless mutations take the fast path.
  assert.ok(
    fast > DELTA_AGREEMENT_CASES * 0.35,
    `only ${fast} of ${DELTA_AGREEMENT_CASES} took the fast path`,
  );
});

Deno.test("what is not text never reaches the audio delta fast path", () => {
  for (const data of [new ArrayBuffer(4), new Uint8Array([0x7b]), null, undefined, 5, { type: "x" }]) {
    assert.deepEqual(decodeServerEvent(data), decodeServerEventFully(data));
  }
});
