import assert from "node:assert/strict";
import {
  type BridgeOptions,
  type BridgeSink,
  CallBridge,
  type CallOutcome,
  type CallStarted,
  END_CALL_OUTPUT,
  MAX_BUFFERED_AUDIO_CHARS,
  MAX_BUFFERED_FRAMES,
  type ToolRun,
} from "./bridge.ts";
import { RESUME_PROMPT } from "./handoff.ts";
import { MARK_EVERY_MS } from "./playback.ts";
import type { ClientEvent, ServerEvent } from "./realtime_events.ts";
import { buildSessionConfig } from "./session_config.ts";
import type { TenantTool, ToolCallRow, TurnRow } from "./store.ts";
import { metricsFromRow, type TurnMeasurement } from "./turn_latency.ts";

const CALL_SID = "CA0123456789abcdef0123456789abcdef";
const TENANT = "7f2c1d7e-3a5b-4c1d-9e8f-0a1b2c3d4e5f";

/** µ-law audio of `ms` milliseconds, as Twilio and the model carry it. */
function audio(ms: number, fill = 0xff): string {
  return btoa(String.fromCharCode(...new Uint8Array(ms * 8).fill(fill)));
}

type Sent =
  | { to: "model"; event: ClientEvent }
  | { to: "model-audio"; payload: string }
  | { to: "twilio"; media?: string; mark?: string; clear?: true };

class Recorder implements BridgeSink {
  sent: Sent[] = [];
  turns: TurnRow[] = [];
  outcomes: CallOutcome[] = [];
  logs: string[] = [];
  toolRuns: ToolRun[] = [];
  toolCalls: ToolCallRow[] = [];
  /** Decoded back, so a test reads what went over the wire as data. */
  model(message: string) {
    const event: ClientEvent = JSON.parse(message);
    if (event.type === "input_audio_buffer.append") {
      this.sent.push({ to: "model-audio", payload: event.audio });
    } else this.sent.push({ to: "model", event });
  }
  twilioMedia(payload: string) {
    this.sent.push({ to: "twilio", media: payload });
  }
  twilioMark(name: string) {
    this.sent.push({ to: "twilio", mark: name });
  }
  twilioClear() {
    this.sent.push({ to: "twilio", clear: true });
  }
  turn(row: TurnRow) {
    this.turns.push(row);
  }
  runTool(run: ToolRun) {
    this.toolRuns.push(run);
  }
  toolCall(row: ToolCallRow) {
    this.toolCalls.push(row);
  }
  log(_level: string, event: string) {
    this.logs.push(event);
  }
  end(outcome: CallOutcome) {
    this.outcomes.push(outcome);
  }
  /** What was sent since the last drain. */
  drain(): Sent[] {
    const sent = this.sent;
    this.sent = [];
    return sent;
  }
  modelEvents(): ClientEvent[] {
    return this.drain().flatMap((sent) => sent.to === "model" ? [sent.event] : []);
  }
}

function newBridge(
  { greeting = null, turnDetection = null, ...started }:
    & {
      greeting?: string | null;
      turnDetection?: Record<string, unknown> | null;
    }
    & Pick<
      CallStarted,
      "handoff" | "resume" | "firstSeq" | "priorUsage" | "priorMetrics" | "tools"
    > = {},
  bridgeOptions: Partial<BridgeOptions> = {},
) {
  const sink = new Recorder();
  let ids = 0;
  // A clock that stands still unless a test moves it: what was heard then comes from the echoes
  // alone (the playout model between them is playback_test.ts's).
  const bridge = new CallBridge(sink, {
    newItemId: (kind) => `${kind}_${++ids}`,
    clock: () => 0,
    ...bridgeOptions,
  });
  const { session } = buildSessionConfig({
    instructions: null,
    voice: null,
    greeting,
    model: null,
    transcriptionModel: null,
    turnDetection,
  }, started.tools ?? []);
  const begin = () =>
    bridge.begin({ callSid: CALL_SID, streamSid: "MZ1", tenantId: TENANT, session, greeting, ...started });
  return { sink, bridge, session, begin };
}

const UPDATED_PCMU: ServerEvent = {
  type: "session.updated",
  inputFormat: "audio/pcmu",
  outputFormat: "audio/pcmu",
};

function liveBridge(
  options: Parameters<typeof newBridge>[0] = {},
  bridgeOptions: Partial<BridgeOptions> = {},
) {
  const made = newBridge(options, bridgeOptions);
  made.begin();
  made.bridge.modelOpened();
  made.bridge.onModelEvent(UPDATED_PCMU);
  made.sink.drain();
  return made;
}

function delta(itemId: string, ms: number, responseId = "resp_1"): ServerEvent {
  return { type: "response.output_audio.delta", responseId, itemId, delta: audio(ms) };
}

const media = (payload: string) => ({ event: "media", track: "inbound", payload }) as const;

Deno.test("caller audio is buffered until the session is confirmed, then sent in order", () => {
  const { sink, bridge, session, begin } = newBridge();
  bridge.onTwilioFrame(media(audio(20, 1)));
  begin();
  bridge.onTwilioFrame(media(audio(20, 2)));
  assert.deepEqual(sink.drain(), [], "nothing goes to a model socket that is not open");
  bridge.modelOpened();
  assert.deepEqual(sink.drain(), [{ to: "model", event: { type: "session.update", session } }]);
  bridge.onModelEvent({ type: "session.created" });
  bridge.onTwilioFrame(media(audio(20, 3)));
  assert.deepEqual(sink.drain(), [], "session.created is the default session, not ours");
  bridge.onModelEvent(UPDATED_PCMU);
  assert.equal(bridge.phase, "live");
  assert.deepEqual(sink.drain(), [1, 2, 3].map((fill) => ({ to: "model-audio", payload: audio(20, fill) })));
  bridge.onTwilioFrame(media(audio(20, 4)));
  assert.deepEqual(sink.drain(), [{ to: "model-audio", payload: audio(20, 4) }]);
  assert.equal(bridge.stats.callerFrames, 4);
});

Deno.test("the buffer is bounded: the oldest frames go first and are counted", () => {
  const { sink, bridge, begin } = newBridge();
  begin();
  for (let i = 0; i < MAX_BUFFERED_FRAMES + 5; i++) {
    // 160 bytes a frame, as Twilio sends: 216 base64 characters.
    bridge.onTwilioFrame(media(btoa(String(i).padStart(3, "0") + "x".repeat(157))));
  }
  bridge.modelOpened();
  bridge.onModelEvent(UPDATED_PCMU);
  const flushed = sink.drain().filter((sent) => sent.to === "model-audio");
  assert.equal(flushed.length, MAX_BUFFERED_FRAMES);
  assert.deepEqual(flushed[0], { to: "model-audio", payload: btoa("005" + "x".repeat(157)) });
  assert.equal(bridge.stats.bufferedFramesDropped, 5);
});

