import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createLogger } from "./log.ts";
import type { StoreBackend, TurnRow } from "./store.ts";
import { StoreError } from "./store_errors.ts";
import { createPostgresBackend } from "./store_postgres.ts";
import { TurnStore, type TurnStoreOptions } from "./turn_store.ts";
import { turn } from "./testing/store_conformance.ts";
import { startTcpProxy } from "./testing/tcp_proxy.ts";
import {
  newCallSid,
  requireTestDatabase,
  seedCall,
  type SeededTenant,
  seedTenant,
  storedTurns,
  testDatabaseUrl,
  withAdmin,
} from "./testing/test_database.ts";
import { overriding } from "./testing/store_overrides.ts";
import { toolCall } from "./testing/tool_store_conformance.ts";

interface LogLine {
  level: string;
  event: string;
  [field: string]: unknown;
}

// postgres.js under Deno can raise an uncaught "write UNKNOWN" when it writes to a socket the proxy
// or the server has just reset. The function logs it and carries on (index.ts); so do these tests.
globalThis.addEventListener("error", (event) => {
  if (/write (UNKNOWN|EPIPE|ECONNRESET)/.test(String(event.error?.message ?? event.message))) {
    event.preventDefault();
  }
});

function capturingLogger() {
  const lines: LogLine[] = [];
  const logger = createLogger({ sink: (_level, line) => lines.push(JSON.parse(line)) });
  return { logger, lines, events: (event: string) => lines.filter((line) => line.event === event) };
}

async function seededCall(): Promise<{ tenant: SeededTenant; callSid: string }> {
  return await withAdmin(async (sql) => {
    const tenant = await seedTenant(sql);
    return { tenant, callSid: await seedCall(sql, tenant) };
  });
}

/** The real postgres backend, with scripted failures in front of it. */
function flaky(backend: StoreBackend, failures: StoreError[]): StoreBackend & { calls: number } {
  const wrapped = overriding(backend, {
    upsertTurns(rows: TurnRow[]) {
      wrapped.calls++;
      const failure = failures.shift();
      return failure ? Promise.reject(failure) : backend.upsertTurns(rows);
    },
  }) as StoreBackend & { calls: number };
  wrapped.calls = 0;
  return wrapped;
}

const transient = () => new StoreError("connection reset", { code: "CONNECTION_CLOSED", permanent: false });

/** A conversation: user/assistant turns, every third assistant turn later flagged interrupted. */
function conversation(
  tenant: SeededTenant,
  callSid: string,
  count: number,
): { versions: TurnRow[]; latest: TurnRow[] } {
  const versions: TurnRow[] = [];
  const latest: TurnRow[] = [];
  for (let seq = 0; seq < count; seq++) {
    const first = turn(tenant, callSid, `item_${seq}`, seq);
    versions.push(first);
    if (first.role === "assistant" && seq % 3 === 0) {
      const cut = { ...first, text: `${first.text} (cut)`, interrupted: true };
      versions.push(cut);
      latest.push(cut);
    } else {
      latest.push(first);
    }
  }
  return { versions, latest };
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
}

async function assertStoredExactlyOnce(callSid: string, expected: TurnRow[]): Promise<void> {
  const stored = await withAdmin((sql) => storedTurns(sql, callSid));
  assertEquals(
    stored.map((row) => [row.item_id, row.text, row.interrupted]),
    expected.map((row) => [row.itemId, row.text, row.interrupted]),
  );
}

async function withStore(
  backend: StoreBackend,
  options: TurnStoreOptions,
  use: (store: TurnStore) => Promise<void>,
): Promise<void> {
  const store = new TurnStore(backend, { logger: capturingLogger().logger, ...options });
  try {
    await use(store);
  } finally {
    await store.stop();
    await backend.close();
  }
}

