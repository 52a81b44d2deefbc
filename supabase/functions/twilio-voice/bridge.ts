// One call's state machine between Twilio and the Realtime model. It knows neither sockets nor
// the wire format: it is fed events decoded by the codecs, and tells its sink what to send where
// (client events encoded by realtime_events.ts; what the caller has heard is playback.ts), which
// turns to store, and when the call is over. Nothing here awaits, so a test drives it by calls.
//
// Lifecycle: created when Twilio's socket opens (caller audio is buffered from then on), begin()
// once the stream's token and the tenant are known, modelOpened() when the model socket opens
// (session.update goes out), live when session.updated confirms µ-law both ways (greeting, then
// the buffered audio), ended exactly once (sink.end) by stop, hang-up, model close, a failure, or
// a handoff to a fresh worker (handoff.ts): time enters only through tick(now), so the decision
// is as testable as the rest.

import {
  handoffReason,
  type HandoffSchedule,
  type HandoffTrigger,
  RESUME_PROMPT,
  type ResumeMode,
  TRANSFER_UNANSWERED_PROMPT,
} from "./handoff.ts";
import type { LogFields, LogLevel } from "./log.ts";
import { Playback, type PlayedItem } from "./playback.ts";
import {
  assistantTextItem,
  encodeAudioAppend,
  encodeFunctionCallOutput,
  encodeItemCreate,
  encodeResponseCreate,
  encodeSessionUpdate,
  encodeTruncate,
  type FunctionCall,
  type ServerEvent,
  type SessionConfig,
  textItem,
  type Usage,
} from "./realtime_events.ts";
import { greetingPrompt } from "./session_config.ts";
import type { Role, TenantTool, ToolCallRow, ToolCallStatus, TurnRow } from "./store.ts";
import { ToolCalls } from "./tool_calls.ts";
import { capToolOutput, errorOutput } from "./tool_output.ts";
import type { TwilioFrame } from "./twilio_frames.ts";
import { type CallMetrics, type CarriedMetrics, TurnLatency, type TurnMeasurement } from "./turn_latency.ts";
// Caller audio kept while the model session is being set up: 10 s of Twilio's 20 ms frames (160
// bytes of µ-law = 216 base64 characters each), ~108 KB. Setup normally takes well under 2 s; past
// this the oldest audio goes first. Counted in characters, not frames: a peer sending oversized
// frames must not multiply the budget.
export const MAX_BUFFERED_FRAMES = 500;
export const MAX_BUFFERED_AUDIO_CHARS = MAX_BUFFERED_FRAMES * 216;
const MAX_BUFFERED_DIGITS = 32;

export type Phase = "waiting" | "connecting" | "live" | "ended";

export interface BridgeSink {
  /** A client event, encoded by realtime_events.ts (caller audio included: the hot path). */
  model(message: string): void;
  twilioMedia(payload: string): void;
  twilioMark(name: string): void;
  twilioClear(): void;
  /** Store or update a turn; the same itemId may be sent again with new text or interrupted. */
  turn(row: TurnRow): void;
  /** Run a tenant's http or sql tool off the audio path; answer with bridge.toolFinished. */
  runTool(run: ToolRun): void;
  /** Store a tool call once it is answered (once per call_id). */
  toolCall(row: ToolCallRow): void;
  log(level: LogLevel, event: string, fields?: LogFields): void;
  end(outcome: CallOutcome): void;
}

export interface CallStarted {
  callSid: string;
  streamSid: string;
  tenantId: string;
  session: SessionConfig;
  greeting: string | null;
  /** Position of the first turn (a resumed call continues its predecessor's numbering). */
  firstSeq?: number;
  /** This stream continues a handed-off call: no greeting; these turns go into the new model
   * session first, and in "reply" mode the model speaks at once. */
  resume?: { turns: TurnRow[]; mode: ResumeMode; toolCalls?: ToolCallRow[] };
  /** Token usage of the call's earlier streams: the call row holds the call's total. */
  priorUsage?: Usage;
  /** Turns and audio the call's earlier streams measured: the row's metrics cover the call. */
  priorMetrics?: CarriedMetrics;
  /** When to hand the call to a fresh worker, on the clock tick() is fed with; none: never. */
  handoff?: HandoffSchedule;
  /** The tenant's tools (the session's `tools` lists the same names). */
  tools?: TenantTool[];
}

