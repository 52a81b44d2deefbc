// The rules a tenant's agent settings must meet before they reach a session.update, the same
// rules the database enforces on tenant_agents (migration 20261202090100). A row written before
// those constraints, or edited around them, still cannot break a call: a bad field falls back to
// its default, and the call goes on. 3 MB of instructions used to make every call of the tenant
// fail: the session.updated echo overran the model frame cap and setup timed out.

import type { AgentSettings } from "./store.ts";

// ~8k tokens: room for a business's prompt, and its session.updated echo stays far under the
// model frame cap (MAX_MODEL_FRAME_CHARS, 2 MiB).
export const MAX_INSTRUCTIONS_CHARS = 32_000;
// Spoken at the start of the call: a few sentences at most.
export const MAX_GREETING_CHARS = 1_000;
export const MAX_TURN_DETECTION_CHARS = 1_000;
// The GA Realtime API's built-in voices (OpenAI API reference: session.audio.output.voice).
export const REALTIME_VOICES = [
  "alloy",
  "ash",
  "ballad",
  "coral",
  "echo",
  "sage",
  "shimmer",
  "verse",
  "marin",
  "cedar",
];
// Model ids are lowercase names with dots, dashes and dates (gpt-realtime, gpt-4o-mini-transcribe,
// gpt-realtime-2025-08-28); anything else would only be refused by the API, or reach the URL.
export const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

type Field = keyof AgentSettings;
const FIELD_COLUMNS: Record<Field, string> = {
  instructions: "instructions",
  voice: "voice",
  greeting: "greeting",
  model: "model",
  transcriptionModel: "transcription_model",
  turnDetection: "turn_detection",
};

/** Whether `value` has at most `max` characters as Postgres' char_length counts them (code points),
 * so what the database's constraints accepted is never rejected here: String.length counts UTF-16
 * code units, two for every character outside the BMP (32,000 emoji were 64,000). */
function withinChars(value: string, max: number): boolean {
  if (value.length <= max) return true; // code points never outnumber code units
  let count = 0;
  for (const _ of value) if (++count > max) return false;
  return true;
}

const RULES: { [F in Field]: (value: NonNullable<AgentSettings[F]>) => boolean } = {
  instructions: (value) => withinChars(value, MAX_INSTRUCTIONS_CHARS),
  greeting: (value) => withinChars(value, MAX_GREETING_CHARS),
  voice: (value) => REALTIME_VOICES.includes(value),
  model: (value) => MODEL_NAME.test(value),
  transcriptionModel: (value) => MODEL_NAME.test(value),
  turnDetection: (value) => withinChars(JSON.stringify(value), MAX_TURN_DETECTION_CHARS),
};

/** The settings with every field that breaks a rule set to null (its default), and their columns. */
export function checkAgentSettings(
  agent: AgentSettings | null,
): { agent: AgentSettings | null; rejected: string[] } {
  if (agent === null) return { agent, rejected: [] };
  const checked: AgentSettings = { ...agent };
  const rejected: string[] = [];
  for (const field of Object.keys(RULES) as Field[]) {
    const value = agent[field];
    if (value === null || value === undefined) continue;
    const rule = RULES[field] as (value: unknown) => boolean;
    if (!rule(value)) {
      (checked as Record<Field, unknown>)[field] = null;
      rejected.push(FIELD_COLUMNS[field]);
    }
  }
  return { agent: checked, rejected };
}
