import assert from "node:assert/strict";
import {
  assistantTextItem,
  decodeServerEvent,
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
