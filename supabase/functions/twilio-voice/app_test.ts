// The function's HTTP surface and one call's wiring, in process: the app served on a loopback
// port, real Postgres behind it (TEST_DATABASE_URL), a scripted Realtime peer, and a Twilio
// stream client that signs its upgrade. The state machine's cases live in bridge_test.ts.

import assert from "node:assert/strict";
import { AFTER_STREAM_QUERY, type App, createApp, turnStoreWriters } from "./app.ts";
import { type Config, loadConfig } from "./config.ts";
import { type CrashResumeOptions, createCrashResumer } from "./crash_resume.ts";
import { RESUME_PROMPT } from "./handoff.ts";
import { createLogger } from "./log.ts";
import type { StoreBackend } from "./store.ts";
import { createPostgresBackend } from "./store_postgres.ts";
import { computeSignature } from "./twilio_signature.ts";
import { TurnStore } from "./turn_store.ts";
import { toolRunner } from "./tool_runner.ts";
import { createSqlToolPool } from "./tool_sql.ts";
import { type RealtimeStub, startRealtimeStub } from "./testing/realtime_stub.ts";
import {
  requireTestDatabase,
  seedCall,
  type SeededTenant,
  seedTenant,
  storedTurns,
  testDatabaseUrl,
  withAdmin,
} from "./testing/test_database.ts";
import { overriding } from "./testing/store_overrides.ts";
import { createSqlTools, seedOrder, startToolServer } from "./testing/tool_fixtures.ts";
import { seedTool } from "./testing/tool_store_conformance.ts";
import { connectTwilioStream, signedPost, type TwilioStreamClient } from "./testing/twilio_stream_client.ts";

const AUTH_TOKEN = "twilio-auth-token-for-tests";
const API_KEY = "sk-test-realtime";
const audio = (ms: number, fill = 0xff) => btoa(String.fromCharCode(...new Uint8Array(ms * 8).fill(fill)));

interface Harness {
  app: App;
  config: Config;
  realtime: RealtimeStub;
  backend: StoreBackend;
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

/** The real backend, with the stream's tenant lookup failing (the webhook's, the first, works). */
function failingAgentLookup(backend: StoreBackend): StoreBackend {
  let lookups = 0;
  return overriding(backend, {
    findNumberOwner: (phoneNumber) => {
      if (++lookups > 1) return Promise.reject(new Error("connection reset"));
      return backend.findNumberOwner(phoneNumber);
    },
  });
}

function startHarness(
  options: {
    apiKey?: string;
    failAgentLookup?: boolean;
    wallClockLimitS?: number;
    preStartDeadlineMs?: number;
    maxUnprovenStreams?: number;
    /** Wraps the real backend (a scripted failure in front of the database). */
    store?: (backend: StoreBackend) => StoreBackend;
    heartbeatIntervalMs?: number;
    unixNow?: () => number;
    /** Crash resume with the test's own lease timings (crash_resume.ts). */
    crashResume?: CrashResumeOptions;
  } = {},
): Harness {
  const realtime = startRealtimeStub(API_KEY);
  const logs: Record<string, unknown>[] = [];
  const log = createLogger({
    sink: (_level, line) => logs.push(JSON.parse(line)),
    secrets: [AUTH_TOKEN, API_KEY],
  });
  const realBackend = createPostgresBackend(testDatabaseUrl()!);
  const wrapped = options.store ? options.store(realBackend) : realBackend;
  const backend = options.failAgentLookup ? failingAgentLookup(wrapped) : wrapped;
  const turnStore = new TurnStore(backend, { logger: log });
  // Tools run as the function runs them: signed with the tenant's key, SQL over the database URL.
  const sqlTools = createSqlToolPool(testDatabaseUrl()!);
  const runTool = toolRunner({
    signingKey: (tenantId) => backend.toolSigningKey(tenantId),
    sql: sqlTools.execute,
    privateHostsAllowed: true, // the test's tool server listens on 127.0.0.1
  });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const config = loadConfig((name) =>
    ({
      TWILIO_AUTH_TOKEN: AUTH_TOKEN,
      OPENAI_API_KEY: options.apiKey ?? API_KEY,
      PUBLIC_URL: `http://127.0.0.1:${port}/functions/v1/twilio-voice`,
      OPENAI_REALTIME_URL: realtime.url,
      TURN_STORE: "postgres",
      SUPABASE_DB_URL: testDatabaseUrl(),
      WALL_CLOCK_LIMIT_S: options.wallClockLimitS !== undefined ? String(options.wallClockLimitS) : undefined,
    })[name]
  );
  const app = createApp({
    config,
    store: backend,
    log,
    openWriter: turnStoreWriters(turnStore),
    setupTimeoutMs: 3_000,
    preStartDeadlineMs: options.preStartDeadlineMs,
    maxUnprovenStreams: options.maxUnprovenStreams,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    unixNow: options.unixNow,
    runTool,
    turnStoreCounts: () => ({ pending: turnStore.pending, dropped: turnStore.dropped }),
    resumeCrashed: options.crashResume ? createCrashResumer(backend, options.crashResume) : undefined,
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    (request) => app.handle(request),
  );
  return {
    app,
    config,
    realtime,
    backend,
    logs,
    close: async () => {
      await app.shutdown("test over");
      await turnStore.stop();
      await server.shutdown();
      await realtime.close();
      await backend.close();
      await sqlTools.close();
    },
  };
}

// Frames on different sockets have no order between them: a test that needs "the function has
// handled everything sent so far on this side" sends a frame whose effect it can see.
let barriers = 0;

async function twilioBarrier(harness: Harness, twilio: TwilioStreamClient): Promise<void> {
  const payload = audio(20, 0x10 + (++barriers % 0x60));
  twilio.media(payload);
  await harness.realtime.waitFor(
    () => harness.realtime.received.some((event) => event.audio === payload),
    "the function to handle Twilio's frames",
  );
}

async function modelBarrier(harness: Harness): Promise<void> {
  const itemId = `barrier_${++barriers}`;
  harness.realtime.send({
    type: "conversation.item.input_audio_transcription.failed",
    item_id: itemId,
    content_index: 0,
    error: { type: "transcription_error", message: "barrier" },
  });
  await harness.realtime.waitFor(
    () => harness.logs.some((line) => line.item_id === itemId),
    "the function to handle the model's events",
  );
}

function newCallSid(): string {
  return "CA" + crypto.randomUUID().replaceAll("-", "");
}

async function answerCall(harness: Harness, tenant: SeededTenant, callSid: string) {
  const response = await signedPost(harness.config.publicUrl, AUTH_TOKEN, [
    ["CallSid", callSid],
    ["From", "+15550009999"],
    ["To", tenant.phoneNumber],
    ["CallStatus", "ringing"],
  ]);
  const twiml = await response.text();
  assert.equal(response.status, 200, twiml);
  const streamUrl = /<Stream url="([^"]+)"/.exec(twiml)?.[1];
  const parameters = Object.fromEntries(
    [...twiml.matchAll(/<Parameter name="([^"]+)" value="([^"]+)"\/>/g)].map((
      [, name, value],
    ) => [name, value]),
  );
  return { twiml, streamUrl: streamUrl!, parameters };
}

/** A seeded tenant's number called, answered, and its stream opened with a valid signature. */
async function connectedCall(harness: Harness) {
  const tenant = await withAdmin((sql) => seedTenant(sql));
  const callSid = newCallSid();
  const { streamUrl, parameters } = await answerCall(harness, tenant, callSid);
  const twilio = await connectTwilioStream(streamUrl, AUTH_TOKEN);
  return { callSid, parameters, twilio };
}

async function callRow(callSid: string) {
  return await withAdmin(async (sql) => {
    const [row] = await sql<
      {
        status: string;
        end_reason: string | null;
        usage: Record<string, number>;
        metrics: { turns: unknown[] };
      }[]
    >`select status, end_reason, usage, metrics from public.calls where call_sid = ${callSid}`;
    return row ? { ...row } : undefined;
  });
}

Deno.test("requests outside the function's path are not found", async () => {
  const harness = startHarness();
  try {
    const base = harness.config.publicUrl.replace("/functions/v1/twilio-voice", "");
    assert.equal(await fetch(`${base}/other`).then(async (r) => (await r.body?.cancel(), r.status)), 404);
    const health = await fetch(`${base}/twilio-voice`);
    assert.deepEqual(await health.json(), { name: "twilio-voice", status: "ok" });
  } finally {
    await harness.close();
  }
});