Deno.test("oversized frames cannot stretch the buffer: it is bounded in characters and lets go of dropped ones", () => {
  const { bridge, begin } = newBridge();
  begin();
  const huge = "A".repeat(60 * 1024);
  for (let i = 0; i < 4000; i++) {
    bridge.onTwilioFrame(media(huge));
    assert.ok(bridge.bufferedAudioChars <= MAX_BUFFERED_AUDIO_CHARS + huge.length);
  }
  assert.ok(bridge.bufferedAudioChars <= MAX_BUFFERED_AUDIO_CHARS);
  assert.equal(bridge.stats.bufferedFramesDropped, 4000 - Math.floor(MAX_BUFFERED_AUDIO_CHARS / huge.length));
});

Deno.test("a session that is not µ-law both ways ends the call as failed, relaying nothing", () => {
  const { sink, bridge, begin } = newBridge();
  begin();
  bridge.onTwilioFrame(media(audio(20)));
  bridge.modelOpened();
  sink.drain();
  bridge.onModelEvent({ type: "session.updated", inputFormat: "audio/pcmu", outputFormat: "audio/pcm" });
  assert.deepEqual(sink.drain(), []);
  assert.equal(sink.outcomes.length, 1);
  assert.equal(sink.outcomes[0].status, "failed");
  assert.equal(sink.outcomes[0].reason, "session_not_pcmu");
  assert.equal(sink.outcomes[0].callSid, CALL_SID);
});

Deno.test("an error before the session is confirmed fails the call; after, it is only logged", () => {
  const early = newBridge();
  early.begin();
  early.bridge.modelOpened();
  early.bridge.onModelEvent({
    type: "error",
    code: "unknown_parameter",
    errorType: "invalid_request_error",
    message: "x",
  });
  assert.equal(early.sink.outcomes[0].reason, "model_error:unknown_parameter");

  const live = liveBridge();
  live.bridge.onModelEvent({
    type: "error",
    code: "response_cancel_not_active",
    errorType: "x",
    message: "x",
  });
  assert.equal(live.bridge.phase, "live");
  assert.equal(live.bridge.stats.modelErrors, 1);
});

Deno.test("model audio before the session is confirmed never reaches Twilio", () => {
  const { sink, bridge, begin } = newBridge();
  begin();
  bridge.modelOpened();
  sink.drain();
  bridge.onModelEvent(delta("item_a", 40));
  assert.deepEqual(sink.drain(), []);
  assert.equal(bridge.stats.modelAudioDropped, 1);
});

Deno.test("a greeting makes the assistant speak first, and its prompt is not a turn", () => {
  const { sink, bridge, begin } = newBridge({ greeting: "Thanks for calling Acme!" });
  begin();
  bridge.onTwilioFrame(media(audio(20)));
  bridge.modelOpened();
  sink.drain();
  bridge.onModelEvent(UPDATED_PCMU);
  const sent = sink.drain();
  assert.equal(sent.length, 3);
  const [create, respond, buffered] = sent;
  assert.equal(create.to, "model");
  assert.ok(
    create.to === "model" && create.event.type === "conversation.item.create" &&
      create.event.item.type === "message",
  );
  assert.equal(create.event.item.id, "greeting_1");
  assert.equal(create.event.item.role, "system");
  assert.match(create.event.item.content[0].text, /Thanks for calling Acme!/);
  assert.deepEqual(respond, { to: "model", event: { type: "response.create" } });
  assert.deepEqual(buffered, { to: "model-audio", payload: audio(20) });

  bridge.onModelEvent({ type: "conversation.item.added", itemId: "greeting_1", role: "system" });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  bridge.onModelEvent({ type: "response.output_item.added", itemId: "item_a", role: "assistant" });
  bridge.onModelEvent({
    type: "response.output_audio_transcript.done",
    itemId: "item_a",
    transcript: "Thanks for calling Acme!",
  });
  assert.deepEqual(sink.turns, [
    {
      tenantId: TENANT,
      callSid: CALL_SID,
      role: "assistant",
      text: "Thanks for calling Acme!",
      itemId: "item_a",
      seq: 0,
      interrupted: false,
    },
  ]);
});

Deno.test("assistant audio goes to Twilio unchanged, marked after 100 ms, then every MARK_EVERY_MS, and where the response ends", () => {
  const { sink, bridge } = liveBridge();
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  bridge.onModelEvent(delta("item_a", 100));
  bridge.onModelEvent(delta("item_a", MARK_EVERY_MS - 200));
  bridge.onModelEvent(delta("item_a", 260));
  bridge.onModelEvent(delta("item_a", 20));
  assert.deepEqual(sink.drain(), [
    { to: "twilio", media: audio(100) },
    { to: "twilio", mark: "item_a:100" },
    { to: "twilio", media: audio(MARK_EVERY_MS - 200) },
    { to: "twilio", media: audio(260) },
    { to: "twilio", mark: `item_a:${MARK_EVERY_MS + 160}` },
    { to: "twilio", media: audio(20) },
  ]);
  assert.equal(bridge.stats.assistantAudioMs, MARK_EVERY_MS + 180);
  assert.equal(bridge.quiet, false, "20 ms sent after the last mark is still queued at Twilio");
  responseDone(bridge, "resp_1", "item_a", "Hello there.");
  assert.deepEqual(sink.drain(), [{ to: "twilio", mark: `item_a:${MARK_EVERY_MS + 180}` }]);
  bridge.onTwilioFrame({ event: "mark", name: "item_a:100" });
  bridge.onTwilioFrame({ event: "mark", name: `item_a:${MARK_EVERY_MS + 160}` });
  assert.equal(bridge.quiet, false);
  bridge.onTwilioFrame({ event: "mark", name: `item_a:${MARK_EVERY_MS + 180}` });
  assert.equal(bridge.quiet, true);
});

Deno.test("speech over audio sent since the last mark is still a barge-in", () => {
  const { sink, bridge } = liveBridge();
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  bridge.onModelEvent(delta("item_a", 100));
  bridge.onTwilioFrame({ event: "mark", name: "item_a:100" });
  bridge.onModelEvent(delta("item_a", 40));
  sink.drain();
  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u" });
  assert.deepEqual(sink.drain(), [
    { to: "twilio", clear: true },
    {
      to: "model",
      event: { type: "conversation.item.truncate", item_id: "item_a", content_index: 0, audio_end_ms: 100 },
    },
  ]);
});