/** A tool call for the session to run (http or sql). */
export interface ToolRun {
  callId: string;
  tool: TenantTool;
  /** Parsed from the model's JSON text. */
  arguments: unknown;
}

export interface ToolResult {
  output: string;
  status: ToolCallStatus;
  durationMs: number;
}

export interface BridgeStats {
  callerFrames: number;
  bufferedFramesDropped: number;
  assistantAudioMs: number;
  modelAudioDropped: number;
  bargeIns: number;
  marksIgnored: number;
  marksUnknown: number;
  modelErrors: number;
}

export interface CallOutcome {
  /** null when the stream never proved which call it belongs to: there is no row to finalize. */
  callSid: string | null;
  status: "completed" | "failed" | "handed_off";
  reason: string;
  /** Ended by the transfer tool: the number the connect action dials. */
  transferTo?: string;
  usage: Usage;
  stats: BridgeStats;
  /** Per-turn latency and audio of this stream (calls.metrics). */
  metrics: CallMetrics;
}

interface AssistantItem {
  id: string;
  seq: number;
  /** Its audio on the way to the caller (playback.ts). */
  played: PlayedItem;
  interrupted: boolean;
  transcript: string | null;
  /** Transcript deltas so far: what a reply cut by a handoff is stored with before its done event. */
  spoken: string;
}

export type ItemKind = "greeting" | "dtmf" | "restored" | "resume";

/** end_reason of a call the agent ended with its built-in tools. */
export const END_REASONS = { transferred: "transferred", agentHungUp: "agent hung up" } as const;
// What the model reads back from a built-in: it has said its line, the call ends when it played.
export const TRANSFER_OUTPUT = '{"ok":true,"note":"The call is being transferred now."}';
export const END_CALL_OUTPUT = '{"ok":true,"note":"The call ends once your goodbye has played."}';

export interface BridgeOptions {
  /** Ids for items the bridge creates (greeting prompt, DTMF); unique per model session. */
  newItemId: (kind: ItemKind) => string;
  /** The clock of the per-turn latency (turn_latency.ts) and the playout model (playback.ts), ms;
   * performance.now by default. */
  clock?: () => number;
  /** Each assistant turn once measured (e.g. to feed a latency histogram). */
  onTurnMeasured?: (turn: TurnMeasurement) => void;
}

export class CallBridge {
  phase: Phase = "waiting";
  readonly stats: BridgeStats = {
    callerFrames: 0,
    bufferedFramesDropped: 0,
    assistantAudioMs: 0,
    modelAudioDropped: 0,
    bargeIns: 0,
    marksIgnored: 0,
    marksUnknown: 0,
    modelErrors: 0,
  };
  readonly usage: Usage = {};

  #call: CallStarted | null = null;
  #modelOpen = false;
  #interruptResponse = true;
  #buffered: string[] = [];
  #bufferHead = 0;
  #bufferedChars = 0;
  #pendingDigits: string[] = [];
  #nextSeq = 0;
  readonly #seqByItem = new Map<string, number>();
  readonly #ownItems = new Set<string>();
  readonly #assistant = new Map<string, AssistantItem>();
  readonly #playback = new Playback();
  readonly #cutResponses = new Set<string>();
  /** Where the last delta's audio went, while its response is not cut: nearly every delta is the
   * next of the same item, and takes it from here instead of the two lookups. */
  #audioRoute: { responseId: string; itemId: string; played: PlayedItem } | null = null;
  #activeResponse: string | null = null;
  #replyOwed = false;
  /** Between speech_started and speech_stopped. */
  #callerSpeaking = false;
  /** Caller items committed whose transcript has not come: handing off now would lose the turn. */
  readonly #awaitingTranscript = new Set<string>();
  /** The caller finished a turn and the server's automatic reply has not started yet. */
  #replyPending = false;
  #createsResponse = true;
  /** Inside the quiet window: hand off at the next moment nobody speaks. */
  #handoffDue = false;
  /** What a handoff at the quiet moment is recorded as: the wall clock's window, or a drain. */
  #quietTrigger: HandoffTrigger = "quiet";
  readonly #toolCalls = new ToolCalls();
  readonly #tools = new Map<string, TenantTool>();
  /** Calls started and not answered: what the stored row needs once the result lands. */
  readonly #running = new Map<string, { call: FunctionCall; arguments: unknown; seq: number }>();
  /** A built-in asked to end the call: it ends once the assistant's last line has played. */
  #ending: { reason: string; transferTo?: string } | null = null;