Deno.test("the webhook refuses unsigned (400) and forged (403) requests without touching the database", async () => {
  const harness = startHarness();
  try {
    const body = new URLSearchParams({ CallSid: newCallSid(), To: "+15550001111" });
    const unsigned = await fetch(harness.config.publicUrl, { method: "POST", body });
    assert.equal(unsigned.status, 400);
    await unsigned.body?.cancel();
    const forged = await fetch(harness.config.publicUrl, {
      method: "POST",
      headers: {
        "x-twilio-signature": await computeSignature("not-the-token", harness.config.publicUrl, [...body]),
      },
      body,
    });
    assert.equal(forged.status, 403);
    await forged.body?.cancel();
    assert.ok(!JSON.stringify(harness.logs).includes("+15550001111"), "the body is never logged");
  } finally {
    await harness.close();
  }
});

Deno.test("a chunked body past the cap is refused (413) over the socket before any signature check", async () => {
  const harness = startHarness();
  try {
    // No Content-Length (chunked) and a signature that is present but wrong: the cap must apply
    // while reading, since the signature can only be checked once the body is in.
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= 400 * 1024 * 1024) return controller.close();
        pulled += 64 * 1024;
        controller.enqueue(new Uint8Array(64 * 1024).fill(0x61));
      },
    });
    // The server answers 413 and closes while the client is still sending, so the client may see
    // either that answer or a broken pipe; both mean the rest of the body was never taken in.
    const status = await fetch(harness.config.publicUrl, {
      method: "POST",
      headers: { "x-twilio-signature": "x" },
      body,
    }).then(async (response) => (await response.body?.cancel(), response.status), () => "closed");
    assert.ok(status === 413 || status === "closed", `answered ${status}`);
    assert.ok(pulled < 8 * 1024 * 1024, `the client was let to send ${pulled} bytes`);
    assert.ok(!harness.logs.some((line) => JSON.stringify(line).includes("bad_signature")));
    const health = await fetch(harness.config.publicUrl);
    assert.equal(health.status, 200, "the worker still serves");
    await health.body?.cancel();
  } finally {
    await harness.close();
  }
});

Deno.test("sockets that never send start are closed at the deadline, and past the cap upgrades get 503", async () => {
  const harness = startHarness({ preStartDeadlineMs: 400, maxUnprovenStreams: 3 });
  try {
    const idle = await Promise.all(
      [1, 2, 3].map(() => connectTwilioStream(harness.config.streamUrl, AUTH_TOKEN)),
    );
    const opened = performance.now();
    await assert.rejects(connectTwilioStream(harness.config.streamUrl, AUTH_TOKEN), /503/);
    const codes = await Promise.all(idle.map((client) => client.closed));
    assert.deepEqual(codes, [1008, 1008, 1008]);
    assert.ok(performance.now() - opened < 2_000, "closed by the deadline");
    // Once those are gone, a new stream is let in again.
    const next = await connectTwilioStream(harness.config.streamUrl, AUTH_TOKEN);
    next.close();
    await next.closed;
  } finally {
    await harness.close();
  }
});

Deno.test("an oversized frame or a flood of frames before start closes the socket", async () => {
  const harness = startHarness();
  try {
    const oversized = await connectTwilioStream(harness.config.streamUrl, AUTH_TOKEN);
    // The server closes with 1008 while frames may still be in flight to it, so the client can
    // see the close handshake cut short (1006); either way it is the server that ended it, at once.
    const refused = [1006, 1008];
    oversized.media("A".repeat(60 * 1024));
    assert.ok(refused.includes(await oversized.closed));
    const flood = await connectTwilioStream(harness.config.streamUrl, AUTH_TOKEN);
    for (let i = 0; i < 20; i++) flood.media("/w==".repeat(54));
    assert.ok(refused.includes(await flood.closed));
    assert.ok(harness.logs.filter((line) => line.event === "stream.refused").length >= 2);
    assert.equal(harness.realtime.connections, 0, "no model session for a socket that proved nothing");
  } finally {
    await harness.close();
  }
});