Deno.test("barge-in clears Twilio and truncates to what the marks say was heard", () => {
  const { sink, bridge } = liveBridge();
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  bridge.onModelEvent(delta("item_a", 100));
  bridge.onModelEvent(delta("item_a", MARK_EVERY_MS));
  bridge.onModelEvent(delta("item_a", 100));
  bridge.onModelEvent(delta("item_b", 100));
  bridge.onModelEvent({
    type: "response.output_audio_transcript.done",
    itemId: "item_a",
    transcript: "One two three.",
  });
  bridge.onTwilioFrame({ event: "mark", name: "item_a:100" });
  sink.drain();

  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u" });
  assert.deepEqual(sink.drain(), [
    { to: "twilio", clear: true },
    {
      to: "model",
      event: { type: "conversation.item.truncate", item_id: "item_a", content_index: 0, audio_end_ms: 100 },
    },
    {
      to: "model",
      event: { type: "conversation.item.truncate", item_id: "item_b", content_index: 0, audio_end_ms: 0 },
    },
  ]);
  assert.deepEqual(sink.turns.map((turn) => [turn.itemId, turn.interrupted]), [["item_a", false], [
    "item_a",
    true,
  ]]);

  // Twilio echoes the pending marks at once because of the clear: they were never heard.
  bridge.onTwilioFrame({ event: "mark", name: `item_a:${100 + MARK_EVERY_MS}` });
  bridge.onTwilioFrame({ event: "mark", name: "item_b:100" });
  assert.equal(bridge.stats.marksIgnored, 2);
  // Deltas already on the wire for the cancelled response are dropped.
  bridge.onModelEvent(delta("item_b", 20));
  assert.deepEqual(sink.drain(), []);
  bridge.onModelEvent({
    type: "response.output_audio_transcript.done",
    itemId: "item_b",
    transcript: "And four.",
  });
  assert.deepEqual(sink.turns.at(-1)?.interrupted, true);
  assert.equal(bridge.stats.bargeIns, 1);

  // The next response plays normally.
  bridge.onModelEvent({
    type: "response.done",
    responseId: "resp_1",
    status: "cancelled",
    reason: "turn_detected",
    usage: {},
    transcripts: [],
  });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_2" });
  bridge.onModelEvent(delta("item_c", 100, "resp_2"));
  assert.deepEqual(sink.drain(), [{ to: "twilio", media: audio(100) }, { to: "twilio", mark: "item_c:100" }]);
});

Deno.test("truncation never exceeds the audio sent, even when a mark claims more", () => {
  const { sink, bridge } = liveBridge();
  bridge.onModelEvent(delta("item_a", 50));
  bridge.onTwilioFrame({ event: "mark", name: "item_a:999" });
  assert.equal(bridge.stats.marksUnknown, 1);
  sink.drain();
  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u" });
  const truncate = sink.modelEvents()[0];
  assert.deepEqual(truncate, {
    type: "conversation.item.truncate",
    item_id: "item_a",
    content_index: 0,
    audio_end_ms: 0,
  });
});

Deno.test("speech with nothing queued at Twilio is not a barge-in", () => {
  const { sink, bridge } = liveBridge();
  bridge.onModelEvent(delta("item_a", 100));
  bridge.onTwilioFrame({ event: "mark", name: "item_a:100" });
  sink.drain();
  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u" });
  assert.deepEqual(sink.drain(), []);
  assert.equal(bridge.stats.bargeIns, 0);
});

Deno.test("a tenant that turned interruption off is never cut off", () => {
  const { sink, bridge } = liveBridge({ turnDetection: { type: "server_vad", interrupt_response: false } });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  bridge.onModelEvent(delta("item_a", 100));
  sink.drain();
  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u" });
  bridge.onModelEvent(delta("item_a", MARK_EVERY_MS));
  assert.deepEqual(sink.drain(), [{ to: "twilio", media: audio(MARK_EVERY_MS) }, {
    to: "twilio",
    mark: `item_a:${100 + MARK_EVERY_MS}`,
  }]);
});

Deno.test("turns are numbered by their place in the conversation, not by arrival", () => {
  const { sink, bridge } = liveBridge();
  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u1" });
  bridge.onModelEvent({ type: "input_audio_buffer.committed", itemId: "item_u1" });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  bridge.onModelEvent({ type: "response.output_item.added", itemId: "item_a1", role: "assistant" });
  bridge.onModelEvent({
    type: "response.output_audio_transcript.done",
    itemId: "item_a1",
    transcript: "It is sunny.",
  });
  // The caller's transcript arrives after the reply to it.
  bridge.onModelEvent({
    type: "conversation.item.input_audio_transcription.completed",
    itemId: "item_u1",
    transcript: "What's the weather?",
    usage: { input_tokens: 7, output_tokens: 4 },
  });
  bridge.onModelEvent({
    type: "conversation.item.input_audio_transcription.completed",
    itemId: "item_noise",
    transcript: "  ",
    usage: {},
  });
  const ordered = [...sink.turns].sort((a, b) => a.seq - b.seq).map((turn) => [turn.role, turn.text]);
  assert.deepEqual(ordered, [["user", "What's the weather?"], ["assistant", "It is sunny."]]);
  assert.deepEqual(sink.turns.map((turn) => turn.seq), [1, 0]);
  assert.equal(bridge.usage["transcription.input_tokens"], 7);
});

Deno.test("a keypad digit reaches the model as a user text item and is stored as a turn", () => {
  const { sink, bridge } = liveBridge();
  bridge.onTwilioFrame({ event: "dtmf", digit: "5" });
  const [create, respond] = sink.modelEvents();
  assert.ok(create.type === "conversation.item.create");
  assert.deepEqual(create.item, {
    id: "dtmf_1",
    type: "message",
    role: "user",
    content: [{ type: "input_text", text: "The caller pressed 5 on the phone keypad." }],
  });
  assert.deepEqual(respond, { type: "response.create" });
  assert.deepEqual(sink.turns.map((turn) => [turn.role, turn.itemId, turn.text]), [
    ["user", "dtmf_1", "The caller pressed 5 on the phone keypad."],
  ]);
});

Deno.test("a digit pressed during a reply is answered once the reply is done", () => {
  const { sink, bridge } = liveBridge();
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  bridge.onTwilioFrame({ event: "dtmf", digit: "#" });
  assert.deepEqual(sink.modelEvents().map((event) => event.type), ["conversation.item.create"]);
  bridge.onModelEvent({
    type: "response.done",
    responseId: "resp_1",
    status: "completed",
    reason: null,
    usage: {},
    transcripts: [],
  });
  assert.deepEqual(sink.modelEvents(), [{ type: "response.create" }]);
});

Deno.test("digits pressed before the model is ready are sent once it is", () => {
  const { sink, bridge, begin } = newBridge();
  begin();
  bridge.onTwilioFrame({ event: "dtmf", digit: "1" });
  bridge.modelOpened();
  sink.drain();
  bridge.onModelEvent(UPDATED_PCMU);
  assert.deepEqual(sink.modelEvents().map((event) => event.type), [
    "conversation.item.create",
    "response.create",
  ]);
});

