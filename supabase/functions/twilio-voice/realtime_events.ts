// OpenAI Realtime (GA) wire format: server events decoded into the few shapes the bridge acts on,
// client events encoded. The beta shape is refused by the server since 2026-05, and a session.update
// with any unknown field is discarded whole, so nothing here emits a field the GA schema lacks.
// https://platform.openai.com/docs/api-reference/realtime-server-events

import { type Decoded, isBase64, isObject, type Json, parseObject } from "./wire.ts";

// A session.updated echoes the instructions, and deltas carry up to a few seconds of audio.
export const MAX_MODEL_FRAME_CHARS = 2 * 1024 * 1024;

export type Usage = Record<string, number>;

export type ServerEvent =
  | { type: "session.created" }
  | { type: "session.updated"; inputFormat: string | null; outputFormat: string | null }
  | { type: "error"; code: string | null; errorType: string | null; message: string }
  | { type: "input_audio_buffer.speech_started"; itemId: string }
  | { type: "input_audio_buffer.speech_stopped"; itemId: string }
  | { type: "input_audio_buffer.committed"; itemId: string }
  | { type: "conversation.item.added"; itemId: string; role: string | null }
  | {
    type: "conversation.item.input_audio_transcription.completed";
    itemId: string;
    transcript: string;
    usage: Usage;
  }
  | { type: "conversation.item.input_audio_transcription.failed"; itemId: string; message: string }
  | { type: "response.created"; responseId: string }
  | { type: "response.output_item.added"; itemId: string; role: string | null }
  /** A function_call item the model finished writing (its response may still be cancelled). */
  | { type: "response.output_item.done"; responseId: string; call: FunctionCall | null }
  | { type: "response.output_audio.delta"; responseId: string; itemId: string; delta: string }
  | { type: "response.output_audio_transcript.delta"; itemId: string; delta: string }
  | { type: "response.output_audio_transcript.done"; itemId: string; transcript: string }
  | {
    type: "response.done";
    responseId: string;
    status: string;
    reason: string | null;
    usage: Usage;
    /** Assistant message items of the response with their transcripts (a fallback when a
     * cancelled response never sent its transcript's done event). */
    transcripts: { itemId: string; transcript: string }[];
    /** Completed function_call items of the response (the item.done events are the usual source). */
    functionCalls?: FunctionCall[];
  }
  | { type: "ignored"; name: string };

/** A function_call item as the model wrote it; `arguments` is the model's JSON text, unparsed. */
export interface FunctionCall {
  itemId: string;
  callId: string;
  name: string;
  arguments: string;
}

// GA server events the bridge has no use for: accepted quietly, unlike unknown (e.g. beta) names.
const IGNORED_EVENTS = new Set([
  "conversation.created",
  "conversation.item.created",
  "conversation.item.done",
  "conversation.item.deleted",
  "conversation.item.retrieved",
  "conversation.item.truncated",
  "conversation.item.input_audio_transcription.delta",
  "conversation.item.input_audio_transcription.segment",
  "input_audio_buffer.cleared",
  "input_audio_buffer.timeout_triggered",
  "input_audio_buffer.dtmf_event_received",
  "output_audio_buffer.started",
  "output_audio_buffer.stopped",
  "output_audio_buffer.cleared",
  "rate_limits.updated",
  "response.content_part.added",
  "response.content_part.done",
  "response.output_audio.done",
  "response.output_text.delta",
  "response.output_text.done",
  "response.function_call_arguments.delta",
  "response.function_call_arguments.done",
  "session.closed",
]);

const str = (value: unknown): string | null => typeof value === "string" ? value : null;

function formatOf(audio: unknown, direction: "input" | "output"): string | null {
  if (!isObject(audio)) return null;
  const side = audio[direction];
  if (!isObject(side) || !isObject(side.format)) return null;
  return str(side.format.type);
}

/** Numeric usage fields, nested objects flattened to dotted names, so sums survive new fields. */
export function flattenUsage(value: unknown, prefix = "", into: Usage = {}): Usage {
  if (!isObject(value)) return into;
  for (const [name, item] of Object.entries(value)) {
    if (typeof item === "number" && Number.isFinite(item)) into[prefix + name] = item;
    else if (isObject(item) && prefix.split(".").length < 4) flattenUsage(item, `${prefix}${name}.`, into);
  }
  return into;
}

function assistantTranscripts(output: unknown): { itemId: string; transcript: string }[] {
  const found: { itemId: string; transcript: string }[] = [];
  if (!Array.isArray(output)) return found;
  for (const item of output) {
    if (!isObject(item) || item.role !== "assistant" || typeof item.id !== "string") continue;
    const parts = Array.isArray(item.content) ? item.content : [];
    const transcript = parts.map((part) => isObject(part) ? str(part.transcript) ?? str(part.text) ?? "" : "")
      .join("");
    if (transcript) found.push({ itemId: item.id, transcript });
  }
  return found;
}