  readonly #latency: TurnLatency;
  readonly #clock: () => number;

  constructor(private readonly sink: BridgeSink, private readonly options: BridgeOptions) {
    this.#clock = options.clock ?? (() => performance.now());
    this.#latency = new TurnLatency(this.#clock, options.onTurnMeasured);
  }

  get callSid(): string | null {
    return this.#call?.callSid ?? null;
  }

  // ---- setup ----

  begin(call: CallStarted): void {
    if (this.phase !== "waiting") return;
    this.#call = call;
    this.#nextSeq = call.firstSeq ?? 0;
    const turnDetection = call.session.audio.input.turn_detection;
    this.#interruptResponse = turnDetection.interrupt_response !== false;
    this.#createsResponse = turnDetection.create_response !== false;
    for (const tool of call.tools ?? []) this.#tools.set(tool.name, tool);
    Object.assign(this.usage, call.priorUsage);
    if (call.priorMetrics) this.#latency.continueFrom(call.priorMetrics);
    this.phase = "connecting";
  }

  modelOpened(): void {
    if (this.phase !== "connecting" || this.#modelOpen) return;
    this.#modelOpen = true;
    this.sink.model(encodeSessionUpdate(this.#call!.session));
  }

  /** Setup failed outside the bridge (token, tenant lookup, timeout, worker shutdown...). */
  fail(reason: string): void {
    this.#end("failed", reason);
  }

  // ---- handoff to a fresh worker ----

  /** The clock, fed by the session at the schedule's times (no polling: a timer per point). */
  tick(nowMs: number): void {
    const plan = this.#call?.handoff;
    if (!plan || (this.phase !== "connecting" && this.phase !== "live")) return;
    if (nowMs >= plan.forceAtMs) {
      this.handOff("forced");
    } else if (nowMs >= plan.quietFromMs && !this.#handoffDue) {
      this.#handoffDue = true;
      this.sink.log("info", "call.handoff_window", {});
      this.#handOffIfQuiet();
    }
  }

  /** Whether nobody is speaking and nothing said is still on its way to the store. */
  get quiet(): boolean {
    return this.phase === "live" && !this.#playback.queued && !this.#callerSpeaking &&
      this.#activeResponse === null && !this.#replyOwed && !this.#replyPending &&
      this.#awaitingTranscript.size === 0 && this.#toolCalls.running === 0 && this.#ending === null;
  }

  /**
   * End this stream so the call continues on a fresh worker (the session flushes the turns, marks
   * the call handed_off and closes Twilio's stream; Twilio then asks the connect action). Replies
   * cut short are stored as interrupted, with what the model had said of them so far.
   */
  handOff(trigger: HandoffTrigger): void {
    if (this.phase !== "connecting" && this.phase !== "live") return;
    const mode: ResumeMode = this.#activeResponse !== null || this.#replyOwed || this.#replyPending ||
        this.#playback.queued || this.#toolCalls.running > 0
      ? "reply"
      : "listen";
    for (const item of this.#assistant.values()) {
      const text = item.transcript ?? item.spoken;
      const unheard = !item.played.fullyPlayed || item.transcript === null;
      if (item.interrupted || !unheard || !text.trim()) continue;
      item.interrupted = true;
      this.#storeTurn("assistant", item.id, text, true);
    }
    this.sink.log("info", "call.handoff", {
      trigger,
      mode,
      awaiting_transcripts: this.#awaitingTranscript.size,
      tools_running: this.#toolCalls.running,
    });
    this.#end("handed_off", handoffReason(trigger, mode));
  }

  /** Hand off at the next quiet moment, as `trigger` (a self-hosted drain); the caller bounds
   * the wait with a plain handOff, as the wall clock's forced point does. */
  handOffWhenQuiet(trigger: HandoffTrigger): void {
    if (this.phase !== "connecting" && this.phase !== "live") return;
    this.#handoffDue = true;
    this.#quietTrigger = trigger;
    this.#handOffIfQuiet();
  }

  #handOffIfQuiet(): void {
    if (this.#handoffDue && this.quiet) this.handOff(this.#quietTrigger);
  }

  // ---- Twilio side ----

  onTwilioFrame(frame: TwilioFrame): void {
    if (this.phase === "ended") return;
    switch (frame.event) {
      case "media":
        if (frame.track !== "inbound") return;
        this.stats.callerFrames++;
        if (this.phase === "live") this.sink.model(encodeAudioAppend(frame.payload));
        else this.#bufferCallerAudio(frame.payload);
        return;
      case "mark":
        this.#latency.markPlayed(frame.name);
        this.#onMarkPlayed(frame.name);
        return;
      case "dtmf":
        if (this.phase === "live") this.#sendDigit(frame.digit);
        else if (this.#pendingDigits.length < MAX_BUFFERED_DIGITS) this.#pendingDigits.push(frame.digit);
        return;
      case "stop":
        this.#end("completed", "twilio_stop");
        return;
      default:
        // connected and start are handled by the caller (start needs an async token check).
        return;
    }
  }

  /** Twilio's socket closed; without a `stop` first, the caller hung up or the line dropped. */
  twilioClosed(): void {
    this.#end("completed", "caller_disconnected");
  }

  #bufferCallerAudio(payload: string): void {
    this.#buffered.push(payload);
    this.#bufferedChars += payload.length;
    while (this.#bufferedChars > MAX_BUFFERED_AUDIO_CHARS && this.#bufferHead < this.#buffered.length) {
      this.#bufferedChars -= this.#buffered[this.#bufferHead].length;
      this.#bufferHead++;
      this.stats.bufferedFramesDropped++;
    }
    // Dropped frames must leave memory, not just the count: compact once the dead head is as long
    // as the live part (amortised O(1) per frame).
    if (this.#bufferHead > 0 && this.#bufferHead >= this.#buffered.length - this.#bufferHead) {
      this.#buffered = this.#buffered.slice(this.#bufferHead);
      this.#bufferHead = 0;
    }
  }

  /** Characters of caller audio held while the model session is set up (bounded). */
  get bufferedAudioChars(): number {
    return this.#bufferedChars;
  }

  #onMarkPlayed(name: string): void {
    switch (this.#playback.echoed(name, this.#clock())) {
      case "played":
        // The usual quiet moment: the last of a reply has just played.
        if (this.#playback.marksOutstanding === 0) {
          this.#endIfPlayed();
          this.#handOffIfQuiet();
        }
        return;
      case "cleared":
        this.stats.marksIgnored++;
        return;
      case "unknown":
        this.stats.marksUnknown++;
        return;
    }
  }

  #sendDigit(digit: string): void {
    const call = this.#call!;
    const id = this.options.newItemId("dtmf");
    const text = `The caller pressed ${digit} on the phone keypad.`;
    this.#ownItems.add(id);
    this.sink.model(encodeItemCreate(textItem(id, "user", text)));
    // A second response.create while one is running is refused; answer once it is done.
    if (this.#activeResponse === null) this.#requestResponse();
    else this.#replyOwed = true;
    this.#storeTurn("user", id, text, false);
    // The digit itself is not logged: callers key in PINs and card numbers.
    this.sink.log("info", "caller.dtmf", { call_sid: call.callSid });
  }

  // ---- model side ----

  onModelEvent(event: ServerEvent): void {
    if (this.phase === "ended") return;
    switch (event.type) {
      case "response.output_audio.delta":
        this.#relayAssistantAudio(event.responseId, event.itemId, event.delta);
        return;
      case "session.updated":
        this.#onSessionUpdated(event.inputFormat, event.outputFormat);
        return;
      case "error":
        this.stats.modelErrors++;
        this.sink.log("warn", "model.error", {
          code: event.code,
          type: event.errorType,
          message: event.message,
        });
        // Before the session is confirmed an error means our session.update was refused.
        if (this.phase !== "live") {
          this.#end("failed", `model_error:${event.code ?? event.errorType ?? "unknown"}`);
        }
        return;
      case "input_audio_buffer.speech_started":
        this.#seqOf(event.itemId);
        this.#callerSpeaking = true;
        this.#onCallerSpeech();
        return;
      case "input_audio_buffer.speech_stopped":
      case "input_audio_buffer.committed":
        // speech_stopped comes first and the commit of the same item follows: from here the
        // caller's turn is on its way (transcript, then the server's reply), not quiet yet.
        this.#seqOf(event.itemId);
        if (event.type === "input_audio_buffer.speech_stopped") this.#latency.speechStopped();
        this.#callerSpeaking = false;
        this.#awaitingTranscript.add(event.itemId);
        if (this.#createsResponse) this.#replyPending = true;
        return;
      case "conversation.item.added":
        if ((event.role === "user" || event.role === "assistant") && !this.#ownItems.has(event.itemId)) {
          this.#seqOf(event.itemId);
        }
        return;
      case "response.output_item.added":
        if (event.role === "assistant") this.#assistantItem(event.itemId);
        return;
      case "response.output_item.done":
        if (event.call !== null) {
          this.#seqOf(event.call.itemId);
          this.#toolCalls.itemDone(event.responseId, event.call);
        }
        return;
      case "conversation.item.input_audio_transcription.completed":
        this.#addUsage(event.usage, "transcription.");
        if (event.transcript.trim()) {
          this.#storeTurn("user", event.itemId, event.transcript, false);
        }
        this.#awaitingTranscript.delete(event.itemId);
        this.#handOffIfQuiet();
        return;
      case "conversation.item.input_audio_transcription.failed":
        this.sink.log("warn", "model.transcription_failed", {
          item_id: event.itemId,
          message: event.message,
        });
        this.#awaitingTranscript.delete(event.itemId);
        this.#handOffIfQuiet();
        return;
      case "response.output_audio_transcript.delta":
        this.#assistantItem(event.itemId).spoken += event.delta;
        return;
      case "response.output_audio_transcript.done":
        this.#onAssistantTranscript(event.itemId, event.transcript);
        return;
      case "response.created":
        this.#activeResponse = event.responseId;
        this.#replyPending = false;
        return;
      case "response.done":
        this.#onResponseDone(event);
        return;
      default:
        return;
    }
  }

  /** The model socket closed. Whatever the code (3000 bad key, 4000 beta shape, 1000...), a call
   * without its model cannot go on. */
  modelClosed(code: number, reason: string): void {
    if (this.phase === "ended") return;
    this.sink.log("warn", "model.closed", { code, reason });
    this.#end("failed", `model_closed:${code}`);
  }

  #onSessionUpdated(inputFormat: string | null, outputFormat: string | null): void {
    if (this.phase !== "connecting" || !this.#modelOpen) return;
    if (inputFormat !== "audio/pcmu" || outputFormat !== "audio/pcmu") {
      // The server kept another format (it discards an update with any field it rejects):
      // relaying would play 24 kHz PCM to the caller as noise.
      this.sink.log("error", "model.session_rejected", {
        input_format: inputFormat,
        output_format: outputFormat,
      });
      this.#end("failed", "session_not_pcmu");
      return;
    }
    this.phase = "live";
    // Caller audio held during setup may be speech the model has not detected yet: not quiet.
    const heldAudio = this.#buffered.length > this.#bufferHead;
    const { greeting, resume } = this.#call!;
    if (resume) {
      this.#restore(resume.turns, resume.mode, resume.toolCalls ?? []);
    } else if (greeting && greeting.trim()) {
      const id = this.options.newItemId("greeting");
      this.#ownItems.add(id);
      this.sink.model(encodeItemCreate(textItem(id, "system", greetingPrompt(greeting))));
      this.#requestResponse();
    }
    for (let i = this.#bufferHead; i < this.#buffered.length; i++) {
      this.sink.model(encodeAudioAppend(this.#buffered[i]));
    }
    this.#buffered = [];
    this.#bufferHead = 0;
    this.#bufferedChars = 0;
    for (const digit of this.#pendingDigits) this.#sendDigit(digit);
    this.#pendingDigits = [];
    this.sink.log("info", "model.ready", { buffered_frames_dropped: this.stats.bufferedFramesDropped });
    if (!heldAudio) this.#handOffIfQuiet();
  }

  /** The conversation so far into the new model session, as text items in order; they are not
   * turns (they are stored already), so the server's echoes of them get no seq. */
  #restore(turns: TurnRow[], mode: ResumeMode, toolCalls: ToolCallRow[]): void {
    // Tool calls go back where they were in the conversation (by seq), as a function_call with its
    // output (the planner chose which, with the turns).
    const calls = [...toolCalls].sort((a, b) => a.seq - b.seq);
    let next = 0;
    const restoreCallsBefore = (seq: number) => {
      for (; next < calls.length && calls[next].seq < seq; next++) {
        const call = calls[next];
        const args = typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments);
        this.sink.model(encodeItemCreate({
          type: "function_call",
          call_id: call.callId,
          name: call.name,
          arguments: args,
        }));
        this.sink.model(encodeFunctionCallOutput(call.callId, call.output));
      }
    };
    for (const turn of turns) {
      restoreCallsBefore(turn.seq);
      const id = this.options.newItemId("restored");
      this.#ownItems.add(id);
      const item = turn.role === "user" ? textItem(id, "user", turn.text) : assistantTextItem(id, turn.text);
      this.sink.model(encodeItemCreate(item));
    }
    restoreCallsBefore(Infinity);
    if (mode !== "listen") {
      const id = this.options.newItemId("resume");
      this.#ownItems.add(id);
      const prompt = mode === "reply" ? RESUME_PROMPT : TRANSFER_UNANSWERED_PROMPT;
      this.sink.model(encodeItemCreate(textItem(id, "system", prompt)));
      this.#requestResponse();
    }
    this.sink.log("info", "call.resumed", { restored_turns: turns.length, restored_tool_calls: next, mode });
  }

  #relayAssistantAudio(responseId: string, itemId: string, delta: string): void {
    const route = this.#audioRoute;
    let played: PlayedItem;
    if (
      route !== null && route.itemId === itemId && route.responseId === responseId && this.phase === "live"
    ) {
      played = route.played;
    } else {
      if (this.phase !== "live" || this.#cutResponses.has(responseId)) {
        this.stats.modelAudioDropped++;
        return;
      }
      played = this.#assistantItem(itemId).played;
      this.#audioRoute = { responseId, itemId, played };
    }
    if (played.cut || delta.length === 0) {
      this.stats.modelAudioDropped++;
      return;
    }
    this.sink.twilioMedia(delta);
    this.#latency.audioSent();
    const before = played.sentMs;
    const mark = this.#playback.sent(played, delta, this.#clock());
    this.stats.assistantAudioMs += played.sentMs - before;
    if (mark !== null) this.#sendMark(mark);
  }

  /** Barge-in: the caller talks over audio Twilio still has queued. */
  #onCallerSpeech(): void {
    if (!this.#interruptResponse) return;
    // The server cancels the running response itself (interrupt_response); deltas already on
    // the wire for it must not reach the caller.
    if (this.#activeResponse) this.#cutResponses.add(this.#activeResponse);
    this.#audioRoute = null;
    if (!this.#playback.queued) return;
    this.stats.bargeIns++;
    // A goodbye talked over still ends the call (below, once the clear has emptied the queue).
    this.sink.twilioClear();
    for (const { item: played, audioEndMs } of this.#playback.clear(this.#clock())) {
      this.sink.model(encodeTruncate(played.id, audioEndMs));
      const item = this.#assistant.get(played.id)!;
      if (!item.interrupted) {
        item.interrupted = true;
        if (item.transcript !== null) this.#storeTurn("assistant", item.id, item.transcript, true);
      }
    }
    this.sink.log("info", "call.barge_in", { barge_ins: this.stats.bargeIns });
    this.#endIfPlayed();
  }

  #onAssistantTranscript(itemId: string, transcript: string): void {
    const item = this.#assistantItem(itemId);
    if (!transcript.trim() || item.transcript === transcript) return;
    item.transcript = transcript;
    this.#storeTurn("assistant", itemId, transcript, item.interrupted);
  }

  #onResponseDone(event: Extract<ServerEvent, { type: "response.done" }>): void {
    if (this.#activeResponse === event.responseId || this.#activeResponse === "") this.#activeResponse = null;
    this.#cutResponses.delete(event.responseId);
    this.#addUsage(event.usage, "");
    for (const mark of this.#playback.markRemaining()) this.#sendMark(mark);
    for (const { itemId, transcript } of event.transcripts) {
      if (this.#assistant.get(itemId)?.transcript == null) this.#onAssistantTranscript(itemId, transcript);
    }
    if (event.status === "failed" || event.status === "incomplete") {
      this.sink.log("warn", "model.response_" + event.status, { reason: event.reason });
    }
    for (
      const call of this.#toolCalls.responseDone(event.responseId, event.status, event.functionCalls ?? [])
    ) {
      this.#startToolCall(call);
    }
    this.#replyIfOwed();
    this.#endIfPlayed();
    this.#handOffIfQuiet();
  }

  // ---- tools ----

  /** A completed function call: a built-in acts here, a tenant's tool goes to the sink to run. */
  #startToolCall(call: FunctionCall): void {
    const seq = this.#seqOf(call.itemId);
    const args = parseArguments(call.arguments);
    this.#running.set(call.callId, { call, arguments: args, seq });
    const tool = this.#tools.get(call.name);
    this.sink.log("info", "tool.started", { tool: call.name, call_id: call.callId, kind: tool?.kind });
    if (!tool) {
      this.toolFinished(call.callId, { output: errorOutput("unknown tool"), status: "error", durationMs: 0 });
    } else if (args === INVALID_ARGUMENTS) {
      this.toolFinished(call.callId, {
        output: errorOutput("the arguments are not a JSON object"),
        status: "error",
        durationMs: 0,
      });
    } else if (tool.kind === "transfer" || tool.kind === "end_call") {
      const transfer = tool.kind === "transfer";
      this.#ending ??= transfer
        ? { reason: END_REASONS.transferred, transferTo: tool.transferTo! }
        : { reason: END_REASONS.agentHungUp };
      this.toolFinished(call.callId, {
        output: transfer ? TRANSFER_OUTPUT : END_CALL_OUTPUT,
        status: "ok",
        durationMs: 0,
      });
    } else {
      this.sink.runTool({ callId: call.callId, tool, arguments: args });
    }
  }

  /** A tool's result: to the model (once per call), stored, and once the last call of its response
   * is answered, the model's next response (queued while another one is active). */
  toolFinished(callId: string, result: ToolResult): void {
    const running = this.#running.get(callId);
    if (running === undefined) return;
    this.#running.delete(callId);
    this.#latency.toolRan(result.durationMs);
    const output = capToolOutput(result.output);
    // A call that ended meanwhile (the caller hung up) has no model to tell; the call is still stored.
    if (this.phase !== "ended") this.sink.model(encodeFunctionCallOutput(callId, output));
    const call = this.#call!;
    this.sink.toolCall({
      tenantId: call.tenantId,
      callSid: call.callSid,
      seq: running.seq,
      callId,
      name: running.call.name,
      arguments: running.arguments === INVALID_ARGUMENTS ? running.call.arguments : running.arguments,
      output,
      status: result.status,
      durationMs: Math.max(0, Math.round(result.durationMs)),
    });
    this.sink.log("info", "tool.finished", {
      tool: running.call.name,
      call_id: callId,
      status: result.status,
      duration_ms: Math.round(result.durationMs),
    });
    // Once a built-in ends the call, the model is not asked to speak again.
    if (this.#toolCalls.answered(callId) === "last" && this.#ending === null && this.phase !== "ended") {
      this.#replyOwed = true;
      this.#replyIfOwed();
    }
    this.#handOffIfQuiet();
  }

  /** Tool calls started and not answered yet. */
  get toolsRunning(): number {
    return this.#toolCalls.running;
  }

  /** A built-in has asked to end the call and it waits for the last of its audio to play. */
  get endingAfterPlayback(): boolean {
    return this.#ending !== null && this.phase !== "ended";
  }

  /** The wait for the last mark took too long (a lost echo): end the call as the built-in asked. */
  finishEnding(): void {
    if (!this.endingAfterPlayback) return;
    this.sink.log("warn", "call.ending_without_last_mark", {
      marks_outstanding: this.#playback.marksOutstanding,
    });
    const { reason, transferTo } = this.#ending!;
    this.#end("completed", reason, transferTo);
  }

  #replyIfOwed(): void {
    if (this.#replyOwed && this.#activeResponse === null) {
      this.#replyOwed = false;
      this.#requestResponse();
    }
  }

  /** A built-in ended the call: end it once no response is running and everything sent has played
   * (Twilio echoed the last mark), so the caller hears the whole line. */
  #endIfPlayed(): void {
    if (this.#ending === null || this.#activeResponse !== null || this.#playback.queued) return;
    if (this.#toolCalls.running > 0) return;
    const { reason, transferTo } = this.#ending;
    this.#end("completed", reason, transferTo);
  }

  // ---- shared ----

  #requestResponse(): void {
    this.sink.model(encodeResponseCreate());
    // Counted as active at once (until response.created names it), so a digit pressed meanwhile
    // waits its turn and no handoff cuts the reply before it starts.
    this.#activeResponse = "";
  }

  #seqOf(itemId: string): number {
    let seq = this.#seqByItem.get(itemId);
    if (seq === undefined) {
      seq = this.#nextSeq++;
      this.#seqByItem.set(itemId, seq);
    }
    return seq;
  }

  #assistantItem(itemId: string): AssistantItem {
    let item = this.#assistant.get(itemId);
    if (!item) {
      item = {
        id: itemId,
        seq: this.#seqOf(itemId),
        played: this.#playback.item(itemId),
        interrupted: false,
        transcript: null,
        spoken: "",
      };
      this.#assistant.set(itemId, item);
    }
    return item;
  }

  #storeTurn(role: Role, itemId: string, text: string, interrupted: boolean): void {
    const call = this.#call!;
    this.sink.turn({
      tenantId: call.tenantId,
      callSid: call.callSid,
      role,
      text,
      itemId,
      seq: this.#seqOf(itemId),
      interrupted,
    });
  }

  #sendMark(mark: string): void {
    this.sink.twilioMark(mark);
    this.#latency.markSent(mark);
  }

  #addUsage(usage: Usage, prefix: string): void {
    for (const name in usage) {
      const key = prefix + name;
      this.usage[key] = (this.usage[key] ?? 0) + usage[name];
    }
  }

  #end(status: CallOutcome["status"], reason: string, transferTo?: string): void {
    if (this.phase === "ended") return;
    this.phase = "ended";
    this.#buffered = [];
    this.#latency.finish();
    const outcome: CallOutcome = {
      callSid: this.callSid,
      status,
      reason,
      usage: this.usage,
      stats: this.stats,
      // Twilio's inbound frames are 20 ms of µ-law each.
      metrics: this.#latency.metrics(this.stats.callerFrames * 20, this.stats.assistantAudioMs),
    };
    if (transferTo !== undefined) outcome.transferTo = transferTo;
    this.sink.end(outcome);
  }
}

const INVALID_ARGUMENTS = Symbol("invalid arguments");

/** The model's arguments text as an object; "" (no parameters) is {}. */
function parseArguments(text: string): unknown {
  if (!text.trim()) return {};
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : INVALID_ARGUMENTS;
  } catch {
    return INVALID_ARGUMENTS;
  }
}