Deno.test("usage from every response.done is summed", () => {
  const { sink, bridge } = liveBridge();
  for (const id of ["r1", "r2"]) {
    bridge.onModelEvent({
      type: "response.done",
      responseId: id,
      status: "completed",
      reason: null,
      usage: { input_tokens: 10, output_tokens: 5, "output_token_details.audio_tokens": 4 },
      transcripts: [],
    });
  }
  bridge.onTwilioFrame({ event: "stop" });
  assert.deepEqual(sink.outcomes[0].usage, {
    input_tokens: 20,
    output_tokens: 10,
    "output_token_details.audio_tokens": 8,
  });
});

Deno.test("a cancelled reply without its transcript event is stored from response.done", () => {
  const { sink, bridge } = liveBridge();
  bridge.onModelEvent({
    type: "response.done",
    responseId: "r1",
    status: "cancelled",
    reason: "turn_detected",
    usage: {},
    transcripts: [{ itemId: "item_a", transcript: "Let me" }],
  });
  assert.deepEqual(sink.turns.map((turn) => [turn.itemId, turn.text]), [["item_a", "Let me"]]);
});

Deno.test("the call ends exactly once, with the first cause", () => {
  const stopped = liveBridge();
  stopped.bridge.onTwilioFrame({ event: "stop" });
  stopped.bridge.twilioClosed();
  stopped.bridge.modelClosed(1000, "");
  assert.deepEqual(stopped.sink.outcomes.map((o) => [o.status, o.reason]), [["completed", "twilio_stop"]]);

  const hungUp = liveBridge();
  hungUp.bridge.twilioClosed();
  assert.deepEqual(hungUp.sink.outcomes.map((o) => [o.status, o.reason]), [[
    "completed",
    "caller_disconnected",
  ]]);

  const refused = newBridge();
  refused.begin();
  refused.bridge.modelOpened();
  refused.bridge.modelClosed(3000, "invalid_api_key");
  assert.deepEqual(refused.sink.outcomes.map((o) => [o.status, o.reason]), [["failed", "model_closed:3000"]]);
  refused.bridge.onModelEvent(delta("item_a", 20));
  refused.bridge.onTwilioFrame(media(audio(20)));
  assert.deepEqual(refused.sink.sent.filter((sent) => sent.to !== "model"), []);
});

Deno.test("a stream that never proved its call ends without a call to finalize", () => {
  const { sink, bridge } = newBridge();
  bridge.fail("bad_stream_token");
  assert.deepEqual(sink.outcomes.map((o) => [o.callSid, o.status, o.reason]), [[
    null,
    "failed",
    "bad_stream_token",
  ]]);
});

Deno.test("a model that refuses the beta shape (close 4000) mid-call ends it through the failure path", () => {
  const { sink, bridge } = liveBridge();
  bridge.onModelEvent(delta("item_a", 20));
  bridge.modelClosed(4000, "beta_api_shape_disabled");
  assert.deepEqual(sink.outcomes.map((o) => [o.callSid, o.status, o.reason]), [[
    CALL_SID,
    "failed",
    "model_closed:4000",
  ]]);
  assert.equal(sink.outcomes[0].stats.assistantAudioMs, 20);
});

// ---- handoff to a fresh worker (issue 6) ----

const WINDOW = { quietFromMs: 1_000, forceAtMs: 2_000 };

/** One assistant reply of `ms` ms on its way to the caller: created, audio sent, transcript done. */
function reply(bridge: CallBridge, itemId: string, ms: number, responseId: string, transcript: string) {
  bridge.onModelEvent({ type: "response.created", responseId });
  bridge.onModelEvent({ type: "response.output_item.added", itemId, role: "assistant" });
  bridge.onModelEvent({ type: "response.output_audio_transcript.delta", itemId, delta: transcript });
  bridge.onModelEvent(delta(itemId, ms, responseId));
}

function responseDone(bridge: CallBridge, responseId: string, itemId: string, transcript: string) {
  bridge.onModelEvent({ type: "response.output_audio_transcript.done", itemId, transcript });
  bridge.onModelEvent({
    type: "response.done",
    responseId,
    status: "completed",
    reason: null,
    usage: {},
    transcripts: [],
  });
}

const outcomeOf = (sink: Recorder) => sink.outcomes.map((o) => [o.status, o.reason]);

Deno.test("inside the quiet window the call is handed off once the reply has played, not before", () => {
  const { sink, bridge } = liveBridge({ handoff: WINDOW });
  reply(bridge, "item_a", 100, "resp_1", "Our hours are nine to five.");
  responseDone(bridge, "resp_1", "item_a", "Our hours are nine to five.");
  bridge.tick(999);
  bridge.onTwilioFrame({ event: "mark", name: "item_a:100" });
  assert.deepEqual(sink.outcomes, [], "quiet, but the window is not open yet");

  reply(bridge, "item_b", 100, "resp_2", "Anything else?");
  bridge.tick(1_000);
  assert.equal(bridge.phase, "live", "the assistant is speaking");
  responseDone(bridge, "resp_2", "item_b", "Anything else?");
  assert.equal(bridge.phase, "live", "its audio is still queued at Twilio");
  bridge.onTwilioFrame({ event: "mark", name: "item_b:100" });
  assert.deepEqual(outcomeOf(sink), [["handed_off", "handoff:quiet:listen"]]);
  assert.deepEqual(sink.turns.map((t) => [t.itemId, t.interrupted]), [["item_a", false], ["item_b", false]]);
});

Deno.test("caller speech, an unanswered caller turn and a transcript still on its way each defer the quiet handoff", () => {
  const { sink, bridge } = liveBridge({ handoff: WINDOW });
  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u1" });
  bridge.tick(1_500);
  assert.equal(bridge.phase, "live", "the caller is talking");
  bridge.onModelEvent({ type: "input_audio_buffer.speech_stopped", itemId: "item_u1" });
  bridge.onModelEvent({ type: "input_audio_buffer.committed", itemId: "item_u1" });
  assert.equal(bridge.phase, "live", "the server's reply to the caller has not started");
  reply(bridge, "item_a", 40, "resp_1", "Sure.");
  responseDone(bridge, "resp_1", "item_a", "Sure.");
  bridge.onTwilioFrame({ event: "mark", name: "item_a:40" });
  assert.equal(
    bridge.phase,
    "live",
    "the caller's transcript has not arrived: handing off now would lose it",
  );
  bridge.onModelEvent({
    type: "conversation.item.input_audio_transcription.completed",
    itemId: "item_u1",
    transcript: "Can I book a table?",
    usage: {},
  });
  assert.deepEqual(outcomeOf(sink), [["handed_off", "handoff:quiet:listen"]]);
  assert.deepEqual([...sink.turns].sort((a, b) => a.seq - b.seq).map((t) => [t.seq, t.role, t.text]), [
    [0, "user", "Can I book a table?"],
    [1, "assistant", "Sure."],
  ]);
});