/** A completed function_call item, or null for any other item (messages, unfinished calls). */
function functionCallOf(item: unknown): FunctionCall | null {
  if (!isObject(item) || item.type !== "function_call" || item.status === "incomplete") return null;
  const itemId = str(item.id), callId = str(item.call_id), name = str(item.name);
  if (itemId === null || callId === null || name === null) return null;
  return { itemId, callId, name, arguments: str(item.arguments) ?? "" };
}

function functionCallsOf(output: unknown): FunctionCall[] {
  if (!Array.isArray(output)) return [];
  return output.map(functionCallOf).filter((call): call is FunctionCall => call !== null);
}

export type AudioDelta = Extract<ServerEvent, { type: "response.output_audio.delta" }>;

// Nearly every event of a call is an audio delta (one per 20 ms of speech), and the Realtime API writes
// each one compactly, keys in this order
// (https://platform.openai.com/docs/api-reference/realtime-server-events/response/output_audio/delta):
//   {"type":"response.output_audio.delta","event_id":"event_…","response_id":"resp_…","item_id":"item_…",
//    "output_index":0,"content_index":0,"delta":"<base64>"}
// A delta of exactly that form is read with one anchored regular expression instead of JSON.parse and a
// walk over the object. Every value it admits is a run of ASCII characters that need no escape in JSON
// (or a JSON integer without leading zeros), between fixed pieces, so what it accepts is valid JSON
// without duplicate keys, and the full decoder would read the same values from it.
const AUDIO_DELTA_FORM =
  /^\{"type":"response\.output_audio\.delta","event_id":"[A-Za-z0-9_]*","response_id":"([A-Za-z0-9_]*)","item_id":"([A-Za-z0-9_]*)","output_index":(?:0|[1-9][0-9]*),"content_index":(?:0|[1-9][0-9]*),"delta":"([A-Za-z0-9+\/]*={0,2})"\}$/;

/** An audio delta in exactly the form the Realtime API writes it, or null: anything else is for the
 * full decoder, which may still accept it (other key order, spaces, escapes) or refuse it. */
export function decodeAudioDeltaFast(data: string): AudioDelta | null {
  if (data.length > MAX_MODEL_FRAME_CHARS) return null;
  const match = AUDIO_DELTA_FORM.exec(data);
  // The delta group is isBase64's character rule; its length rule is checked here.
  if (match === null || match[3].length % 4 !== 0) return null;
  return { type: "response.output_audio.delta", responseId: match[1], itemId: match[2], delta: match[3] };
}

/** What the model sent, decoded: an audio delta in the API's own form by its pattern, anything else in full. */
export function decodeServerEvent(data: unknown): Decoded<ServerEvent> {
  if (typeof data === "string") {
    const delta = decodeAudioDeltaFast(data);
    if (delta !== null) return { ok: true, frame: delta };
  }
  return decodeServerEventFully(data);
}

/** Every event by `JSON.parse` and a check of its shape: the reference the fast path agrees with. */
export function decodeServerEventFully(data: unknown): Decoded<ServerEvent> {
  const parsed = parseObject(data, MAX_MODEL_FRAME_CHARS);
  if (!parsed.ok) return parsed;
  const message: Json = parsed.frame;
  const type = message.type;
  const bad = { ok: false, reason: "bad_shape", event: String(type) } as const;
  const itemId = str(message.item_id);
  switch (type) {
    case "response.output_audio.delta": {
      const delta = message.delta;
      if (itemId === null || typeof delta !== "string" || !isBase64(delta)) return bad;
      return { ok: true, frame: { type, responseId: str(message.response_id) ?? "", itemId, delta } };
    }
    case "session.created":
      return { ok: true, frame: { type } };
    case "session.updated": {
      const session = isObject(message.session) ? message.session : {};
      return {
        ok: true,
        frame: {
          type,
          inputFormat: formatOf(session.audio, "input"),
          outputFormat: formatOf(session.audio, "output"),
        },
      };
    }
    case "error": {
      const error = isObject(message.error) ? message.error : {};
      return {
        ok: true,
        frame: { type, code: str(error.code), errorType: str(error.type), message: str(error.message) ?? "" },
      };
    }
    case "input_audio_buffer.speech_started":
    case "input_audio_buffer.speech_stopped":
    case "input_audio_buffer.committed":
      return itemId === null ? bad : { ok: true, frame: { type, itemId } };
    case "conversation.item.added":
    case "response.output_item.added": {
      const item = isObject(message.item) ? message.item : {};
      const id = str(item.id);
      return id === null ? bad : { ok: true, frame: { type, itemId: id, role: str(item.role) } };
    }
    case "conversation.item.input_audio_transcription.completed": {
      const transcript = str(message.transcript);
      if (itemId === null || transcript === null) return bad;
      return { ok: true, frame: { type, itemId, transcript, usage: flattenUsage(message.usage) } };
    }
    case "conversation.item.input_audio_transcription.failed": {
      if (itemId === null) return bad;
      const error = isObject(message.error) ? message.error : {};
      return { ok: true, frame: { type, itemId, message: str(error.message) ?? "" } };
    }
    case "response.output_audio_transcript.delta": {
      const delta = str(message.delta);
      if (itemId === null || delta === null) return bad;
      return { ok: true, frame: { type, itemId, delta } };
    }
    case "response.output_audio_transcript.done": {
      const transcript = str(message.transcript);
      if (itemId === null || transcript === null) return bad;
      return { ok: true, frame: { type, itemId, transcript } };
    }
    case "response.output_item.done":
      return {
        ok: true,
        frame: { type, responseId: str(message.response_id) ?? "", call: functionCallOf(message.item) },
      };
    case "response.created": {
      const response = isObject(message.response) ? message.response : {};
      return { ok: true, frame: { type, responseId: str(response.id) ?? "" } };
    }
    case "response.done": {
      const response = isObject(message.response) ? message.response : {};
      const details = isObject(response.status_details) ? response.status_details : {};
      const reason = str(details.reason) ??
        (isObject(details.error) ? str(details.error.code) ?? str(details.error.message) : null);
      return {
        ok: true,
        frame: {
          type,
          responseId: str(response.id) ?? "",
          status: str(response.status) ?? "unknown",
          reason,
          usage: flattenUsage(response.usage),
          transcripts: assistantTranscripts(response.output),
          functionCalls: functionCallsOf(response.output),
        },
      };
    }
    default:
      if (typeof type === "string" && IGNORED_EVENTS.has(type)) {
        return { ok: true, frame: { type: "ignored", name: type } };
      }
      return { ok: false, reason: "unknown_event", event: String(type) };
  }
}

