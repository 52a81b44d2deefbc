import assert from "node:assert/strict";
import { ConfigError, loadConfig, realtimeModelUrl } from "./config.ts";

const deployed = {
  TWILIO_AUTH_TOKEN: "twilio-token",
  OPENAI_API_KEY: "sk-test",
  SUPABASE_URL: "https://abcdefghijklmnopqrst.supabase.co",
  SUPABASE_SERVICE_ROLE_KEY: "service-role",
};

function envOf(values: Record<string, string>) {
  return (name: string) => values[name];
}

function problemsOf(values: Record<string, string>): string[] {
  try {
    loadConfig(envOf(values));
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("deployed defaults derive the public and stream URLs from SUPABASE_URL", () => {
  const config = loadConfig(envOf(deployed));
  assert.equal(config.publicUrl, "https://abcdefghijklmnopqrst.supabase.co/functions/v1/twilio-voice");
  assert.equal(config.streamUrl, "wss://abcdefghijklmnopqrst.supabase.co/functions/v1/twilio-voice");
  assert.equal(config.realtimeUrl, "wss://api.openai.com/v1/realtime");
  assert.equal(config.realtimeModel, "gpt-realtime");
  assert.equal(config.turnStore, "rest");
  assert.equal(config.wallClockLimitS, 400);
  assert.equal(config.port, 8000);
  assert.equal(config.host, "0.0.0.0");
});

Deno.test("PUBLIC_URL wins and a local http URL streams over ws", () => {
  const config = loadConfig(envOf({
    ...deployed,
    PUBLIC_URL: "http://127.0.0.1:54321/functions/v1/twilio-voice/",
    TURN_STORE: "postgres",
    SUPABASE_DB_URL: "postgresql://postgres:postgres@127.0.0.1:5432/postgres",
    OPENAI_REALTIME_URL: "ws://127.0.0.1:9999/v1/realtime",
    OPENAI_REALTIME_MODEL: "gpt-realtime-2.1",
    WALL_CLOCK_LIMIT_S: "150",
    PORT: "54321",
    HOST: "127.0.0.1",
  }));
  assert.equal(config.publicUrl, "http://127.0.0.1:54321/functions/v1/twilio-voice");
  assert.equal(config.streamUrl, "ws://127.0.0.1:54321/functions/v1/twilio-voice");
  assert.equal(config.turnStore, "postgres");
  assert.equal(config.realtimeModel, "gpt-realtime-2.1");
  assert.equal(config.wallClockLimitS, 150);
  assert.equal(config.port, 54321);
  assert.equal(config.host, "127.0.0.1");
});

Deno.test("every problem is reported at once, by name and never by value", () => {
  const problems = problemsOf({ TURN_STORE: "mysql", WALL_CLOCK_LIMIT_S: "-3", PORT: "http" });
  const text = problems.join("\n");
  for (
    const name of [
      "TWILIO_AUTH_TOKEN",
      "OPENAI_API_KEY",
      "PUBLIC_URL",
      "TURN_STORE",
      "WALL_CLOCK_LIMIT_S",
      "PORT",
    ]
  ) {
    assert.match(text, new RegExp(name));
  }
});

Deno.test("each store names the variables it needs", () => {
  const rest = problemsOf({ TWILIO_AUTH_TOKEN: "t", OPENAI_API_KEY: "k", PUBLIC_URL: "https://x.test/f" });
  assert.deepEqual(rest, [
    "SUPABASE_URL is not set (needed by TURN_STORE=rest)",
    "SUPABASE_SERVICE_ROLE_KEY is not set (needed by TURN_STORE=rest)",
  ]);
  const postgres = problemsOf({ ...deployed, TURN_STORE: "postgres" });
  assert.deepEqual(postgres, ["SUPABASE_DB_URL is not set (needed by TURN_STORE=postgres)"]);
});

Deno.test("a secret value never appears in an error", () => {
  const problems = problemsOf({
    ...deployed,
    OPENAI_API_KEY: "",
    PUBLIC_URL: "https://x.test/f?token=sk-secret",
  });
  assert.doesNotMatch(problems.join("\n"), /sk-secret|twilio-token|service-role/);
  assert.deepEqual(problems.length, 2);
});

Deno.test("realtime URL carries the model and keeps an operator's query", () => {
  assert.equal(
    realtimeModelUrl("wss://api.openai.com/v1/realtime", "gpt-realtime"),
    "wss://api.openai.com/v1/realtime?model=gpt-realtime",
  );
  assert.equal(
    realtimeModelUrl("ws://127.0.0.1:1/v1/realtime?x=1", "a b"),
    "ws://127.0.0.1:1/v1/realtime?x=1&model=a%20b",
  );
});

Deno.test("WALL_CLOCK_LIMIT_S=0 means no wall clock; METRICS_TOKEN must be long enough to be a secret", () => {
  assert.equal(loadConfig(envOf({ ...deployed, WALL_CLOCK_LIMIT_S: "0" })).wallClockLimitS, 0);
  assert.equal(loadConfig(envOf(deployed)).metricsToken, null);
  const problems = problemsOf({ ...deployed, METRICS_TOKEN: "short" }).join("\n");
  assert.match(problems, /METRICS_TOKEN must be at least 24 characters/);
  assert.doesNotMatch(problems, /short/);
});
