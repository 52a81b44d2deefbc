import assert from "node:assert/strict";
import {
  checkAgentSettings,
  MAX_GREETING_CHARS,
  MAX_INSTRUCTIONS_CHARS,
  MAX_TURN_DETECTION_CHARS,
} from "./agent_settings.ts";
import { type AgentSettings, NO_AGENT_SETTINGS } from "./store.ts";

const GOOD: AgentSettings = {
  instructions: "You answer for Acme Dental.",
  voice: "cedar",
  greeting: "Acme Dental, how can I help?",
  model: "gpt-realtime-2025-08-28",
  transcriptionModel: "gpt-4o-mini-transcribe",
  turnDetection: { type: "server_vad", silence_duration_ms: 500 },
};

Deno.test("settings within the rules pass unchanged, boundary values included", () => {
  assert.deepEqual(checkAgentSettings(GOOD), { agent: GOOD, rejected: [] });
  const atLimits = {
    ...GOOD,
    instructions: "x".repeat(MAX_INSTRUCTIONS_CHARS),
    greeting: "x".repeat(MAX_GREETING_CHARS),
  };
  assert.deepEqual(checkAgentSettings(atLimits).rejected, []);
  assert.deepEqual(checkAgentSettings(null), { agent: null, rejected: [] });
});

Deno.test("each bad field falls back to its default on its own, named by column", () => {
  const bad: AgentSettings = {
    instructions: "x".repeat(3 * 1024 * 1024),
    voice: "darth",
    greeting: "x".repeat(MAX_GREETING_CHARS + 1),
    model: "../../v1/other?x=",
    transcriptionModel: "GPT 4",
    turnDetection: { type: "server_vad", padding: "x".repeat(MAX_TURN_DETECTION_CHARS) },
  };
  const { agent, rejected } = checkAgentSettings(bad);
  assert.deepEqual(rejected, [
    "instructions",
    "greeting",
    "voice",
    "model",
    "transcription_model",
    "turn_detection",
  ]);
  assert.deepEqual(agent, { ...NO_AGENT_SETTINGS });
  const oneBad = checkAgentSettings({ ...GOOD, voice: "nova" });
  assert.deepEqual(oneBad, { agent: { ...GOOD, voice: null }, rejected: ["voice"] });
});

Deno.test("lengths are counted in characters like Postgres' char_length, not UTF-16 code units", () => {
  // 😀 is one character and two code units: the database accepts 32,000 of them.
  const wide = {
    ...GOOD,
    instructions: "😀".repeat(MAX_INSTRUCTIONS_CHARS),
    greeting: "😀".repeat(MAX_GREETING_CHARS),
  };
  assert.deepEqual(checkAgentSettings(wide).rejected, []);
  const tooWide = { ...GOOD, instructions: "😀".repeat(MAX_INSTRUCTIONS_CHARS + 1) };
  assert.deepEqual(checkAgentSettings(tooWide).rejected, ["instructions"]);
});