if (requireTestDatabase("app")) {
  Deno.test("an unknown number hears that it is not in service", async () => {
    const harness = startHarness();
    try {
      const response = await signedPost(harness.config.publicUrl, AUTH_TOKEN, [
        ["CallSid", newCallSid()],
        ["To", "+19999999999"],
      ]);
      const twiml = await response.text();
      assert.match(twiml, /<Say>[^<]*not in service[^<]*<\/Say><Hangup\/>/);
    } finally {
      await harness.close();
    }
  });

  Deno.test("a known number gets a stream with a per-call token, and a call row", async () => {
    const harness = startHarness();
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = newCallSid();
      const { twiml, streamUrl, parameters } = await answerCall(harness, tenant, callSid);
      assert.equal(streamUrl, harness.config.streamUrl);
      assert.ok(
        twiml.includes(`<Connect action="${harness.config.publicUrl}?${AFTER_STREAM_QUERY}" method="POST">`),
      );
      assert.equal(parameters.tenant_id, tenant.tenantId);
      assert.equal(parameters.to_number, tenant.phoneNumber);
      assert.match(parameters.stream_token, /^[0-9a-f]{64}$/);
      assert.equal((await callRow(callSid))?.status, "in_progress");
    } finally {
      await harness.close();
    }
  });

  Deno.test("a retried webhook before the stream gets a stream again; one for a finished call gets a hang-up", async () => {
    const harness = startHarness();
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = newCallSid();
      await answerCall(harness, tenant, callSid);
      const retried = await answerCall(harness, tenant, callSid);
      assert.match(retried.parameters.stream_token, /^[0-9a-f]{64}$/, "Twilio's retry still connects");
      await withAdmin((sql) =>
        sql`update public.calls set status = 'completed', ended_at = now() where call_sid = ${callSid}`
      );
      const replayed = await answerCall(harness, tenant, callSid);
      assert.equal(replayed.streamUrl, undefined);
      assert.match(replayed.twiml, /<Hangup\/>/);
      assert.equal((await callRow(callSid))?.status, "completed", "the finished call is left as it was");
    } finally {
      await harness.close();
    }
  });

  Deno.test("an unsigned or forged stream upgrade is refused", async () => {
    const harness = startHarness();
    try {
      await assert.rejects(connectTwilioStream(harness.config.streamUrl, null), /403/);
      await assert.rejects(connectTwilioStream(harness.config.streamUrl, "not-the-token"), /403/);
    } finally {
      await harness.close();
    }
  });

  Deno.test("a stream whose start carries a forged token is closed before any model session", async () => {
    const harness = startHarness();
    try {
      const { callSid, parameters, twilio } = await connectedCall(harness);
      twilio.start(callSid, { ...parameters, tenant_id: crypto.randomUUID() });
      await twilio.closed;
      assert.equal(harness.realtime.connections, 0);
      assert.equal((await callRow(callSid))?.status, "in_progress", "a forger cannot end someone's call");
    } finally {
      await harness.close();
    }
  });

  Deno.test("a call: greeting, caller turn, barge-in, hang-up; turns and call row stored", async () => {
    const harness = startHarness();
    const { realtime } = harness;
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql, { greeting: "Thanks for calling Acme." }));
      const callSid = newCallSid();
      const { streamUrl, parameters } = await answerCall(harness, tenant, callSid);
      const twilio = await connectTwilioStream(streamUrl, AUTH_TOKEN);
      twilio.start(callSid, parameters);
      twilio.media(audio(20, 1)); // before the model is ready: buffered, not lost

      const types = () => realtime.received.map((event) => event.type);
      await realtime.waitFor(() => types().includes("response.create"), "the greeting's response.create");
      assert.deepEqual(types(), [
        "session.update",
        "conversation.item.create",
        "response.create",
        "input_audio_buffer.append",
      ]);

      // The greeting plays and is heard in full.
      realtime.send({ type: "response.created", response: { id: "resp_1" } });
      realtime.send({
        type: "response.output_item.added",
        item: { id: "item_a1", type: "message", role: "assistant" },
      });
      realtime.send({
        type: "response.output_audio.delta",
        response_id: "resp_1",
        item_id: "item_a1",
        delta: audio(100),
      });
      realtime.send({
        type: "response.output_audio_transcript.done",
        item_id: "item_a1",
        transcript: "Thanks for calling Acme.",
      });
      realtime.send({
        type: "response.done",
        response: {
          id: "resp_1",
          status: "completed",
          output: [],
          usage: { input_tokens: 10, output_tokens: 20 },
        },
      });
      await twilio.waitFor(
        () => twilio.received.find((frame) => frame.event === "mark"),
        "the greeting's mark",
      );
      twilio.markPlayed("item_a1:100");
      await twilioBarrier(harness, twilio);

      // The caller speaks; the reply is cut off after 100 of its 300 ms.
      realtime.send({ type: "input_audio_buffer.speech_started", item_id: "item_u1", audio_start_ms: 0 });
      twilio.media(audio(20, 2));
      realtime.send({ type: "input_audio_buffer.speech_stopped", item_id: "item_u1", audio_end_ms: 600 });
      realtime.send({
        type: "input_audio_buffer.committed",
        item_id: "item_u1",
        previous_item_id: "item_a1",
      });
      const mediaBefore = twilio.received.filter((f) => f.event === "media").length;
      realtime.send({ type: "response.created", response: { id: "resp_2" } });
      for (let i = 0; i < 3; i++) {
        realtime.send({
          type: "response.output_audio.delta",
          response_id: "resp_2",
          item_id: "item_a2",
          delta: audio(100),
        });
      }
      await twilio.waitFor(
        () => twilio.received.filter((f) => f.event === "media").length >= mediaBefore + 3,
        "3 deltas",
      );
      const echoedAt = performance.now();
      twilio.markPlayed("item_a2:100");
      await twilioBarrier(harness, twilio);
      realtime.send({ type: "input_audio_buffer.speech_started", item_id: "item_u2", audio_start_ms: 900 });
      await twilio.waitFor(() => twilio.received.some((frame) => frame.event === "clear"), "clear");
      const truncate = await realtime.waitFor(
        () => realtime.received.find((event) => event.type === "conversation.item.truncate"),
        "truncate",
      );
      // Heard: the 100 ms the echo confirmed, and what has played since at real time.
      const sinceEcho = performance.now() - echoedAt;
      const { audio_end_ms: audioEndMs, ...rest } = truncate as { audio_end_ms: number };
      assert.deepEqual(rest, { type: "conversation.item.truncate", item_id: "item_a2", content_index: 0 });
      assert.ok(audioEndMs >= 100 && audioEndMs <= 100 + Math.ceil(sinceEcho), `${audioEndMs} ms heard`);
      realtime.send({
        type: "response.output_audio_transcript.done",
        item_id: "item_a2",
        transcript: "Our hours are nine to five, and",
      });
      realtime.send({
        type: "response.done",
        response: {
          id: "resp_2",
          status: "cancelled",
          output: [],
          usage: { input_tokens: 5, output_tokens: 7 },
        },
      });
      // The first caller turn's transcript arrives after the reply to it.
      realtime.send({
        type: "conversation.item.input_audio_transcription.completed",
        item_id: "item_u1",
        content_index: 0,
        transcript: "When are you open?",
      });
      realtime.send({
        type: "conversation.item.input_audio_transcription.completed",
        item_id: "item_u2",
        content_index: 0,
        transcript: "Thanks, bye.",
      });
      await modelBarrier(harness);
      twilio.stop();

      await twilio.closed;
      await realtime.waitFor(() => realtime.closed.length === 1, "the model socket to close");
      const origin = new URL(harness.config.publicUrl).origin;
      const exposition = await (await fetch(`${origin}/metrics`)).text();
      assert.match(exposition, /^twilio_voice_reply_latency_seconds_count 1$/m);
      await harness.app.shutdown("flush");
      const row = await callRow(callSid);
      assert.equal(row?.status, "completed");
      assert.equal(row?.end_reason, "twilio_stop");
      assert.equal(row?.usage.input_tokens, 15);
      assert.equal(row?.usage.output_tokens, 27);
      // The caller's one answered turn is measured once, for the row and for the worker's histogram.
      assert.equal(row?.metrics.turns.length, 1);
      const turns = await withAdmin((sql) => storedTurns(sql, callSid));
      assert.deepEqual(
        turns.map((t) => [t.seq, t.role, t.item_id, t.text, t.interrupted, t.tenant_id === tenant.tenantId]),
        [
          [0, "assistant", "item_a1", "Thanks for calling Acme.", false, true],
          [1, "user", "item_u1", "When are you open?", false, true],
          [2, "assistant", "item_a2", "Our hours are nine to five, and", true, true],
          [3, "user", "item_u2", "Thanks, bye.", false, true],
        ],
      );
      const appends = realtime.received.filter((event) => event.type === "input_audio_buffer.append");
      assert.deepEqual(
        appends.map((event) => event.audio).slice(0, 1),
        [audio(20, 1)],
        "buffered audio first",
      );
      assert.ok(appends.some((event) => event.audio === audio(20, 2)));
      const logText = JSON.stringify(harness.logs);
      for (const secret of [AUTH_TOKEN, API_KEY, parameters.stream_token, audio(20, 1)]) {
        assert.ok(!logText.includes(secret), "no secret or audio in the log");
      }
    } finally {
      await harness.close();
    }
  });

  Deno.test("a refused API key ends the stream, and the connect action apologizes", async () => {
    const harness = startHarness({ apiKey: "sk-wrong" });
    try {
      const { callSid, parameters, twilio } = await connectedCall(harness);
      twilio.start(callSid, parameters);
      await twilio.closed;
      const row = await callRow(callSid);
      assert.equal(row?.status, "failed");
      // The service says why before it closes (error invalid_api_key, then close 3000).
      assert.equal(row?.end_reason, "model_error:invalid_api_key");

      const actionUrl = `${harness.config.publicUrl}?${AFTER_STREAM_QUERY}`;
      const action = await signedPost(actionUrl, AUTH_TOKEN, [["CallSid", callSid], [
        "CallStatus",
        "in-progress",
      ]]);
      assert.match(await action.text(), /<Say>Sorry[^<]*<\/Say><Hangup\/>/);
      const unsigned = await fetch(actionUrl, {
        method: "POST",
        body: new URLSearchParams({ CallSid: callSid }),
      });
      assert.equal(unsigned.status, 400);
      await unsigned.body?.cancel();
    } finally {
      await harness.close();
    }
  });

  Deno.test("an outbound call: tenant from From, outbound greeting first, signed context in the instructions", async () => {
    const harness = startHarness();
    const { realtime } = harness;
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql, { greeting: "Thanks for calling Acme." }));
      await withAdmin((sql) =>
        sql`update public.tenant_agents set outbound_greeting = 'Hi, Acme calling about your order.'
            where tenant_id = ${tenant.tenantId}`
      );
      const callSid = newCallSid();
      const context = btoa(JSON.stringify({ order: "A-17" })).replaceAll("+", "-").replaceAll("/", "_")
        .replace(/=+$/, "");
      const response = await signedPost(`${harness.config.publicUrl}?context=${context}`, AUTH_TOKEN, [
        ["CallSid", callSid],
        ["From", tenant.phoneNumber],
        ["To", "+15550009999"],
        ["Direction", "outbound-api"],
        ["AnsweredBy", "human"],
      ]);
      const twiml = await response.text();
      const streamUrl = /<Stream url="([^"]+)"/.exec(twiml)![1];
      const parameters = Object.fromEntries(
        [...twiml.matchAll(/<Parameter name="([^"]+)" value="([^"]+)"\/>/g)].map((
          [, name, value],
        ) => [name, value]),
      );
      const twilio = await connectTwilioStream(streamUrl, AUTH_TOKEN);
      twilio.start(callSid, parameters);
      await realtime.waitFor(
        () => realtime.received.some((event) => event.type === "response.create"),
        "the greeting's response.create",
      );
      const update = realtime.received.find((event) => event.type === "session.update")!;
      const instructions = String((update.session as Record<string, unknown>).instructions);
      assert.match(instructions, /outbound call/);
      assert.match(instructions, /\{"order":"A-17"\}/);
      const greeting = JSON.stringify(
        realtime.received.find((event) => event.type === "conversation.item.create"),
      );
      assert.match(greeting, /Hi, Acme calling about your order\./);
      assert.doesNotMatch(greeting, /Thanks for calling Acme/);
      twilio.close();
    } finally {
      await harness.close();
    }
  });

  Deno.test("a caller who hangs up without stop still closes the model session", async () => {
    const harness = startHarness();
    try {
      const { callSid, parameters, twilio } = await connectedCall(harness);
      twilio.start(callSid, parameters);
      await harness.realtime.waitFor(() => harness.realtime.received.length > 0, "the session.update");
      twilio.close();
      await harness.realtime.waitFor(() => harness.realtime.closed.length === 1, "the model socket to close");
      await harness.app.shutdown("flush");
      await harness.realtime.waitFor(() => harness.app.activeCalls === 0, "the session to finish");
      assert.equal((await callRow(callSid))?.end_reason, "caller_disconnected");
    } finally {
      await harness.close();
    }
  });
}