Deno.test("a digit's owed reply also defers the quiet handoff", () => {
  const { sink, bridge } = liveBridge({ handoff: WINDOW });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  bridge.onTwilioFrame({ event: "dtmf", digit: "1" });
  bridge.tick(1_000);
  bridge.onModelEvent({
    type: "response.done",
    responseId: "resp_1",
    status: "completed",
    reason: null,
    usage: {},
    transcripts: [],
  });
  assert.equal(bridge.phase, "live", "the digit's reply was just requested");
  bridge.onModelEvent({ type: "response.created", responseId: "resp_2" });
  bridge.onModelEvent({
    type: "response.done",
    responseId: "resp_2",
    status: "completed",
    reason: null,
    usage: {},
    transcripts: [],
  });
  assert.deepEqual(outcomeOf(sink), [["handed_off", "handoff:quiet:listen"]]);
});

Deno.test("at the forced point the call is handed off mid-reply; the cut reply is stored interrupted and the next stream replies", () => {
  const { sink, bridge } = liveBridge({ handoff: WINDOW });
  reply(bridge, "item_a", 200, "resp_1", "Let me check the opening hours for");
  bridge.tick(1_000);
  bridge.onTwilioFrame({ event: "mark", name: "item_a:200" });
  reply(bridge, "item_b", 0, "resp_1", "");
  bridge.onModelEvent({ type: "response.output_audio_transcript.delta", itemId: "item_b", delta: "Our" });
  bridge.onModelEvent(delta("item_b", 100, "resp_1"));
  sink.drain();
  bridge.tick(1_999);
  assert.equal(bridge.phase, "live");
  bridge.tick(2_000);
  assert.deepEqual(outcomeOf(sink), [["handed_off", "handoff:forced:reply"]]);
  // item_a played in full but its transcript never came: stored with what the model said of it.
  assert.deepEqual(sink.turns.map((t) => [t.seq, t.itemId, t.text, t.interrupted]), [
    [0, "item_a", "Let me check the opening hours for", true],
    [1, "item_b", "Our", true],
  ]);
  assert.deepEqual(sink.drain(), [], "no truncate or clear: the model session is over");
});

Deno.test("a drain hands off at the next quiet moment, as a drain; at once when it is quiet already", () => {
  const { sink, bridge } = liveBridge();
  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u1" });
  bridge.handOffWhenQuiet("drain");
  assert.equal(bridge.phase, "live", "the caller is talking: moving now would lose the sentence");
  bridge.onModelEvent({ type: "input_audio_buffer.speech_stopped", itemId: "item_u1" });
  bridge.onModelEvent({ type: "input_audio_buffer.committed", itemId: "item_u1" });
  bridge.onModelEvent({
    type: "conversation.item.input_audio_transcription.completed",
    itemId: "item_u1",
    transcript: "What time do you open?",
    usage: {},
  });
  reply(bridge, "item_a", 40, "resp_1", "At nine.");
  responseDone(bridge, "resp_1", "item_a", "At nine.");
  assert.equal(bridge.phase, "live", "the reply is still playing");
  bridge.onTwilioFrame({ event: "mark", name: "item_a:40" });
  assert.deepEqual(outcomeOf(sink), [["handed_off", "handoff:drain:listen"]]);
  assert.deepEqual(sink.turns.map((t) => [t.role, t.interrupted]), [["user", false], ["assistant", false]]);

  const idle = liveBridge();
  idle.bridge.handOffWhenQuiet("drain");
  assert.deepEqual(outcomeOf(idle.sink), [["handed_off", "handoff:drain:listen"]]);
});

Deno.test("beforeunload hands the call off at once, even while the caller speaks", () => {
  const { sink, bridge } = liveBridge();
  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u1" });
  bridge.handOff("beforeunload");
  assert.deepEqual(outcomeOf(sink), [["handed_off", "handoff:beforeunload:listen"]]);
  bridge.handOff("beforeunload");
  bridge.twilioClosed();
  assert.equal(sink.outcomes.length, 1, "the call ends once");
});

Deno.test("a stream that has not begun is never handed off, and without a schedule ticks do nothing", () => {
  const waiting = newBridge({ handoff: WINDOW });
  waiting.bridge.handOff("beforeunload");
  waiting.bridge.tick(5_000);
  assert.deepEqual(waiting.sink.outcomes, []);

  const unscheduled = liveBridge();
  unscheduled.bridge.tick(Number.MAX_SAFE_INTEGER);
  assert.equal(unscheduled.bridge.phase, "live");
});

Deno.test("a stream whose model is still connecting at the forced point is handed off, to try again", () => {
  const { sink, bridge, begin } = newBridge({ handoff: WINDOW });
  begin();
  bridge.modelOpened();
  bridge.tick(1_500);
  assert.equal(bridge.phase, "connecting", "no quiet handoff before the model is ready");
  bridge.tick(2_000);
  assert.deepEqual(outcomeOf(sink), [["handed_off", "handoff:forced:listen"]]);
});

const RESTORED: TurnRow[] = [
  {
    tenantId: TENANT,
    callSid: CALL_SID,
    role: "assistant",
    text: "Thanks for calling Acme.",
    itemId: "item_a1",
    seq: 0,
    interrupted: false,
  },
  {
    tenantId: TENANT,
    callSid: CALL_SID,
    role: "user",
    text: "When are you open?",
    itemId: "item_u1",
    seq: 1,
    interrupted: false,
  },
  {
    tenantId: TENANT,
    callSid: CALL_SID,
    role: "assistant",
    text: "Nine to five.",
    itemId: "item_a2",
    seq: 2,
    interrupted: false,
  },
];

Deno.test("a resumed call gets its turns back as items, is not greeted again, and numbers new turns after them", () => {
  const { sink, bridge, begin } = newBridge({
    greeting: "Thanks for calling Acme.",
    resume: { turns: RESTORED, mode: "listen" },
    firstSeq: 3,
    priorUsage: { input_tokens: 100 },
  });
  begin();
  bridge.onTwilioFrame(media(audio(20)));
  bridge.modelOpened();
  sink.drain();
  bridge.onModelEvent(UPDATED_PCMU);
  const sent = sink.drain();
  assert.deepEqual(sent.slice(0, 3), [
    {
      to: "model",
      event: {
        type: "conversation.item.create",
        item: {
          id: "restored_1",
          type: "message",
          role: "assistant",
          content: [{ type: "output_text", text: "Thanks for calling Acme." }],
        },
      },
    },
    {
      to: "model",
      event: {
        type: "conversation.item.create",
        item: {
          id: "restored_2",
          type: "message",
          role: "user",
          content: [{ type: "input_text", text: "When are you open?" }],
        },
      },
    },
    {
      to: "model",
      event: {
        type: "conversation.item.create",
        item: {
          id: "restored_3",
          type: "message",
          role: "assistant",
          content: [{ type: "output_text", text: "Nine to five." }],
        },
      },
    },
  ]);
  assert.deepEqual(
    sent.slice(3),
    [{ to: "model-audio", payload: audio(20) }],
    "no greeting, no reply: it listens",
  );

  // The server echoes the restored items; they are not turns and take no seq.
  for (const id of ["restored_1", "restored_2", "restored_3"]) {
    bridge.onModelEvent({ type: "conversation.item.added", itemId: id, role: "assistant" });
  }
  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u2" });
  bridge.onModelEvent({
    type: "conversation.item.input_audio_transcription.completed",
    itemId: "item_u2",
    transcript: "And on Sunday?",
    usage: { input_tokens: 5 },
  });
  bridge.onModelEvent({
    type: "response.done",
    responseId: "r",
    status: "completed",
    reason: null,
    usage: { input_tokens: 20 },
    transcripts: [],
  });
  assert.deepEqual(sink.turns.map((t) => [t.seq, t.text]), [[3, "And on Sunday?"]]);
  bridge.onTwilioFrame({ event: "stop" });
  assert.deepEqual(
    sink.outcomes[0].usage,
    { input_tokens: 120, "transcription.input_tokens": 5 },
    "the call's total",
  );
});

