import assert from "node:assert/strict";
import {
  buildSessionConfig,
  DEFAULT_INSTRUCTIONS,
  DEFAULT_TRANSCRIPTION_MODEL,
  DEFAULT_VOICE,
  sanitizeTurnDetection,
} from "./session_config.ts";
import { encodeSessionUpdate } from "./realtime_events.ts";
import { type AgentSettings, NO_AGENT_SETTINGS } from "./store.ts";

const noSettings: AgentSettings = { ...NO_AGENT_SETTINGS };

Deno.test("defaults give a GA session with µ-law both ways and transcription on", () => {
  for (const agent of [null, noSettings]) {
    const { session, dropped } = buildSessionConfig(agent);
    assert.deepEqual(dropped, []);
    assert.deepEqual(session, {
      type: "realtime",
      instructions: DEFAULT_INSTRUCTIONS,
      output_modalities: ["audio"],
      audio: {
        input: {
          format: { type: "audio/pcmu" },
          transcription: { model: DEFAULT_TRANSCRIPTION_MODEL },
          turn_detection: { type: "server_vad", create_response: true, interrupt_response: true },
        },
        output: { format: { type: "audio/pcmu" }, voice: DEFAULT_VOICE },
      },
    });
  }
});

Deno.test("no beta-shape field is ever sent", () => {
  const text = encodeSessionUpdate(buildSessionConfig(null).session);
  for (
    const beta of [
      'modalities":',
      "input_audio_format",
      "output_audio_format",
      "input_audio_transcription",
      "g711_ulaw",
    ]
  ) {
    assert.ok(!text.includes(`"${beta}`), beta);
  }
});

Deno.test("tenant settings replace the defaults", () => {
  const { session } = buildSessionConfig({
    ...noSettings,
    instructions: "You are Acme's receptionist.",
    voice: "cedar",
    transcriptionModel: "gpt-4o-transcribe",
    turnDetection: { type: "semantic_vad", eagerness: "low" },
  });
  assert.equal(session.instructions, "You are Acme's receptionist.");
  assert.equal(session.audio.output.voice, "cedar");
  assert.deepEqual(session.audio.input.transcription, { model: "gpt-4o-transcribe" });
  assert.deepEqual(session.audio.input.turn_detection, { type: "semantic_vad", eagerness: "low" });
});

Deno.test("blank settings fall back to defaults", () => {
  const { session } = buildSessionConfig({ ...noSettings, instructions: "  ", voice: "" });
  assert.equal(session.instructions, DEFAULT_INSTRUCTIONS);
  assert.equal(session.audio.output.voice, DEFAULT_VOICE);
});

Deno.test("unknown or mistyped turn detection keys are dropped and reported", () => {
  assert.deepEqual(
    sanitizeTurnDetection({
      type: "server_vad",
      threshold: 0.6,
      silence_duration_ms: 400,
      eagerness: "high",
      prefix_padding_ms: -1,
      extra: 1,
    }),
    {
      turnDetection: { type: "server_vad", threshold: 0.6, silence_duration_ms: 400 },
      dropped: ["turn_detection.eagerness", "turn_detection.prefix_padding_ms", "turn_detection.extra"],
    },
  );
  const unknownType = sanitizeTurnDetection({ type: "push_to_talk" });
  assert.deepEqual(unknownType.dropped, ["turn_detection.type"]);
  assert.equal(unknownType.turnDetection.type, "server_vad");
});

Deno.test("tools go into the session flat with tool_choice auto, and only the documented fields", () => {
  const tool = {
    name: "lookup_order",
    description: "Look up an order",
    parameters: { type: "object", properties: { order: { type: "string" } } },
    kind: "http" as const,
    httpUrl: "https://tools.example/lookup",
    sqlFunction: null,
    transferTo: null,
    timeoutMs: 5000,
  };
  const { session } = buildSessionConfig(null, [tool, { ...tool, name: "transfer", kind: "transfer" }]);
  assert.deepEqual(session.tools, [
    { type: "function", name: "lookup_order", description: "Look up an order", parameters: tool.parameters },
    { type: "function", name: "transfer", description: "Look up an order", parameters: tool.parameters },
  ]);
  assert.equal(session.tool_choice, "auto");
  const without = buildSessionConfig(null).session;
  assert.ok(!("tools" in without) && !("tool_choice" in without), "no tools: neither field");
});