if (testDatabaseUrl()) {
  Deno.test("a worker shutting down mid-reply hands the call off, and the connect action continues it on a new stream", async () => {
    const harness = startHarness();
    const { realtime } = harness;
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql, { greeting: "Thanks for calling Acme." }));
      const callSid = newCallSid();
      const first = await answerCall(harness, tenant, callSid);
      const twilio = await connectTwilioStream(first.streamUrl, AUTH_TOKEN);
      twilio.start(callSid, first.parameters);
      await realtime.waitFor(
        () => realtime.received.some((e) => e.type === "response.create"),
        "the greeting",
      );
      realtime.send({ type: "input_audio_buffer.speech_started", item_id: "item_u1" });
      realtime.send({
        type: "conversation.item.input_audio_transcription.completed",
        item_id: "item_u1",
        transcript: "Hi",
      });
      realtime.send({ type: "response.created", response: { id: "r1" } });
      realtime.send({
        type: "response.output_audio_transcript.delta",
        item_id: "item_a1",
        delta: "Hello! Our hours",
      });
      realtime.send({
        type: "response.output_audio.delta",
        response_id: "r1",
        item_id: "item_a1",
        delta: audio(20),
      });
      await twilio.waitFor(
        () => twilio.received.some((frame) => frame.event === "media"),
        "the assistant's audio",
      );

      // beforeunload in the middle of the reply.
      await harness.app.shutdown("EarlyDrop");
      assert.equal(await twilio.closed, 1000);
      assert.equal(realtime.closed.length, 1, "the first model session is closed");
      const [handedOff] = await withAdmin((sql) =>
        sql`select status, end_reason, ended_at, handed_off_at, handoff_count from public.calls
            where call_sid = ${callSid}`
      );
      assert.equal(handedOff.status, "handed_off");
      assert.equal(handedOff.end_reason, "handoff:beforeunload:reply");
      assert.equal(handedOff.ended_at, null, "the call has not ended");
      assert.ok(handedOff.handed_off_at instanceof Date);
      const storedBefore = await withAdmin((sql) => storedTurns(sql, callSid));
      assert.deepEqual(storedBefore.map((t) => [t.seq, t.role, t.text, t.interrupted]), [
        [0, "user", "Hi", false],
        [1, "assistant", "Hello! Our hours", true],
      ]);

      const action = await signedPost(`${harness.config.publicUrl}?${AFTER_STREAM_QUERY}`, AUTH_TOKEN, [
        ["CallSid", callSid],
        ["From", "+15550009999"],
        ["To", tenant.phoneNumber],
        ["CallStatus", "in-progress"],
      ]);
      const twiml = await action.text();
      const next = {
        streamUrl: /<Stream url="([^"]+)"/.exec(twiml)?.[1],
        parameters: Object.fromEntries(
          [...twiml.matchAll(/<Parameter name="([^"]+)" value="([^"]+)"\/>/g)].map((
            [, name, value],
          ) => [name, value]),
        ),
      };
      assert.ok(
        twiml.includes(`<Connect action="${harness.config.publicUrl}?${AFTER_STREAM_QUERY}" method="POST">`),
      );
      assert.equal(next.streamUrl, harness.config.streamUrl);
      assert.equal(next.parameters.handoff, "1");
      assert.equal(next.parameters.resume, "reply");
      assert.equal(next.parameters.tenant_id, tenant.tenantId);
      assert.match(next.parameters.stream_token, /^[0-9a-f]{64}$/);
      assert.notEqual(
        next.parameters.stream_token,
        first.parameters.stream_token,
        "a fresh token per stream",
      );

      const seenBefore = realtime.received.length;
      const resumed = await connectTwilioStream(next.streamUrl!, AUTH_TOKEN);
      resumed.start(callSid, next.parameters);
      await realtime.waitFor(
        () => realtime.received.slice(seenBefore).some((e) => e.type === "response.create"),
        "the resumed session's reply",
      );
      assert.equal(realtime.connections, 2);
      const second = realtime.received.slice(seenBefore);
      const items = second.filter((e) => e.type === "conversation.item.create").map((e) => {
        const item = e.item as { role: string; content: { type: string; text: string }[] };
        return [item.role, item.content[0].type, item.content[0].text];
      });
      assert.deepEqual(items, [
        ["user", "input_text", "Hi"],
        ["assistant", "output_text", "Hello! Our hours"],
        ["system", "input_text", RESUME_PROMPT],
      ]);
      assert.equal(second[0].type, "session.update");
      assert.ok(
        !JSON.stringify(second).includes("Thanks for calling Acme"),
        "no greeting after the first stream",
      );
      const [resumedRow] = await withAdmin((sql) =>
        sql`select status, end_reason, handoff_count from public.calls where call_sid = ${callSid}`
      );
      assert.deepEqual({ ...resumedRow }, { status: "in_progress", end_reason: null, handoff_count: 1 });

      // The conversation carries on, numbered after the restored turns.
      realtime.send({ type: "input_audio_buffer.speech_started", item_id: "item_u2" });
      realtime.send({
        type: "conversation.item.input_audio_transcription.completed",
        item_id: "item_u2",
        transcript: "When do you close?",
      });
      await modelBarrier(harness);
      resumed.stop();
      await resumed.closed;
      await harness.app.shutdown("flush");
      const turns = await withAdmin((sql) => storedTurns(sql, callSid));
      assert.deepEqual(turns.map((t) => [t.seq, t.role, t.text]), [
        [0, "user", "Hi"],
        [1, "assistant", "Hello! Our hours"],
        [2, "user", "When do you close?"],
      ]);
      const [row] = await withAdmin((sql) =>
        sql`select status, end_reason, handoff_count, ended_at from public.calls where call_sid = ${callSid}`
      );
      assert.deepEqual([row.status, row.end_reason, row.handoff_count], ["completed", "twilio_stop", 1]);
      assert.ok(row.ended_at instanceof Date);
    } finally {
      await harness.close();
    }
  });

  Deno.test("at its wall clock a quiet call moves to a new stream, again and again, then ends completed", async () => {
    // WALL_CLOCK_LIMIT_S=2 on plain Deno: each stream looks for a quiet moment from 1 s.
    const harness = startHarness({ wallClockLimitS: 2 });
    const { realtime } = harness;
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql, { greeting: "Hello from Acme." }));
      const callSid = newCallSid();
      let { streamUrl, parameters } = await answerCall(harness, tenant, callSid);
      for (let stream = 1; stream <= 3; stream++) {
        const seenBefore = realtime.received.length;
        const opened = performance.now();
        const twilio = await connectTwilioStream(streamUrl, AUTH_TOKEN);
        twilio.start(callSid, parameters);
        await realtime.waitFor(() => realtime.received.length > seenBefore, "the session.update");
        if (stream === 3) {
          twilio.stop();
          await twilio.closed;
          break;
        }
        if (stream === 1) {
          // Answer the greeting so the first stream is not quiet at once; play it in full.
          await realtime.waitFor(
            () => realtime.received.some((e) => e.type === "response.create"),
            "greeting",
          );
          realtime.send({ type: "response.created", response: { id: "r1" } });
          realtime.send({
            type: "response.output_audio.delta",
            response_id: "r1",
            item_id: "item_g",
            delta: audio(40),
          });
          realtime.send({
            type: "response.output_audio_transcript.done",
            item_id: "item_g",
            transcript: "Hello from Acme.",
          });
          realtime.send({ type: "response.done", response: { id: "r1", status: "completed", output: [] } });
          const mark = await twilio.waitFor(
            () => twilio.received.find((frame) => frame.event === "mark"),
            "the greeting's mark",
          ) as { mark: { name: string } };
          await new Promise((resolve) => setTimeout(resolve, 1_100));
          assert.equal(harness.app.activeCalls, 1, "audio still queued at Twilio: no handoff");
          twilio.markPlayed(mark.mark.name);
        }
        await twilio.closed;
        const lived = performance.now() - opened;
        assert.ok(
          lived >= 1_000 && lived < 1_500,
          `stream ${stream} handed off after ${Math.round(lived)} ms`,
        );
        const [row] = await withAdmin((sql) =>
          sql`select status, end_reason from public.calls where call_sid = ${callSid}`
        );
        assert.deepEqual({ ...row }, { status: "handed_off", end_reason: "handoff:quiet:listen" });
        const action = await signedPost(`${harness.config.publicUrl}?${AFTER_STREAM_QUERY}`, AUTH_TOKEN, [
          ["CallSid", callSid],
          ["To", tenant.phoneNumber],
        ]);
        const twiml = await action.text();
        streamUrl = /<Stream url="([^"]+)"/.exec(twiml)![1];
        parameters = Object.fromEntries(
          [...twiml.matchAll(/<Parameter name="([^"]+)" value="([^"]+)"\/>/g)].map((
            [, name, value],
          ) => [name, value]),
        );
        assert.deepEqual([parameters.handoff, parameters.resume], [String(stream), "listen"]);
      }
      await harness.app.shutdown("flush");
      const sessions = realtime.received.filter((e) => e.type === "session.update").length;
      assert.equal(sessions, 3);
      const creates = realtime.received.filter((e) => e.type === "conversation.item.create");
      assert.equal(creates.length, 3, "the greeting prompt once, then the greeting turn restored twice");
      for (const create of creates.slice(1)) {
        const item = create.item as { role: string; content: { type: string; text: string }[] };
        assert.deepEqual([item.role, item.content[0].type, item.content[0].text], [
          "assistant",
          "output_text",
          "Hello from Acme.",
        ]);
      }
      const [row] = await withAdmin((sql) =>
        sql`select status, handoff_count from public.calls where call_sid = ${callSid}`
      );
      assert.deepEqual({ ...row }, { status: "completed", handoff_count: 2 });
      assert.deepEqual((await withAdmin((sql) => storedTurns(sql, callSid))).map((t) => [t.seq, t.text]), [
        [0, "Hello from Acme."],
      ]);
    } finally {
      await harness.close();
    }
  });
}