Deno.test("a call resumed after a cut reply asks the model to speak first", () => {
  const { sink, bridge, begin } = newBridge({
    resume: { turns: RESTORED.slice(0, 2), mode: "reply" },
    firstSeq: 2,
  });
  begin();
  bridge.modelOpened();
  sink.drain();
  bridge.onModelEvent(UPDATED_PCMU);
  const events = sink.modelEvents();
  assert.equal(events.length, 4);
  const prompt = events[2];
  assert.ok(prompt.type === "conversation.item.create");
  assert.deepEqual(prompt.item, {
    id: "resume_3",
    type: "message",
    role: "system",
    content: [{ type: "input_text", text: RESUME_PROMPT }],
  });
  assert.deepEqual(events[3], { type: "response.create" });
  // A digit while that reply is being made waits for it, as after a greeting.
  bridge.onTwilioFrame({ event: "dtmf", digit: "2" });
  assert.deepEqual(sink.modelEvents().map((e) => e.type), ["conversation.item.create"]);
});

// ---- tools ----

const LOOKUP: TenantTool = {
  name: "lookup_order",
  description: "Look up an order",
  parameters: { type: "object", properties: { order: { type: "string" } } },
  kind: "http",
  httpUrl: "https://tools.example/lookup",
  sqlFunction: null,
  transferTo: null,
  timeoutMs: 1000,
};
const STOCK: TenantTool = { ...LOOKUP, name: "stock", kind: "sql", httpUrl: null, sqlFunction: "app.stock" };
const TRANSFER: TenantTool = {
  ...LOOKUP,
  name: "transfer",
  kind: "transfer",
  httpUrl: null,
  transferTo: "+15550001234",
};
const END_CALL: TenantTool = { ...LOOKUP, name: "end_call", kind: "end_call", httpUrl: null };
const TOOLS = [LOOKUP, STOCK, TRANSFER, END_CALL];

function functionCall(callId: string, name: string, args = "{}", responseId = "resp_1"): ServerEvent {
  return {
    type: "response.output_item.done",
    responseId,
    call: { itemId: `item_${callId}`, callId, name, arguments: args },
  };
}

function toolResponseDone(responseId: string, status = "completed"): ServerEvent {
  return { type: "response.done", responseId, status, reason: null, usage: {}, transcripts: [] };
}

/** A response whose only output is these function calls, as the server streams it. */
function toolResponse(
  bridge: CallBridge,
  responseId: string,
  calls: [string, string, string?][],
  status?: string,
) {
  bridge.onModelEvent({ type: "response.created", responseId });
  for (const [callId, name, args] of calls) {
    bridge.onModelEvent(functionCall(callId, name, args, responseId));
  }
  bridge.onModelEvent(toolResponseDone(responseId, status));
}

const outputs = (events: ClientEvent[]) =>
  events.flatMap((event) =>
    event.type === "conversation.item.create" && event.item.type === "function_call_output"
      ? [[event.item.call_id, event.item.output]]
      : []
  );
const creates = (events: ClientEvent[]) => events.filter((event) => event.type === "response.create").length;

Deno.test("the session lists the tenant's tools flat, with tool_choice auto; none without tools", () => {
  const { session } = liveBridge({ tools: TOOLS });
  assert.deepEqual(
    session.tools?.map((tool) => Object.keys(tool)),
    TOOLS.map(() => ["type", "name", "description", "parameters"]),
  );
  assert.equal(session.tool_choice, "auto");
  assert.equal(liveBridge().session.tools, undefined);
});

Deno.test("a tool runs only once its response completed, then its output and one response.create go out", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  bridge.onModelEvent(functionCall("call_1", "lookup_order", '{"order":"A1"}'));
  assert.deepEqual(sink.toolRuns, [], "the item is done but its response is not");
  bridge.onModelEvent(toolResponseDone("resp_1"));
  assert.deepEqual(sink.toolRuns, [{ callId: "call_1", tool: LOOKUP, arguments: { order: "A1" } }]);
  assert.equal(bridge.quiet, false, "a running tool is not a quiet moment");
  sink.drain();
  bridge.toolFinished("call_1", { output: '{"status":"shipped"}', status: "ok", durationMs: 12.4 });
  const events = sink.modelEvents();
  assert.deepEqual(outputs(events), [["call_1", '{"status":"shipped"}']]);
  assert.equal(creates(events), 1);
  assert.deepEqual(
    sink.toolCalls.map(({ callId, status, durationMs, arguments: args }) => ({
      callId,
      status,
      durationMs,
      args,
    })),
    [
      { callId: "call_1", status: "ok", durationMs: 12, args: { order: "A1" } },
    ],
  );
  bridge.toolFinished("call_1", { output: "again", status: "ok", durationMs: 1 });
  assert.deepEqual(sink.modelEvents(), [], "a result lands once");
  assert.equal(sink.toolCalls.length, 1);
});

Deno.test("a function call in a cancelled or incomplete response never runs", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS });
  toolResponse(bridge, "resp_c", [["call_c", "lookup_order"]], "cancelled");
  toolResponse(bridge, "resp_i", [["call_i", "lookup_order"]], "incomplete");
  assert.deepEqual(sink.toolRuns, []);
  assert.deepEqual(outputs(sink.modelEvents()), []);
  assert.deepEqual(sink.toolCalls, []);
  assert.equal(bridge.toolsRunning, 0);
});