// ---- client events ----

export interface InputText {
  type: "input_text";
  text: string;
}

/** What the assistant said, restored as text into a new model session after a handoff. */
export interface OutputText {
  type: "output_text";
  text: string;
}

export type MessageItem =
  | { id: string; type: "message"; role: "user" | "system"; content: InputText[] }
  | { id: string; type: "message"; role: "assistant"; content: OutputText[] }
  | { type: "function_call_output"; call_id: string; output: string }
  /** An earlier session's tool call, restored after a handoff so its output has a call to answer. */
  | { type: "function_call"; call_id: string; name: string; arguments: string };

export type TurnDetection =
  | {
    type: "server_vad";
    threshold?: number;
    prefix_padding_ms?: number;
    silence_duration_ms?: number;
    idle_timeout_ms?: number | null;
    create_response?: boolean;
    interrupt_response?: boolean;
  }
  | {
    type: "semantic_vad";
    eagerness?: "low" | "medium" | "high" | "auto";
    create_response?: boolean;
    interrupt_response?: boolean;
  };

/** A tool as session.tools lists it (GA: flat, no nested `function` object). */
export interface FunctionTool {
  type: "function";
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

export interface SessionConfig {
  type: "realtime";
  instructions: string;
  output_modalities: ["audio"];
  /** Absent when the tenant has no tools: the server's default (none) stands. */
  tools?: FunctionTool[];
  tool_choice?: "auto";
  audio: {
    input: {
      format: { type: "audio/pcmu" };
      transcription: { model: string };
      turn_detection: TurnDetection;
    };
    output: { format: { type: "audio/pcmu" }; voice: string };
  };
}

/** The client events the bridge sends, as the GA schema spells them (the encoders' output). */
export type ClientEvent =
  | { type: "session.update"; session: SessionConfig }
  | { type: "input_audio_buffer.append"; audio: string }
  | { type: "conversation.item.create"; item: MessageItem }
  | { type: "response.create" }
  | { type: "conversation.item.truncate"; item_id: string; content_index: 0; audio_end_ms: number };

const encode = (event: ClientEvent): string => JSON.stringify(event);

/** Caller audio for the model: the hot path (one per 20 ms frame), so a template, not an object.
 * The audio is base64 (checked by the Twilio codec), so no escaping is needed. */
export function encodeAudioAppend(audio: string): string {
  return `{"type":"input_audio_buffer.append","audio":"${audio}"}`;
}

export function encodeSessionUpdate(session: SessionConfig): string {
  return encode({ type: "session.update", session });
}

export function encodeItemCreate(item: MessageItem): string {
  return encode({ type: "conversation.item.create", item });
}

export function encodeResponseCreate(): string {
  return encode({ type: "response.create" });
}

/** Cut an assistant item's audio at what the caller heard; its audio is its only content part. */
export function encodeTruncate(itemId: string, audioEndMs: number): string {
  return encode({
    type: "conversation.item.truncate",
    item_id: itemId,
    content_index: 0,
    audio_end_ms: audioEndMs,
  });
}

export function textItem(id: string, role: "user" | "system", text: string): MessageItem {
  return { id, type: "message", role, content: [{ type: "input_text", text }] };
}

/** A tool's result, answering the model's function_call with the same call_id. */
export function encodeFunctionCallOutput(callId: string, output: string): string {
  return encodeItemCreate({ type: "function_call_output", call_id: callId, output });
}

/** An assistant message given as text: the GA shape for output the model "said" earlier
 * (content type output_text; audio would cost ~10x the tokens). */
export function assistantTextItem(id: string, text: string): MessageItem {
  return { id, type: "message", role: "assistant", content: [{ type: "output_text", text }] };
}
