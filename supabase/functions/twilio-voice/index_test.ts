// index.ts as users run it: `deno run -A index.ts` in a child process, configured by env only.

import assert from "node:assert/strict";
import { DRAIN_QUIET_WAIT_MS } from "./handoff.ts";
import { startRealtimeStub } from "./testing/realtime_stub.ts";
import { seedTenant, storedTurns, testDatabaseUrl, withAdmin } from "./testing/test_database.ts";
import { connectTwilioStream, signedPost } from "./testing/twilio_stream_client.ts";

const INDEX = new URL("./index.ts", import.meta.url).pathname;

interface Running {
  child: Deno.ChildProcess;
  lines: Record<string, unknown>[];
  waitForLine(event: string): Promise<Record<string, unknown>>;
  exited: Promise<Deno.CommandStatus>;
}

function runIndex(env: Record<string, string>): Running {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", INDEX],
    env: { ...env, NO_COLOR: "1", DENO_TLS_CA_STORE: "system" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: Record<string, unknown>[] = [];
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    let buffered = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      for (const line of parts) {
        try {
          lines.push(JSON.parse(line));
        } catch {
          lines.push({ event: "non_json", text: line });
        }
      }
    }
  };
  const collected = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const waitForLine = async (event: string) => {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const found = lines.find((line) => line.event === event);
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`index.ts never logged ${event}: ${JSON.stringify(lines)}`);
  };
  return { child, lines, waitForLine, exited: collected.then(() => child.status) };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

Deno.test("a misconfigured function exits 1 naming every missing variable, never a value", async () => {
  const running = runIndex({ OPENAI_API_KEY: "sk-should-not-leak", TURN_STORE: "postgres" });
  const status = await running.exited;
  assert.equal(status.code, 1);
  const text = JSON.stringify(running.lines);
  for (const name of ["TWILIO_AUTH_TOKEN", "PUBLIC_URL", "SUPABASE_DB_URL"]) {
    assert.match(text, new RegExp(name));
  }
  assert.ok(!text.includes("sk-should-not-leak"));
});

const databaseUrl = testDatabaseUrl();
if (databaseUrl) {
  Deno.test("served by plain Deno on PORT, a SIGTERM mid-reply drains: waits for the quiet moment, forced at the bound, stores every turn and hands the call off", async () => {
    const realtime = startRealtimeStub("sk-index-test");
    const port = freePort();
    const publicUrl = `http://127.0.0.1:${port}/functions/v1/twilio-voice`;
    const running = runIndex({
      PORT: String(port),
      PUBLIC_URL: publicUrl,
      TURN_STORE: "postgres",
      SUPABASE_DB_URL: databaseUrl,
      TWILIO_AUTH_TOKEN: "index-test-token",
      OPENAI_API_KEY: "sk-index-test",
      OPENAI_REALTIME_URL: realtime.url,
    });
    try {
      assert.equal((await running.waitForLine("server.listening")).port, port);
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = "CA" + crypto.randomUUID().replaceAll("-", "");
      const answer = await signedPost(publicUrl, "index-test-token", [["CallSid", callSid], [
        "To",
        tenant.phoneNumber,
      ]]);
      const twiml = await answer.text();
      const parameters = Object.fromEntries(
        [...twiml.matchAll(/<Parameter name="([^"]+)" value="([^"]+)"\/>/g)].map((
          [, name, value],
        ) => [name, value]),
      );
      const twilio = await connectTwilioStream(
        `ws://127.0.0.1:${port}/functions/v1/twilio-voice`,
        "index-test-token",
      );
      twilio.start(callSid, parameters);
      await running.waitForLine("model.ready");
      realtime.send({
        type: "conversation.item.input_audio_transcription.completed",
        item_id: "item_u1",
        transcript: "Hello?",
      });
      realtime.send({
        type: "response.output_audio_transcript.done",
        item_id: "item_a1",
        transcript: "Hi, how can I help?",
      });
      realtime.send({
        type: "response.output_audio.delta",
        response_id: "r1",
        item_id: "item_a1",
        delta: btoa("\xff".repeat(160)),
      });
      await twilio.waitFor(
        () => twilio.received.some((frame) => frame.event === "media"),
        "the assistant's audio",
      );

      running.child.kill("SIGTERM");
      const status = await running.exited;
      assert.equal(status.code, 0, JSON.stringify(running.lines));
      await twilio.closed;
      assert.equal(realtime.closed.length, 1, "the model session did not outlive the worker");
      const turns = await withAdmin((sql) => storedTurns(sql, callSid));
      assert.deepEqual(turns.map((turn) => [turn.seq, turn.role, turn.text]), [
        [0, "user", "Hello?"],
        [1, "assistant", "Hi, how can I help?"],
      ]);
      const [row] = await withAdmin((sql) =>
        sql`select status, end_reason from public.calls where call_sid = ${callSid}`
      );
      // The reply's audio was still queued at Twilio (this client echoes no mark): the drain waited
      // for a quiet moment that never came, then handed off anyway; the next stream's model
      // finishes the reply.
      assert.deepEqual({ ...row }, { status: "handed_off", end_reason: "handoff:drain:reply" });
      assert.ok(running.lines.some((line) => line.event === "call.drain_forced"), "forced at the bound");
      const drained = running.lines.find((line) => line.event === "worker.drained");
      assert.ok(drained, "the drain is logged with its duration");
      assert.equal(drained.turn_store_pending, 0);
      assert.ok(Number(drained.drain_ms) >= DRAIN_QUIET_WAIT_MS, "the quiet moment was waited for");
      assert.ok(Number(drained.drain_ms) < 30_000, "within the drain bound (DRAIN_BOUND_MS)");
    } finally {
      try {
        running.child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await running.exited;
      await realtime.close();
    }
  });
}