Deno.test("two calls in one response are both answered before one response.create", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS });
  toolResponse(bridge, "resp_2", [["call_a", "lookup_order"], ["call_b", "stock"]]);
  assert.deepEqual(sink.toolRuns.map((run) => run.callId), ["call_a", "call_b"]);
  sink.drain();
  bridge.toolFinished("call_b", { output: "b", status: "ok", durationMs: 5 });
  assert.equal(creates(sink.modelEvents()), 0, "call_a is still running");
  bridge.toolFinished("call_a", { output: "a", status: "ok", durationMs: 9 });
  assert.equal(creates(sink.modelEvents()), 1);
  // Stored in conversation order (the items' seq), whatever order they finished in.
  const [b, a] = sink.toolCalls;
  assert.ok(a.seq < b.seq);
});

Deno.test("a response.create owed during an active response waits for its response.done", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS });
  toolResponse(bridge, "resp_1", [["call_1", "lookup_order"]]);
  bridge.onModelEvent({ type: "response.created", responseId: "resp_other" });
  sink.drain();
  bridge.toolFinished("call_1", { output: "x", status: "ok", durationMs: 1 });
  const during = sink.modelEvents();
  assert.equal(outputs(during).length, 1, "the output may go in during a response");
  assert.equal(creates(during), 0, "response.create may not");
  bridge.onModelEvent(toolResponseDone("resp_other"));
  assert.equal(creates(sink.modelEvents()), 1);
});

Deno.test("a caller barging in during a slow tool: the reply is cut, the result still lands once", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS });
  toolResponse(bridge, "resp_1", [["call_1", "lookup_order"]]);
  // The caller talks; the server answers them while the tool is still running.
  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u1" });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_2" });
  bridge.onModelEvent(delta("item_a2", 200, "resp_2"));
  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u2" });
  assert.equal(bridge.stats.bargeIns, 1);
  sink.drain();
  bridge.toolFinished("call_1", { output: "late", status: "ok", durationMs: 4000 });
  assert.deepEqual(outputs(sink.modelEvents()), [["call_1", "late"]]);
  bridge.onModelEvent(toolResponseDone("resp_2", "cancelled"));
  assert.equal(creates(sink.modelEvents()), 1, "the owed reply follows the cancelled response");
  bridge.toolFinished("call_1", { output: "late", status: "ok", durationMs: 4000 });
  assert.equal(sink.toolCalls.length, 1);
});

Deno.test("a timed-out tool answers its error output, and the call goes on", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS });
  toolResponse(bridge, "resp_1", [["call_1", "lookup_order"]]);
  sink.drain();
  bridge.toolFinished("call_1", {
    output: '{"error":"the tool timed out"}',
    status: "timeout",
    durationMs: 1000,
  });
  const events = sink.modelEvents();
  assert.deepEqual(outputs(events), [["call_1", '{"error":"the tool timed out"}']]);
  assert.equal(creates(events), 1);
  assert.equal(sink.toolCalls[0].status, "timeout");
  assert.equal(bridge.phase, "live");
});

Deno.test("an unknown tool or arguments that are not an object answer an error without running", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS });
  toolResponse(bridge, "resp_1", [["call_1", "nope"], ["call_2", "lookup_order", "[1,"]]);
  assert.deepEqual(sink.toolRuns, []);
  assert.deepEqual(sink.toolCalls.map((row) => [row.status, JSON.parse(row.output).error]), [
    ["error", "unknown tool"],
    ["error", "the arguments are not a JSON object"],
  ]);
  assert.equal(sink.toolCalls[1].arguments, "[1,");
  assert.equal(creates(sink.modelEvents()), 1);
});

Deno.test("a handoff waits for a running tool and the reply it is owed", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS, handoff: WINDOW });
  toolResponse(bridge, "resp_1", [["call_1", "lookup_order"]]);
  bridge.tick(1_500);
  assert.equal(sink.outcomes.length, 0, "not quiet while the tool runs");
  bridge.toolFinished("call_1", { output: "done", status: "ok", durationMs: 30 });
  assert.equal(sink.outcomes.length, 0, "its reply is owed now");
  bridge.onModelEvent({ type: "response.created", responseId: "resp_2" });
  bridge.onModelEvent(toolResponseDone("resp_2"));
  assert.deepEqual(sink.outcomes.map((o) => o.status), ["handed_off"]);
});

Deno.test("restored tool calls go between the turns they came between, as a call and its output", () => {
  const { sink, bridge, begin } = newBridge({
    resume: {
      mode: "listen",
      turns: [
        {
          tenantId: TENANT,
          callSid: CALL_SID,
          role: "user",
          text: "where is A1?",
          itemId: "u",
          seq: 3,
          interrupted: false,
        },
        {
          tenantId: TENANT,
          callSid: CALL_SID,
          role: "assistant",
          text: "shipped",
          itemId: "a",
          seq: 5,
          interrupted: false,
        },
      ],
      toolCalls: [{
        tenantId: TENANT,
        callSid: CALL_SID,
        seq: 4,
        callId: "call_9",
        name: "lookup_order",
        arguments: { order: "A1" },
        output: '{"status":"shipped"}',
        status: "ok",
        durationMs: 20,
      }],
    },
  });
  begin();
  bridge.modelOpened();
  bridge.onModelEvent(UPDATED_PCMU);
  const items = sink.modelEvents().flatMap((event) =>
    event.type === "conversation.item.create" ? [event.item] : []
  );
  assert.deepEqual(items.map((item) => item.type === "message" ? item.role : item.type), [
    "user",
    "function_call",
    "function_call_output",
    "assistant",
  ]);
  assert.deepEqual(items[1], {
    type: "function_call",
    call_id: "call_9",
    name: "lookup_order",
    arguments: '{"order":"A1"}',
  });
});

Deno.test("end_call: the goodbye plays to the end, then the call completes as the agent hanging up", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  bridge.onModelEvent({ type: "response.output_item.added", itemId: "item_bye", role: "assistant" });
  bridge.onModelEvent(delta("item_bye", 300));
  bridge.onModelEvent(functionCall("call_bye", "end_call"));
  bridge.onModelEvent(toolResponseDone("resp_1"));
  const events = sink.drain();
  const modelEvents = events.flatMap((sent) => sent.to === "model" ? [sent.event] : []);
  assert.deepEqual(outputs(modelEvents), [["call_bye", END_CALL_OUTPUT]]);
  assert.equal(creates(modelEvents), 0, "the model is not asked to speak again");
  assert.equal(sink.outcomes.length, 0, "the goodbye has not played yet");
  const marks = events.flatMap((sent) => sent.to === "twilio" && sent.mark ? [sent.mark] : []);
  for (const mark of marks.slice(0, -1)) bridge.onTwilioFrame({ event: "mark", name: mark });
  assert.equal(sink.outcomes.length, 0);
  bridge.onTwilioFrame({ event: "mark", name: marks.at(-1)! });
  assert.deepEqual(sink.outcomes.map(({ status, reason }) => [status, reason]), [[
    "completed",
    "agent hung up",
  ]]);
  assert.equal(sink.toolCalls[0].status, "ok");
});