if (testDatabaseUrl()) {
  Deno.test("a call whose tenant cannot be read at stream start is finalized as failed and apologized for", async () => {
    const harness = startHarness({ failAgentLookup: true });
    try {
      const { callSid, parameters, twilio } = await connectedCall(harness);
      twilio.start(callSid, parameters);
      await twilio.closed;
      assert.equal(harness.realtime.connections, 0);
      assert.deepEqual(await callRow(callSid).then((row) => [row?.status, row?.end_reason]), [
        "failed",
        "agent_lookup_failed",
      ]);
    } finally {
      await harness.close();
    }
  });
}

if (testDatabaseUrl()) {
  const twimlParameters = (twiml: string) =>
    Object.fromEntries(
      [...twiml.matchAll(/<Parameter name="([^"]+)" value="([^"]+)"\/>/g)].map((
        [, name, value],
      ) => [name, value]),
    );
  const connectAction = async (harness: Harness, callSid: string, to: string) => {
    const action = await signedPost(`${harness.config.publicUrl}?${AFTER_STREAM_QUERY}`, AUTH_TOKEN, [
      ["CallSid", callSid],
      ["To", to],
      ["CallStatus", "in-progress"],
    ]);
    return await action.text();
  };

  Deno.test("a first stream's token replayed after the stream claimed the call is refused, and so is the webhook", async () => {
    const harness = startHarness();
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = newCallSid();
      const { streamUrl, parameters } = await answerCall(harness, tenant, callSid);
      const twilio = await connectTwilioStream(streamUrl, AUTH_TOKEN);
      twilio.start(callSid, parameters);
      await harness.realtime.waitFor(() => harness.realtime.connections === 1, "the model session");
      const replay = await connectTwilioStream(streamUrl, AUTH_TOKEN);
      replay.start(callSid, parameters);
      assert.equal(
        await replay.closed,
        1008,
        "a replayed token is a policy violation, not a call that ended",
      );
      assert.equal(harness.realtime.connections, 1, "no model session for the replay");
      assert.ok(harness.logs.some((line) => line.event === "stream.claim_refused"));
      const replayed = await answerCall(harness, tenant, callSid);
      assert.match(replayed.twiml, /<Hangup\/>/);
      assert.equal(replayed.streamUrl, undefined);
      assert.equal((await callRow(callSid))?.status, "in_progress", "the live call is left as it is");
      twilio.stop();
      await twilio.closed;
      await harness.app.shutdown("flush");
      assert.deepEqual(await callRow(callSid).then((row) => [row?.status, row?.end_reason]), [
        "completed",
        "twilio_stop",
      ]);
    } finally {
      await harness.close();
    }
  });

  Deno.test("a stream token past its minute is refused before the call is claimed", async () => {
    let skew = 0;
    const harness = startHarness({ unixNow: () => Math.floor(Date.now() / 1000) + skew });
    try {
      const { callSid, parameters, twilio } = await connectedCall(harness);
      skew = 61;
      twilio.start(callSid, parameters);
      await twilio.closed;
      assert.equal(harness.realtime.connections, 0);
      assert.ok(harness.logs.some((line) => line.reason === "stream_token_expired"));
      const [row] = await withAdmin((sql) =>
        sql`select status, stream_seen_at from public.calls where call_sid = ${callSid}`
      );
      assert.deepEqual([row.status, row.stream_seen_at], ["in_progress", null], "the row untouched");
    } finally {
      await harness.close();
    }
  });

  Deno.test("a resume token works once; a second use and a replayed connect action during the live call get nothing", async () => {
    const harness = startHarness();
    const { realtime } = harness;
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = newCallSid();
      const first = await answerCall(harness, tenant, callSid);
      const twilio = await connectTwilioStream(first.streamUrl, AUTH_TOKEN);
      twilio.start(callSid, first.parameters);
      await realtime.waitFor(() => realtime.received.length > 0, "the session.update");
      realtime.send({ type: "input_audio_buffer.speech_started", item_id: "item_u1" });
      realtime.send({
        type: "conversation.item.input_audio_transcription.completed",
        item_id: "item_u1",
        transcript: "My account number is 1234",
      });
      await modelBarrier(harness);
      await harness.app.shutdown("EarlyDrop");
      await twilio.closed;

      const twiml = await connectAction(harness, callSid, tenant.phoneNumber);
      const retried = twimlParameters(await connectAction(harness, callSid, tenant.phoneNumber));
      const next = twimlParameters(twiml);
      assert.equal(next.handoff, "1");
      assert.equal(retried.handoff, "1", "Twilio's retry for the same state: the same handoff");

      const resumed = await connectTwilioStream(harness.config.streamUrl, AUTH_TOKEN);
      resumed.start(callSid, next);
      await realtime.waitFor(() => realtime.connections === 2, "the resumed session");
      const restores = () =>
        realtime.received.filter((e) => JSON.stringify(e).includes("My account number is 1234")).length;
      await realtime.waitFor(() => restores() === 1, "the transcript restored once");

      for (const parameters of [next, retried]) {
        const replay = await connectTwilioStream(harness.config.streamUrl, AUTH_TOKEN);
        replay.start(callSid, parameters);
        await replay.closed;
      }
      assert.equal(realtime.connections, 2, "no model session for a second use");
      assert.equal(restores(), 1, "the transcript was restored into no other session");

      const during = await connectAction(harness, callSid, tenant.phoneNumber);
      assert.doesNotMatch(during, /<Stream/, "no resume token while the call is live");
      resumed.stop();
      await resumed.closed;
      await harness.app.shutdown("flush");
      const [row] = await withAdmin((sql) =>
        sql`select status, handoff_count from public.calls where call_sid = ${callSid}`
      );
      assert.deepEqual({ ...row }, { status: "completed", handoff_count: 1 }, "one handoff, counted once");
    } finally {
      await harness.close();
    }
  });

  Deno.test("a resume is refused when its claim cannot be checked; a first stream goes on unchecked", async () => {
    const harness = startHarness({
      store: (backend) =>
        overriding(backend, { claimCallStream: () => Promise.reject(new Error("connection reset")) }),
    });
    try {
      const { callSid, parameters, twilio } = await connectedCall(harness);
      twilio.start(callSid, parameters);
      await harness.realtime.waitFor(() => harness.realtime.connections === 1, "the model session");
      assert.ok(harness.logs.some((line) => line.event === "stream.claim_unchecked"));
      await harness.app.shutdown("EarlyDrop");
      await twilio.closed;
      const next = twimlParameters(await connectAction(harness, callSid, parameters.to_number));
      const resumed = await connectTwilioStream(harness.config.streamUrl, AUTH_TOKEN);
      resumed.start(callSid, next);
      await resumed.closed;
      assert.equal(harness.realtime.connections, 1, "no session for an unchecked resume");
      assert.equal((await callRow(callSid))?.status, "handed_off", "left for the next stream or the sweep");
    } finally {
      await harness.close();
    }
  });

  Deno.test("a running stream beats its heartbeat, and a webhook sweeps stale calls in the background", async () => {
    const harness = startHarness({ heartbeatIntervalMs: 50 });
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const stale = await withAdmin(async (sql) => {
        const callSid = newCallSid();
        await sql`insert into public.calls (call_sid, tenant_id, started_at)
                  values (${callSid}, ${tenant.tenantId}, now() - interval '10 minutes')`;
        return callSid;
      });
      const callSid = newCallSid();
      const { streamUrl, parameters } = await answerCall(harness, tenant, callSid);
      // Not awaited by the webhook: it lands shortly after the answer.
      for (let i = 0; i < 50 && (await callRow(stale))?.status !== "failed"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual(await callRow(stale).then((row) => [row?.status, row?.end_reason]), [
        "failed",
        "stale: the stream never opened",
      ]);
      const twilio = await connectTwilioStream(streamUrl, AUTH_TOKEN);
      twilio.start(callSid, parameters);
      await harness.realtime.waitFor(() => harness.realtime.connections === 1, "the model session");
      await withAdmin((sql) =>
        sql`update public.calls set stream_seen_at = '2026-01-01T00:00:00Z' where call_sid = ${callSid}`
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      const [row] = await withAdmin((sql) =>
        sql`select stream_seen_at from public.calls where call_sid = ${callSid}`
      );
      assert.ok(Date.now() - row.stream_seen_at.getTime() < 60_000, "refreshed by the heartbeat");
      twilio.stop();
      await twilio.closed;
    } finally {
      await harness.close();
    }
  });
}