if (requireTestDatabase("turn store")) {
  const url = testDatabaseUrl()!;

  Deno.test("turn store: stores every recorded turn, the latest version of each", async () => {
    const { tenant, callSid } = await seededCall();
    const { versions, latest } = conversation(tenant, callSid, 60);
    const { logger } = capturingLogger();
    await withStore(createPostgresBackend(url), { logger }, async (store) => {
      const started = performance.now();
      versions.forEach((version) => store.record(version));
      const recordMs = performance.now() - started;
      // record() only queues: nothing is written until the writer runs.
      assertEquals(store.pending, latest.length);
      const result = await store.flush(5_000);
      assertEquals([result.stored, result.pending, result.dropped], [latest.length, 0, 0]);
      assert(recordMs < 50, `recording ${versions.length} turns took ${recordMs.toFixed(2)} ms`);
    });
    await assertStoredExactlyOnce(callSid, latest);
  });

  Deno.test("turn store: a turn updated while its first version is being written ends up updated", async () => {
    const { tenant, callSid } = await seededCall();
    const reply = turn(tenant, callSid, "item_reply", 1);
    await withStore(createPostgresBackend(url), { lingerMs: 0 }, async (store) => {
      store.record(reply);
      const firstFlush = store.flush(5_000);
      await new Promise((resolve) => setTimeout(resolve, 1));
      store.record({ ...reply, text: "Sure, one", interrupted: true });
      await firstFlush;
      assertEquals((await store.flush(5_000)).pending, 0);
    });
    await assertStoredExactlyOnce(callSid, [{ ...reply, text: "Sure, one", interrupted: true }]);
  });

  Deno.test("turn store: retries a transient failure with growing jittered delays", async () => {
    const { tenant, callSid } = await seededCall();
    const backend = flaky(createPostgresBackend(url), [transient(), transient(), transient()]);
    const { logger, events } = capturingLogger();
    const options = { logger, baseDelayMs: 40, random: () => 0.5 };
    await withStore(backend, options, async (store) => {
      store.record(turn(tenant, callSid, "item_a", 0));
      const started = performance.now();
      const result = await store.flush(5_000);
      const elapsed = performance.now() - started;
      assertEquals([result.pending, result.dropped, backend.calls], [0, 0, 4]);
      assertEquals(events("turn_store.write_failed").map((line) => line.attempt), [1, 2, 3]);
      // Delays of 3/4 of 40, 80, 160 ms with this jitter: 210 ms in all, before the 4th try.
      assert(elapsed >= 200, `retried after ${elapsed.toFixed(0)} ms`);
    });
    await assertStoredExactlyOnce(callSid, [turn(tenant, callSid, "item_a", 0)]);
  });

  Deno.test("turn store: gives up on a turn after its attempts and says so", async () => {
    const { tenant, callSid } = await seededCall();
    const backend = flaky(createPostgresBackend(url), Array.from({ length: 10 }, transient));
    const { logger, events } = capturingLogger();
    await withStore(backend, { logger, baseDelayMs: 1, maxAttempts: 3 }, async (store) => {
      store.record(turn(tenant, callSid, "item_a", 0));
      const result = await store.flush(5_000);
      assertEquals([result.stored, result.pending, result.dropped, backend.calls], [0, 0, 1, 3]);
      const [dropped] = events("turn_store.turn_dropped");
      assertEquals([dropped.call_sid, dropped.item_id, dropped.reason], [
        callSid,
        "item_a",
        "out_of_attempts",
      ]);
      assert(!("text" in dropped), "a dropped turn's transcript is not logged");
    });
  });

  Deno.test("turn store: a row the database refuses is dropped alone; its batch is stored", async () => {
    const { tenant, callSid } = await seededCall();
    const good = [0, 1, 2, 3].map((seq) => turn(tenant, callSid, `item_${seq}`, seq));
    const orphan = turn(tenant, newCallSid(), "item_orphan", 0);
    const { logger, events } = capturingLogger();
    await withStore(createPostgresBackend(url), { logger }, async (store) => {
      [good[0], good[1], orphan, good[2], good[3]].forEach((row) => store.record(row));
      const result = await store.flush(5_000);
      assertEquals([result.stored, result.pending, result.dropped], [4, 0, 1]);
      assertEquals(events("turn_store.turn_dropped").map((line) => [line.item_id, line.code]), [[
        "item_orphan",
        "23503",
      ]]);
    });
    await assertStoredExactlyOnce(callSid, good);
  });

  Deno.test("turn store: finish finalizes the call row with the time the call ended", async () => {
    const { tenant, callSid } = await seededCall();
    const backend = createPostgresBackend(url);
    await withStore(backend, {}, async (store) => {
      store.record(turn(tenant, callSid, "item_a", 0));
      const endedAt = new Date(Date.now() - 60_000);
      const usage = { input_tokens: 10, output_tokens: 20 };
      assertEquals(
        await store.finish({ callSid, status: "completed", endReason: "stop", usage, endedAt }),
        true,
      );
      assertEquals((await store.flush(1_000)).pending, 0);
      const call = await backend.getCall(callSid);
      assertEquals([call?.status, call?.endReason, call?.usage], ["completed", "stop", usage]);
      const [row] = await withAdmin((sql) =>
        sql<{ ended_at: Date }[]>`select ended_at from public.calls where call_sid = ${callSid}`
      );
      assertEquals(row.ended_at.getTime(), endedAt.getTime());
      assertEquals(
        await store.finish({ callSid: newCallSid(), status: "failed", endReason: "x", usage: {} }),
        false,
      );
    });
  });

  Deno.test("turn store: flush returns at its deadline with what is still pending", async () => {
    const { tenant, callSid } = await seededCall();
    let release!: () => void;
    const released = new Promise<void>((resolve) => release = resolve);
    const real = createPostgresBackend(url);
    const stalled = overriding(real, {
      async upsertTurns(rows) {
        await released;
        await real.upsertTurns(rows);
      },
    });
    await withStore(stalled, {}, async (store) => {
      [0, 1, 2].forEach((seq) => store.record(turn(tenant, callSid, `item_${seq}`, seq)));
      const result = await store.flush(100);
      assertEquals(result.pending, 3);
      assert(result.elapsedMs >= 95 && result.elapsedMs < 1_000, `flush took ${result.elapsedMs} ms`);
      release();
      assertEquals((await store.flush(5_000)).pending, 0);
    });
  });

  Deno.test("turn store: never throws into the caller", async () => {
    const real = createPostgresBackend(url);
    const broken = overriding(real, {
      upsertTurns() {
        throw new Error("bug in a backend");
      },
    });
    const { logger, events } = capturingLogger();
    const { tenant, callSid } = await seededCall();
    await withStore(broken, { logger, baseDelayMs: 1, maxAttempts: 2 }, async (store) => {
      store.record(null as unknown as TurnRow);
      store.record({ callSid } as unknown as TurnRow);
      store.record(turn(tenant, callSid, "item_a", 0));
      const result = await store.flush(2_000);
      assertEquals([result.pending, result.dropped], [0, 1]);
      assertEquals(events("turn_store.turn_refused").length, 2);
    });
  });

  Deno.test("turn store: the database connection dies mid-call and comes back: every turn stored exactly once", async () => {
    const { tenant, callSid } = await seededCall();
    const { versions, latest } = conversation(tenant, callSid, 40);
    const proxy = startTcpProxy(Number(new URL(url).port));
    const proxied = new URL(url);
    proxied.port = String(proxy.port);
    const { logger, events } = capturingLogger();
    // A write caught on a connection the proxy reset may never be answered (postgres.js under
    // Deno): the backend replaces its pool after queryTimeoutMs, and the store retries.
    const options = { logger, baseDelayMs: 20, maxDelayMs: 200, lingerMs: 5, attemptTimeoutMs: 2_000 };
    try {
      const backend = createPostgresBackend(proxied.toString(), { queryTimeoutMs: 1_000 });
      await withStore(backend, options, async (store) => {
        for (const [index, version] of versions.entries()) {
          store.record(version);
          if (index === Math.floor(versions.length / 3)) proxy.down();
          if (index === Math.floor((2 * versions.length) / 3)) {
            // Back up only once the store has felt the outage, so the test cannot pass unknowingly.
            await waitUntil(() => events("turn_store.write_failed").length > 0, 10_000);
            proxy.up();
          }
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        const result = await store.flush(20_000);
        assertEquals([result.pending, result.dropped], [0, 0]);
      });
    } finally {
      await proxy.close();
    }
    assert(
      events("turn_store.write_failed").length > 0,
      "the outage was never noticed: the test proved nothing",
    );
    await assertStoredExactlyOnce(callSid, latest);
  });

  Deno.test("turn store: the server kills the session mid-write (pg_terminate_backend): every turn stored exactly once", async () => {
    const { tenant, callSid } = await seededCall();
    const { versions, latest } = conversation(tenant, callSid, 40);
    const applicationName = `turn-store-test-${crypto.randomUUID()}`;
    const { logger, events } = capturingLogger();
    const options = { logger, baseDelayMs: 20, maxDelayMs: 200, lingerMs: 0, batchSize: 3 };
    await withAdmin(async (admin) => {
      await withStore(createPostgresBackend(url, { applicationName }), options, async (store) => {
        for (const [index, version] of versions.entries()) {
          store.record(version);
          if (index % 10 === 5) {
            await admin`select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${applicationName}`;
          }
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        const result = await store.flush(10_000);
        assertEquals([result.pending, result.dropped], [0, 0]);
      });
    });
    assert(events("turn_store.write_failed").length > 0, "no write was cut: the test proved nothing");
    await assertStoredExactlyOnce(callSid, latest);
  });

  Deno.test("turn store: beforeunload mid-call: every turn so far is stored before the worker exits", async () => {
    const { tenant, callSid } = await seededCall();
    const turns = 50;
    const flushBoundMs = 2_000;
    const worker = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./testing/beforeunload_worker.ts", import.meta.url).pathname],
      cwd: new URL(".", import.meta.url).pathname,
      env: {
        TEST_DATABASE_URL: url,
        CALL_SID: callSid,
        TENANT_ID: tenant.tenantId,
        TURNS: String(turns),
        FLUSH_BOUND_MS: String(flushBoundMs),
      },
      stdout: "piped",
      stderr: "piped",
    });
    const output = await worker.output();
    const stderr = new TextDecoder().decode(output.stderr);
    assertEquals(output.code, 0, stderr);
    const result = JSON.parse(new TextDecoder().decode(output.stdout).trim());
    assertEquals(result.pending, 0);
    assert(result.elapsedMs < flushBoundMs, `flush took ${result.elapsedMs} ms`);
    const { latest } = conversation(tenant, callSid, turns);
    await assertStoredExactlyOnce(callSid, latest);
  });
}