Deno.test("transfer: answered, the line plays out, then the call completes as transferred to the number", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  bridge.onModelEvent(delta("item_line", 120));
  bridge.onModelEvent(functionCall("call_t", "transfer", '{"reason":"wants a person"}'));
  bridge.onModelEvent(toolResponseDone("resp_1"));
  const marks = sink.drain().flatMap((sent) => sent.to === "twilio" && sent.mark ? [sent.mark] : []);
  assert.equal(sink.outcomes.length, 0);
  for (const mark of marks) bridge.onTwilioFrame({ event: "mark", name: mark });
  assert.deepEqual(sink.outcomes.map(({ status, reason, transferTo }) => [status, reason, transferTo]), [
    ["completed", "transferred", "+15550001234"],
  ]);
  assert.deepEqual(sink.toolCalls[0].arguments, { reason: "wants a person" });
});

Deno.test("a built-in with nothing left to play ends the call at its response's end", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS });
  toolResponse(bridge, "resp_1", [["call_e", "end_call"]]);
  assert.deepEqual(sink.outcomes.map((o) => o.reason), ["agent hung up"]);
});

Deno.test("a built-in whose last mark never comes back is ended by finishEnding", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  bridge.onModelEvent(delta("item_bye", 100));
  bridge.onModelEvent(functionCall("call_bye", "end_call"));
  bridge.onModelEvent(toolResponseDone("resp_1"));
  assert.equal(bridge.endingAfterPlayback, true);
  bridge.finishEnding();
  assert.deepEqual(sink.outcomes.map((o) => o.reason), ["agent hung up"]);
  assert.equal(bridge.endingAfterPlayback, false);
});

Deno.test("a tool that answers after the caller hung up is still stored, and nothing goes to the model", () => {
  const { sink, bridge } = liveBridge({ tools: TOOLS });
  toolResponse(bridge, "resp_1", [["call_1", "lookup_order"]]);
  bridge.twilioClosed();
  sink.drain();
  bridge.toolFinished("call_1", { output: "late", status: "ok", durationMs: 900 });
  assert.deepEqual(sink.drain(), []);
  assert.deepEqual(sink.toolCalls.map((row) => [row.callId, row.output]), [["call_1", "late"]]);
});

Deno.test("a reply is timed from speech_stopped to its first audio sent and first mark played; the outcome carries it", () => {
  let now = 0;
  const measured: TurnMeasurement[] = [];
  const { sink, bridge } = liveBridge({}, {
    clock: () => now,
    onTurnMeasured: (turn) => measured.push(turn),
  });
  for (let i = 0; i < 5; i++) bridge.onTwilioFrame(media(audio(20)));
  now = 1000;
  bridge.onModelEvent({ type: "input_audio_buffer.speech_stopped", itemId: "item_u1" });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  now = 1310;
  bridge.onModelEvent(delta("item_a", 60));
  now = 1330;
  bridge.onModelEvent(delta("item_a", 60)); // crosses 100 ms: the first mark
  assert.deepEqual(sink.drain().filter((sent) => "mark" in sent), [{ to: "twilio", mark: "item_a:120" }]);
  now = 1600;
  bridge.onTwilioFrame({ event: "mark", name: "item_a:120" });
  assert.deepEqual(measured, [{ turn: 0, firstAudioSentMs: 310, firstAudioPlayedMs: 600, toolMs: 0 }]);
  bridge.onTwilioFrame({ event: "stop" });
  const { metrics } = sink.outcomes[0];
  assert.deepEqual([metrics.audio_in_ms, metrics.audio_out_ms], [100, 120]);
  assert.deepEqual([metrics.first_audio_sent_p50_ms, metrics.first_audio_played_max_ms], [310, 600]);
  assert.equal(metrics.turns.length, 1);
});

/** One stream of a call: `frames` of caller audio, then one reply whose first audio goes out
 * `sentMs` after speech_stopped (120 ms of it) and whose first mark plays at `playedMs`. */
function measuredStream(
  { frames, sentMs, playedMs }: { frames: number; sentMs: number; playedMs: number },
  priorMetrics?: CallStarted["priorMetrics"],
) {
  let now = 0;
  const { sink, bridge } = liveBridge(priorMetrics ? { priorMetrics } : {}, { clock: () => now });
  for (let i = 0; i < frames; i++) bridge.onTwilioFrame(media(audio(20)));
  bridge.onModelEvent({ type: "input_audio_buffer.speech_stopped", itemId: "item_u1" });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  now = sentMs;
  bridge.onModelEvent(delta("item_a", 60));
  bridge.onModelEvent(delta("item_a", 60));
  now = playedMs;
  bridge.onTwilioFrame({ event: "mark", name: "item_a:120" });
  bridge.onTwilioFrame({ event: "stop" });
  return sink.outcomes[0].metrics;
}

Deno.test("a handed-off call's metrics cover all its streams: turns carried, audio summed, p50/max over both", () => {
  const first = measuredStream({ frames: 5, sentMs: 310, playedMs: 600 });
  // What the next stream's claim reads back from the row (jsonb).
  const carried = metricsFromRow(JSON.parse(JSON.stringify(first)));
  assert.ok(carried !== null);
  const whole = measuredStream({ frames: 3, sentMs: 500, playedMs: 900 }, carried);
  assert.deepEqual(whole.turns, [
    { turn: 0, firstAudioSentMs: 310, firstAudioPlayedMs: 600, toolMs: 0 },
    { turn: 1, firstAudioSentMs: 500, firstAudioPlayedMs: 900, toolMs: 0 },
  ]);
  assert.deepEqual([whole.audio_in_ms, whole.audio_out_ms], [100 + 60, 120 + 120]);
  assert.deepEqual([whole.first_audio_sent_p50_ms, whole.first_audio_sent_max_ms], [405, 500]);
  assert.deepEqual([whole.first_audio_played_p50_ms, whole.first_audio_played_max_ms], [750, 900]);
});

Deno.test("between echoes, a barge-in truncates at what the playout model says was heard by then", () => {
  let now = 0;
  const { sink, bridge } = liveBridge({}, { clock: () => now });
  bridge.onModelEvent({ type: "response.created", responseId: "resp_1" });
  // 2 s of audio arrive at once, faster than real time; Twilio plays its first 100 ms by 100 ms.
  bridge.onModelEvent(delta("item_a", 100));
  bridge.onModelEvent(delta("item_a", 1900));
  now = 100;
  bridge.onTwilioFrame({ event: "mark", name: "item_a:100" });
  now = 430;
  sink.drain();
  bridge.onModelEvent({ type: "input_audio_buffer.speech_started", itemId: "item_u" });
  assert.deepEqual(sink.modelEvents(), [
    { type: "conversation.item.truncate", item_id: "item_a", content_index: 0, audio_end_ms: 430 },
  ]);
});