// ---- the agent acts: tools, transfer, hang-up ----

const TRANSFER_NUMBER = "+15550007777";

/** A tenant with an HTTP lookup, an SQL order tool under RLS, a slow HTTP tool, and the two
 * built-ins; one order of its own and one of another tenant's. */
async function toolTenant(toolServerUrl: string) {
  return await withAdmin(async (sql) => {
    await createSqlTools(sql);
    const tenant = await seedTenant(sql);
    const other = await seedTenant(sql);
    const ref = `R-${crypto.randomUUID().slice(0, 8)}`;
    await seedOrder(sql, tenant.tenantId, ref, "packed");
    await seedOrder(sql, other.tenantId, `${ref}-theirs`, "secret");
    await seedTool(sql, tenant, { name: "lookup", kind: "http", url: `${toolServerUrl}/lookup` });
    await seedTool(sql, tenant, { name: "orders", kind: "sql", sqlFunction: "tooltest.find_order" });
    await seedTool(sql, tenant, { name: "slow", kind: "http", url: `${toolServerUrl}/slow` });
    await sql`update public.tenant_tools set timeout_ms = 300 where tenant_id = ${tenant.tenantId} and name = 'slow'`;
    await seedTool(sql, tenant, { name: "transfer", kind: "transfer", transferTo: TRANSFER_NUMBER });
    await seedTool(sql, tenant, { name: "end_call", kind: "end_call" });
    return { tenant, other, ref };
  });
}

/** A model response holding these function calls (and, first, `audioMs` of speech), as the GA
 * server streams one. */
function modelCalls(
  realtime: RealtimeStub,
  responseId: string,
  calls: { callId: string; name: string; arguments?: Record<string, unknown> }[],
  { status = "completed", audioMs = 0 }: { status?: string; audioMs?: number } = {},
) {
  realtime.send({ type: "response.created", response: { id: responseId } });
  if (audioMs > 0) {
    const itemId = `item_${responseId}_said`;
    realtime.send({
      type: "response.output_item.added",
      item: { id: itemId, type: "message", role: "assistant" },
    });
    realtime.send({
      type: "response.output_audio.delta",
      response_id: responseId,
      item_id: itemId,
      delta: audio(audioMs),
    });
    realtime.send({
      type: "response.output_audio_transcript.done",
      item_id: itemId,
      transcript: "One moment.",
    });
  }
  const items = calls.map(({ callId, name, arguments: args }) => ({
    id: `item_${callId}`,
    type: "function_call",
    status: "completed",
    call_id: callId,
    name,
    arguments: JSON.stringify(args ?? {}),
  }));
  for (const item of items) {
    realtime.send({ type: "response.output_item.done", response_id: responseId, item });
  }
  realtime.send({ type: "response.done", response: { id: responseId, status, output: items, usage: {} } });
}

const outputsOf = (realtime: RealtimeStub) =>
  realtime.received.flatMap((event) => {
    const item = event.item as Record<string, unknown> | undefined;
    return event.type === "conversation.item.create" && item?.type === "function_call_output"
      ? [{ callId: String(item.call_id), output: JSON.parse(String(item.output)) }]
      : [];
  });
const responseCreates = (realtime: RealtimeStub) =>
  realtime.received.filter((event) => event.type === "response.create").length;

/** The call's tool calls as a tenant's user reads them through RLS (the API's role and claims). */
async function toolCallsSeenBy(tenantId: string, callSid: string) {
  return await withAdmin((sql) =>
    sql.begin(async (tx) => {
      await tx`set local role authenticated`;
      await tx`select set_config('request.jwt.claims', ${
        JSON.stringify({ role: "authenticated", tenant_id: tenantId })
      }, true)`;
      return [
        ...await tx<{ seq: number; call_id: string; name: string; status: string; output: string }[]>`
        select seq, call_id, name, status, output from public.call_tool_calls where call_sid = ${callSid}
        order by seq`,
      ];
    })
  );
}

