// The GA session of one call (what session.update carries), from the tenant's tenant_agents row
// (null = default).
// Tenants edit turn_detection as free JSON; the server discards a whole session.update over one
// unknown field, so unknown or mistyped keys are dropped here (and reported) instead.

import type { AgentSettings, TenantTool } from "./store.ts";
import type { FunctionTool, SessionConfig, TurnDetection } from "./realtime_events.ts";

export const DEFAULT_INSTRUCTIONS = "You are a friendly, concise assistant answering a phone call. " +
  "Speak naturally and keep each reply to one or two short sentences. Ask one question at a time. " +
  "If you do not know something, say so instead of guessing.";
// marin and cedar are the voices OpenAI recommends for gpt-realtime.
export const DEFAULT_VOICE = "marin";
// Announced to shut down 2027-02-26: tenants can set transcription_model to its successor.
export const DEFAULT_TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe";
// Barge-in relies on the server cancelling the reply when the caller starts talking.
export const DEFAULT_TURN_DETECTION: TurnDetection = {
  type: "server_vad",
  create_response: true,
  interrupt_response: true,
};

type Check = (value: unknown) => boolean;
const isBool: Check = (value) => typeof value === "boolean";
const isWholeMs: Check = (value) => Number.isInteger(value) && (value as number) >= 0;
const isUnit: Check = (value) => typeof value === "number" && value >= 0 && value <= 1;

const TURN_DETECTION_FIELDS: Record<TurnDetection["type"], Record<string, Check>> = {
  server_vad: {
    threshold: isUnit,
    prefix_padding_ms: isWholeMs,
    silence_duration_ms: isWholeMs,
    idle_timeout_ms: (value) => value === null || isWholeMs(value),
    create_response: isBool,
    interrupt_response: isBool,
  },
  semantic_vad: {
    eagerness: (value) => value === "low" || value === "medium" || value === "high" || value === "auto",
    create_response: isBool,
    interrupt_response: isBool,
  },
};

export interface BuiltSession {
  /** What session.update sends (realtime_events.ts encodes it). */
  session: SessionConfig;
  /** Tenant settings left out because the GA schema would refuse them (for the log). */
  dropped: string[];
}

export function sanitizeTurnDetection(
  raw: Record<string, unknown> | null,
): { turnDetection: TurnDetection; dropped: string[] } {
  if (raw === null) return { turnDetection: DEFAULT_TURN_DETECTION, dropped: [] };
  const type = raw.type;
  if (type !== "server_vad" && type !== "semantic_vad") {
    return { turnDetection: DEFAULT_TURN_DETECTION, dropped: ["turn_detection.type"] };
  }
  const allowed = TURN_DETECTION_FIELDS[type];
  const kept: Record<string, unknown> = { type };
  const dropped: string[] = [];
  for (const [name, value] of Object.entries(raw)) {
    if (name === "type") continue;
    if (Object.hasOwn(allowed, name) && allowed[name](value)) kept[name] = value;
    else dropped.push(`turn_detection.${name}`);
  }
  return { turnDetection: kept as TurnDetection, dropped };
}

const nonEmpty = (value: string | null | undefined): string | null => value && value.trim() ? value : null;

/** The tenant's tools as session.tools lists them: only the documented fields (name, description,
 * parameters), whatever kind runs them; the bridge keeps the rest. */
export function sessionTools(tools: readonly TenantTool[]): FunctionTool[] {
  return tools.map((tool) => ({
    type: "function",
    name: tool.name,
    description: tool.description,
    parameters: tool.parameters,
  }));
}

export function buildSessionConfig(
  agent: AgentSettings | null,
  tools: readonly TenantTool[] = [],
): BuiltSession {
  const { turnDetection, dropped } = sanitizeTurnDetection(agent?.turnDetection ?? null);
  const session: SessionConfig = {
    type: "realtime",
    instructions: nonEmpty(agent?.instructions) ?? DEFAULT_INSTRUCTIONS,
    output_modalities: ["audio"],
    audio: {
      input: {
        format: { type: "audio/pcmu" },
        transcription: { model: nonEmpty(agent?.transcriptionModel) ?? DEFAULT_TRANSCRIPTION_MODEL },
        turn_detection: turnDetection,
      },
      output: { format: { type: "audio/pcmu" }, voice: nonEmpty(agent?.voice) ?? DEFAULT_VOICE },
    },
  };
  if (tools.length > 0) {
    session.tools = sessionTools(tools);
    session.tool_choice = "auto";
  }
  return { session, dropped };
}

/** The prompt that makes the assistant speak first; a system item, so it is never a caller turn. */
export function greetingPrompt(greeting: string): string {
  return `Greet the caller now by saying this, in the language it is written in: ${greeting}`;
}