// ---- tool calls ----

if (testDatabaseUrl()) {
  const url = testDatabaseUrl()!;
  Deno.test("turn store: tool calls survive a transient failure, are stored once, and flush with the call", async () => {
    const { tenant, callSid } = await seededCall();
    const real = createPostgresBackend(url);
    let failures = 2;
    const backend = overriding(real, {
      upsertToolCalls: (rows) => failures-- > 0 ? Promise.reject(transient()) : real.upsertToolCalls(rows),
    });
    await withStore(backend, { baseDelayMs: 5, random: () => 0 }, async (store) => {
      store.recordToolCall(toolCall(tenant, callSid, 3, "call_b"));
      store.recordToolCall(toolCall(tenant, callSid, 1, "call_a"));
      store.recordToolCall(toolCall(tenant, callSid, 1, "call_a"));
      store.finish({ callSid, status: "completed", endReason: "agent hung up", usage: {} });
      const flushed = await store.flush(5_000);
      assertEquals(flushed.pending, 0);
      const rows = await real.loadToolCalls(callSid);
      assertEquals(rows.map((row) => [row.seq, row.callId]), [[1, "call_a"], [3, "call_b"]]);
    });
  });

  Deno.test("turn store: a tool call the database refuses is dropped alone", async () => {
    const { tenant, callSid } = await seededCall();
    const { logger, events } = capturingLogger();
    const backend = createPostgresBackend(url);
    const store = new TurnStore(backend, { logger });
    try {
      store.recordToolCall({ ...toolCall(tenant, callSid, 1, "call_bad"), output: "x".repeat(9000) });
      store.recordToolCall(toolCall(tenant, callSid, 2, "call_good"));
      await store.flush(5_000);
      assertEquals((await backend.loadToolCalls(callSid)).map((row) => row.callId), ["call_good"]);
      assertEquals(events("turn_store.tool_call_dropped").map((line) => line.call_id), ["call_bad"]);
    } finally {
      await store.stop();
      await backend.close();
    }
  });
}