if (testDatabaseUrl()) {
  Deno.test("the agent acts: HTTP and SQL tools, a timeout, a cancelled call, a barge-in, then a transfer that nobody answers comes back", async () => {
    const harness = startHarness();
    const { realtime } = harness;
    const toolServer = startToolServer(() => harness.backend.toolSigningKey(tenant.tenantId));
    const { tenant, other, ref } = await toolTenant(toolServer.url);
    try {
      const callSid = newCallSid();
      const answered = await answerCall(harness, tenant, callSid);
      const twilio = await connectTwilioStream(answered.streamUrl, AUTH_TOKEN);
      twilio.start(callSid, answered.parameters);
      const update = await realtime.waitFor(
        () => realtime.received.find((event) => event.type === "session.update"),
        "the session.update",
      );
      const session = update.session as { tools: { name: string }[]; tool_choice: string };
      assert.deepEqual(session.tools.map((tool) => tool.name), [
        "end_call",
        "lookup",
        "orders",
        "slow",
        "transfer",
      ]);
      assert.equal(session.tool_choice, "auto");
      await twilioBarrier(harness, twilio);

      // Three calls in one response: all answered, then exactly one response.create.
      const before = responseCreates(realtime);
      modelCalls(realtime, "resp_1", [
        { callId: "call_http", name: "lookup", arguments: { order: "A1" } },
        { callId: "call_sql", name: "orders", arguments: { ref } },
        { callId: "call_rls", name: "orders", arguments: { ref: `${ref}-theirs` } },
      ]);
      await realtime.waitFor(() => responseCreates(realtime) > before, "the response after the tools");
      assert.deepEqual(outputsOf(realtime).map((output) => output.callId).sort(), [
        "call_http",
        "call_rls",
        "call_sql",
      ]);
      const lastOutput = realtime.received.findLastIndex((event) =>
        event.type === "conversation.item.create"
      );
      const create = realtime.received.findLastIndex((event) => event.type === "response.create");
      assert.ok(create > lastOutput, "response.create only after every output");
      assert.equal(responseCreates(realtime), before + 1);
      const byCall = Object.fromEntries(outputsOf(realtime).map(({ callId, output }) => [callId, output]));
      assert.deepEqual(byCall.call_http, { order: "A1", status: "shipped" });
      assert.deepEqual(
        toolServer.requests.map((r) => [r.path, r.verified, r.body.call_sid, r.body.tenant_id]),
        [
          ["/lookup", true, callSid, tenant.tenantId],
        ],
      );
      assert.equal(toolServer.requests[0].body.from, "+15550009999");
      assert.deepEqual(byCall.call_sql.orders, [{ ref, status: "packed" }]);
      assert.deepEqual(byCall.call_rls.orders, [], "another tenant's order exists, and RLS hides it");
      realtime.send({ type: "response.created", response: { id: "resp_1b" } });
      realtime.send({ type: "response.done", response: { id: "resp_1b", status: "completed", output: [] } });

      // A function call in a cancelled response never runs.
      modelCalls(realtime, "resp_2", [{ callId: "call_cancelled", name: "lookup" }], { status: "cancelled" });
      await modelBarrier(harness);

      // A slow tool; the caller talks over the reply the server starts meanwhile; the tool times out.
      const beforeSlow = responseCreates(realtime);
      modelCalls(realtime, "resp_3", [{ callId: "call_slow", name: "slow" }]);
      realtime.send({ type: "input_audio_buffer.speech_started", item_id: "item_u1" });
      realtime.send({ type: "response.created", response: { id: "resp_4" } });
      realtime.send({
        type: "response.output_audio.delta",
        response_id: "resp_4",
        item_id: "item_a4",
        delta: audio(200),
      });
      await twilio.waitFor(
        () => twilio.received.some((frame) => frame.event === "media"),
        "the reply's audio",
      );
      realtime.send({ type: "input_audio_buffer.speech_started", item_id: "item_u2" });
      await twilio.waitFor(
        () => twilio.received.some((frame) => frame.event === "clear"),
        "the barge-in's clear",
      );
      await realtime.waitFor(
        () => outputsOf(realtime).find((output) => output.callId === "call_slow"),
        "the slow tool's timeout",
      );
      assert.match(
        outputsOf(realtime).find((output) => output.callId === "call_slow")!.output.error,
        /within 300 ms/,
      );
      assert.equal(responseCreates(realtime), beforeSlow, "no response.create while resp_4 is active");
      realtime.send({ type: "response.done", response: { id: "resp_4", status: "cancelled", output: [] } });
      await realtime.waitFor(() => responseCreates(realtime) === beforeSlow + 1, "the owed response");

      // The transfer: the line plays out, then the stream ends and the connect action dials.
      modelCalls(realtime, "resp_5", [{
        callId: "call_transfer",
        name: "transfer",
        arguments: { reason: "a person" },
      }], {
        audioMs: 100,
      });
      const mark = await twilio.waitFor(
        () =>
          twilio.received.find((frame) => frame.event === "mark" && JSON.stringify(frame).includes("resp_5")),
        "the transfer line's mark",
      );
      assert.equal(twilio.received.at(-1)?.event, "mark", "the stream stays open until the line has played");
      twilio.markPlayed((mark.mark as { name: string }).name);
      assert.equal(await twilio.closed, 1000);
      const action = await signedPost(`${harness.config.publicUrl}?${AFTER_STREAM_QUERY}`, AUTH_TOKEN, [
        ["CallSid", callSid],
        ["To", tenant.phoneNumber],
        ["CallStatus", "in-progress"],
      ]);
      assert.equal(
        await action.text(),
        '<?xml version="1.0" encoding="UTF-8"?><Response><Dial action="' +
          `${harness.config.publicUrl}?event=dial-status" method="POST" callerId="${tenant.phoneNumber}">` +
          `<Number>${TRANSFER_NUMBER}</Number></Dial></Response>`,
      );
      await harness.app.shutdown("flush");
      const [row] = await withAdmin((sql) =>
        sql`select status, end_reason, transfer_to, transfer_outcome from public.calls where call_sid = ${callSid}`
      );
      assert.deepEqual({ ...row }, {
        status: "completed",
        end_reason: "transferred",
        transfer_to: TRANSFER_NUMBER,
        transfer_outcome: null,
      });

      // Every call stored once, in conversation order, visible to its tenant only.
      const stored = await toolCallsSeenBy(tenant.tenantId, callSid);
      assert.deepEqual(stored.map((r) => [r.call_id, r.status]), [
        ["call_http", "ok"],
        ["call_sql", "ok"],
        ["call_rls", "ok"],
        ["call_slow", "timeout"],
        ["call_transfer", "ok"],
      ]);
      assert.ok(stored.every((r, i) => i === 0 || r.seq > stored[i - 1].seq));
      assert.deepEqual(await toolCallsSeenBy(other.tenantId, callSid), []);

      // Nobody answers: the dial's action brings the call back on a stream that resumes it.
      const dial = await signedPost(`${harness.config.publicUrl}?event=dial-status`, AUTH_TOKEN, [
        ["CallSid", callSid],
        ["To", tenant.phoneNumber],
        ["DialCallStatus", "no-answer"],
      ]);
      const back = await dial.text();
      const parameters = Object.fromEntries(
        [...back.matchAll(/<Parameter name="([^"]+)" value="([^"]+)"\/>/g)].map((
          [, name, value],
        ) => [name, value]),
      );
      assert.equal(parameters.resume, "transfer_unanswered");
      assert.equal(parameters.handoff, "1");
      const [outcome] = await withAdmin((sql) =>
        sql`select status, transfer_outcome from public.calls where call_sid = ${callSid}`
      );
      assert.deepEqual({ ...outcome }, { status: "handed_off", transfer_outcome: "no-answer" });

      const sessionsBefore = realtime.received.length;
      const again = await connectTwilioStream(harness.config.streamUrl, AUTH_TOKEN);
      again.start(callSid, parameters);
      await realtime.waitFor(
        () => realtime.received.slice(sessionsBefore).some((event) => event.type === "response.create"),
        "the agent speaking first on the new stream",
      );
      const restored = realtime.received.slice(sessionsBefore).flatMap((event) =>
        event.type === "conversation.item.create" ? [event.item as Record<string, unknown>] : []
      );
      const restoredCalls = restored.filter((item) => item.type === "function_call").map((item) =>
        item.call_id
      );
      assert.deepEqual(restoredCalls, ["call_http", "call_sql", "call_rls", "call_slow", "call_transfer"]);
      assert.equal(restored.filter((item) => item.type === "function_call_output").length, 5);
      assert.match(JSON.stringify(restored.at(-1)), /nobody answered the transfer/);
      again.stop();
      await again.closed;
      // A replayed dial callback brings nothing back: the stream claimed the call.
      const replay = await signedPost(`${harness.config.publicUrl}?event=dial-status`, AUTH_TOKEN, [
        ["CallSid", callSid],
        ["To", tenant.phoneNumber],
        ["DialCallStatus", "no-answer"],
      ]);
      assert.equal(
        await replay.text(),
        '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>',
      );
    } finally {
      await toolServer.close();
      await harness.close();
    }
  });

  Deno.test("end_call: the goodbye plays to the end, then the call ends as the agent hanging up", async () => {
    const harness = startHarness();
    const { realtime } = harness;
    const { tenant } = await toolTenant("http://127.0.0.1:9");
    try {
      const callSid = newCallSid();
      const answered = await answerCall(harness, tenant, callSid);
      const twilio = await connectTwilioStream(answered.streamUrl, AUTH_TOKEN);
      twilio.start(callSid, answered.parameters);
      await twilioBarrier(harness, twilio);
      modelCalls(realtime, "resp_bye", [{ callId: "call_bye", name: "end_call" }], { audioMs: 250 });
      await twilio.waitFor(
        () => twilio.received.some((frame) => JSON.stringify(frame).includes("item_resp_bye_said:250")),
        "the goodbye's last mark",
      );
      twilio.markPlayed("item_resp_bye_said:100");
      await twilioBarrier(harness, twilio);
      assert.equal(
        await Promise.race([twilio.closed, new Promise((r) => setTimeout(() => r("open"), 100))]),
        "open",
      );
      twilio.markPlayed("item_resp_bye_said:250");
      assert.equal(await twilio.closed, 1000);
      const action = await signedPost(`${harness.config.publicUrl}?${AFTER_STREAM_QUERY}`, AUTH_TOKEN, [
        ["CallSid", callSid],
        ["To", tenant.phoneNumber],
      ]);
      assert.equal(
        await action.text(),
        '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>',
      );
      await harness.app.shutdown("flush");
      const row = await callRow(callSid);
      assert.deepEqual([row?.status, row?.end_reason], ["completed", "agent hung up"]);
      const stored = await toolCallsSeenBy(tenant.tenantId, callSid);
      assert.deepEqual(stored.map((r) => [r.name, r.status]), [["end_call", "ok"]]);
      assert.equal(outputsOf(realtime).length, 1);
      assert.equal(responseCreates(realtime), 0, "the model is not asked to speak after its goodbye");
    } finally {
      await harness.close();
    }
  });

  Deno.test("a transfer someone answers ends with a hang-up and its outcome; the dial callback is signed", async () => {
    const harness = startHarness();
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = await withAdmin(async (sql) => {
        const callSid = await seedCall(sql, tenant);
        await sql`update public.calls set status = 'completed', end_reason = 'transferred',
                  transfer_to = ${TRANSFER_NUMBER}, stream_seen_at = now() where call_sid = ${callSid}`;
        return callSid;
      });
      const url = `${harness.config.publicUrl}?event=dial-status`;
      const form = [["CallSid", callSid], ["To", tenant.phoneNumber], ["DialCallStatus", "completed"]] as [
        string,
        string,
      ][];
      const forged = await signedPost(url, "not-the-auth-token", form);
      assert.equal(forged.status, 403);
      await forged.body?.cancel();
      const dial = await signedPost(url, AUTH_TOKEN, form);
      assert.equal(await dial.text(), '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>');
      const [row] = await withAdmin((sql) =>
        sql`select status, transfer_outcome from public.calls where call_sid = ${callSid}`
      );
      assert.deepEqual({ ...row }, { status: "completed", transfer_outcome: "answered" });
      // Twilio asking the connect action again after the outcome gets a hang-up, not a second dial.
      const action = await signedPost(`${harness.config.publicUrl}?${AFTER_STREAM_QUERY}`, AUTH_TOKEN, [
        ["CallSid", callSid],
        ["To", tenant.phoneNumber],
      ]);
      assert.equal(
        await action.text(),
        '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>',
      );
    } finally {
      await harness.close();
    }
  });
}

