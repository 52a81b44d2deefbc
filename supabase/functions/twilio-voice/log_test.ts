import assert from "node:assert/strict";
import { createLogger, errorMessage, type LogLevel } from "./log.ts";

function capture() {
  const lines: { level: LogLevel; record: Record<string, unknown> }[] = [];
  const sink = (level: LogLevel, line: string) => {
    assert.ok(!line.includes("\n"), "one line per event");
    lines.push({ level, record: JSON.parse(line) });
  };
  return { lines, sink };
}

Deno.test("each event is one JSON line carrying the call's fields", () => {
  const { lines, sink } = capture();
  const log = createLogger({ sink }).with({ call_sid: "CA00000000000000000000000000000001" });
  log.info("call.started", { tenant_id: "t1", skipped: undefined });
  log.error("model.closed", { code: 3000 });
  assert.equal(lines.length, 2);
  assert.equal(lines[0].level, "info");
  assert.equal(lines[0].record.event, "call.started");
  assert.equal(lines[0].record.call_sid, "CA00000000000000000000000000000001");
  assert.equal(lines[0].record.tenant_id, "t1");
  assert.ok(!("skipped" in lines[0].record));
  assert.equal(lines[1].level, "error");
  assert.equal(lines[1].record.code, 3000);
  assert.match(String(lines[1].record.ts), /^\d{4}-\d\d-\d\dT/);
});

Deno.test("audio, signatures, tokens and keys are never written", () => {
  const { lines, sink } = capture();
  const log = createLogger({ sink });
  log.warn("x", {
    payload: "AAAA",
    audio: "AAAA",
    delta: "AAAA",
    x_twilio_signature: "sig",
    stream_token: "tok",
    api_key: "sk",
    output_tokens: 12,
  });
  assert.deepEqual(Object.keys(lines[0].record).sort(), ["event", "level", "output_tokens", "ts"]);
});

Deno.test("configured secrets are masked inside any value", () => {
  const { lines, sink } = capture();
  const log = createLogger({ sink, secrets: ["sk-live-abcdef", null, "abc"] });
  log.error("model.error", { message: "bad key sk-live-abcdef in openai-insecure-api-key.sk-live-abcdef" });
  assert.equal(lines[0].record.message, "bad key [redacted] in openai-insecure-api-key.[redacted]");
});

Deno.test("long values are cut so one bad frame cannot flood the log", () => {
  const { lines, sink } = capture();
  createLogger({ sink }).info("x", { message: "y".repeat(5000) });
  assert.ok(String(lines[0].record.message).length <= 1001);
});

Deno.test("errorMessage keeps the name and message only", () => {
  assert.equal(errorMessage(new TypeError("boom")), "TypeError: boom");
  assert.equal(errorMessage("plain"), "plain");
});