if (testDatabaseUrl()) {
  Deno.test("with no wall clock nothing is scheduled; a drain makes /readyz 503, refuses new streams and hands the call off", async () => {
    const harness = startHarness({ wallClockLimitS: 0 });
    const { realtime } = harness;
    const origin = new URL(harness.config.publicUrl).origin;
    const metricsText = async () => await (await fetch(`${origin}/metrics`)).text();
    try {
      const health = await fetch(`${origin}/healthz`);
      assert.deepEqual([health.status, await health.text()], [200, "ok\n"]);
      const ready = await fetch(`${origin}/readyz`);
      assert.deepEqual([ready.status, await ready.text()], [200, "ready\n"]);
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = newCallSid();
      const first = await answerCall(harness, tenant, callSid);
      const twilio = await connectTwilioStream(first.streamUrl, AUTH_TOKEN);
      twilio.start(callSid, first.parameters);
      await realtime.waitFor(
        () => harness.app.activeCalls === 1 && realtime.received.length > 0,
        "the session",
      );
      assert.ok(!harness.logs.some((line) => line.event === "call.handoff_planned"), "no handoff scheduled");
      assert.match(await metricsText(), /^twilio_voice_live_calls 1$/m);

      const drained = harness.app.drain();
      const draining = await fetch(`${origin}/readyz`);
      assert.deepEqual([draining.status, await draining.text()], [503, "draining\n"]);
      await assert.rejects(
        connectTwilioStream(first.streamUrl, AUTH_TOKEN),
        "a draining worker takes no stream",
      );
      await drained;
      assert.equal(await twilio.closed, 1000);
      await realtime.waitFor(() => harness.app.activeCalls === 0, "the session to finish");
      const row = await callRow(callSid);
      assert.equal(row?.status, "handed_off");
      assert.match(row?.end_reason ?? "", /^handoff:drain:(listen|reply)$/);
      const exposition = await metricsText();
      assert.match(exposition, /^twilio_voice_handoffs_total\{trigger="drain"\} 1$/m);
      assert.match(exposition, /^twilio_voice_draining 1$/m);
      assert.doesNotMatch(exposition, new RegExp(`${callSid}|${tenant.phoneNumber.replace("+", "\\+")}`));

      // The connect action (on a ready worker, behind the same URL) continues the call.
      const action = await signedPost(`${harness.config.publicUrl}?${AFTER_STREAM_QUERY}`, AUTH_TOKEN, [
        ["CallSid", callSid],
        ["From", "+15550009999"],
        ["To", tenant.phoneNumber],
        ["CallStatus", "in-progress"],
      ]);
      assert.match(await action.text(), /<Stream url=/);
    } finally {
      await harness.close();
    }
  });
}

if (testDatabaseUrl()) {
  Deno.test("a connect action while the call's worker lives is refused (a replay); once its lease lapses the call resumes, once", async () => {
    const harness = startHarness({ crashResume: { lapseMs: 1_000, waitMs: 600, pollMs: 100 } });
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = await withAdmin((sql) => seedCall(sql, tenant));
      const owner = crypto.randomUUID();
      await harness.backend.claimCallStream(callSid, tenant.tenantId, 0, owner);
      const connectAction = async () => {
        const response = await signedPost(`${harness.config.publicUrl}?${AFTER_STREAM_QUERY}`, AUTH_TOKEN, [
          ["CallSid", callSid],
          ["From", "+15550009999"],
          ["To", tenant.phoneNumber],
          ["CallStatus", "in-progress"],
        ]);
        assert.equal(response.status, 200);
        return await response.text();
      };
      const claimState = async () =>
        await withAdmin(async (sql) => {
          const [row] = await sql`
            select status, end_reason, handoff_count, stream_worker_id from public.calls
            where call_sid = ${callSid}`;
          return { ...row };
        });

      // The owner renewed its lease just now: the replay waits out the bound and gets the apology,
      // no stream; the row is as it was.
      const started = performance.now();
      const replayed = await connectAction();
      assert.ok(performance.now() - started < 3_000, "the wait is bounded");
      assert.doesNotMatch(replayed, /<Stream/);
      assert.match(replayed, /<Hangup\/>/);
      assert.deepEqual(await claimState(), {
        status: "in_progress",
        end_reason: null,
        handoff_count: 0,
        stream_worker_id: owner,
      });
      assert.ok(harness.logs.some((line) => line.event === "call.crash_resume_refused"));

      // The owner stops renewing (killed): past the lapse, one connect action resumes the call.
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const resumed = await connectAction();
      assert.match(resumed, /<Stream url=/);
      assert.equal((await claimState()).end_reason, "handoff:crash:reply");

      // Its stream claims the call on a live worker; a connect action replayed now is refused again.
      const rescuer = crypto.randomUUID();
      assert.ok(await harness.backend.claimCallStream(callSid, tenant.tenantId, 1, rescuer));
      await harness.backend.renewWorkerLease(rescuer);
      assert.doesNotMatch(await connectAction(), /<Stream/);
      assert.deepEqual(await claimState(), {
        status: "in_progress",
        end_reason: null,
        handoff_count: 1,
        stream_worker_id: rescuer,
      });
      assert.equal(harness.logs.filter((line) => line.event === "call.crash_resumed").length, 1);
    } finally {
      await harness.close();
    }
  });
}
