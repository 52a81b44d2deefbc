// One suite every StoreBackend must pass, against the real schema: store_postgres_test.ts runs it
// over direct SQL, store_rest_test.ts over supabase-js and the PostgREST contract server.

import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import type { CallRecord, StoreBackend, TurnRow } from "../store.ts";
import { StoreError } from "../store_errors.ts";
import { registerToolStoreConformance } from "./tool_store_conformance.ts";
import { registerCallStatusStoreConformance } from "./call_status_store_conformance.ts";
import {
  newCallSid,
  newPhoneNumber,
  requireTestDatabase,
  seedCall,
  type SeededTenant,
  seedTenant,
  storedTurns,
  withAdmin,
} from "./test_database.ts";

export interface OpenedBackend {
  backend: StoreBackend;
  /** Closes the backend and whatever the test opened for it (a contract server, ...). */
  close(): Promise<void>;
}

export function turn(
  tenant: SeededTenant,
  callSid: string,
  itemId: string,
  seq: number,
  overrides: Partial<TurnRow> = {},
): TurnRow {
  return {
    tenantId: tenant.tenantId,
    callSid,
    role: seq % 2 === 0 ? "user" : "assistant",
    text: `turn ${seq}`,
    itemId,
    seq,
    interrupted: false,
    ...overrides,
  };
}

async function expectPermanent(promise: Promise<unknown>, code?: string): Promise<void> {
  await rejects(promise, (error: unknown) => {
    assert(error instanceof StoreError, `expected a StoreError, got ${error}`);
    assert(error.permanent, `expected a permanent error, got ${error.code}: ${error.message}`);
    if (code) assertEquals(error.code, code);
    return true;
  });
}

export function registerStoreConformance(suite: string, open: () => Promise<OpenedBackend>): void {
  if (!requireTestDatabase(suite)) return;

  function backendTest(name: string, body: (backend: StoreBackend) => Promise<void>): void {
    Deno.test(`${suite}: ${name}`, async () => {
      const opened = await open();
      try {
        await body(opened.backend);
      } finally {
        await opened.close();
      }
    });
  }

  backendTest("finds the tenant that owns a number, with its agent settings", async (backend) => {
    const tenant = await withAdmin((sql) =>
      seedTenant(sql, {
        greeting: "Hi, Ada's bakery",
        voice: "marin",
        turnDetection: { type: "semantic_vad" },
      })
    );
    assertEquals(await backend.findNumberOwner(tenant.phoneNumber), {
      tenantId: tenant.tenantId,
      agent: {
        instructions: null,
        voice: "marin",
        greeting: "Hi, Ada's bakery",
        model: null,
        transcriptionModel: null,
        turnDetection: { type: "semantic_vad" },
      },
      tools: [],
    });
  });

  backendTest("answers agent null for a tenant without agent settings", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    assertEquals(await backend.findNumberOwner(tenant.phoneNumber), {
      tenantId: tenant.tenantId,
      agent: null,
      tools: [],
    });
  });

  backendTest("answers null for a number nobody owns", async (backend) => {
    assertEquals(await backend.findNumberOwner(newPhoneNumber()), null);
  });

  backendTest("starts a call once: a second start changes nothing", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = newCallSid();
    const start = { callSid, tenantId: tenant.tenantId, toNumber: tenant.phoneNumber };
    await backend.startCall({ ...start, fromNumber: "+15550001111" });
    await backend.startCall({ ...start, fromNumber: "+15550002222" });
    assertEquals(await backend.getCall(callSid), {
      callSid,
      tenantId: tenant.tenantId,
      status: "in_progress",
      endReason: null,
      handoffCount: 0,
      usage: {},
      streamClaimed: false,
      fromNumber: "+15550001111",
    });
    const rows = await withAdmin((sql) =>
      sql`select from_number, to_number from public.calls where call_sid = ${callSid}`
    );
    assertEquals([...rows], [{ from_number: "+15550001111", to_number: tenant.phoneNumber }]);
  });

  backendTest("answers null for a CallSid it has never seen", async (backend) => {
    assertEquals(await backend.getCall(newCallSid()), null);
  });

  backendTest("refuses a CallSid that is not Twilio's shape", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    await expectPermanent(
      backend.startCall({
        callSid: "MZ" + "0".repeat(32),
        tenantId: tenant.tenantId,
        fromNumber: null,
        toNumber: null,
      }),
      "23514",
    );
  });

  backendTest("upserts turns on (call_sid, item_id): the latest version wins", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    const userTurn = turn(tenant, callSid, "item_user", 0, { text: "Bonjour, « une baguette » ?" });
    const reply = turn(tenant, callSid, "item_reply", 1, { text: "Sure, one 'baguette'\n…" });
    await backend.upsertTurns([userTurn, reply]);
    await backend.upsertTurns([{ ...reply, text: "Sure, one", interrupted: true }]);
    await backend.upsertTurns([userTurn]);
    const stored = await withAdmin((sql) => storedTurns(sql, callSid));
    assertEquals(stored, [
      {
        item_id: "item_user",
        role: "user",
        text: "Bonjour, « une baguette » ?",
        seq: 0,
        interrupted: false,
        tenant_id: tenant.tenantId,
      },
      {
        item_id: "item_reply",
        role: "assistant",
        text: "Sure, one",
        seq: 1,
        interrupted: true,
        tenant_id: tenant.tenantId,
      },
    ]);
  });

  backendTest("keeps the last of two versions of one turn in the same batch", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    const reply = turn(tenant, callSid, "item_reply", 1);
    await backend.upsertTurns([reply, { ...reply, interrupted: true, text: "cut" }]);
    const stored = await withAdmin((sql) => storedTurns(sql, callSid));
    assertEquals(stored.map((row) => [row.text, row.interrupted]), [["cut", true]]);
  });

  backendTest("loads turns in conversation order, not arrival order", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    // The caller's transcript arrives after the assistant's reply to it.
    await backend.upsertTurns([turn(tenant, callSid, "item_b", 1)]);
    await backend.upsertTurns([turn(tenant, callSid, "item_c", 2), turn(tenant, callSid, "item_a", 0)]);
    const loaded = await backend.loadTurns(callSid);
    assertEquals(loaded.map((row) => row.itemId), ["item_a", "item_b", "item_c"]);
    assertEquals(loaded[0], turn(tenant, callSid, "item_a", 0));
    assertEquals(await backend.loadTurns(newCallSid()), []);
  });

  backendTest("writes nothing for an empty batch", async (backend) => {
    await backend.upsertTurns([]);
  });

  backendTest("refuses a turn of a call that has no row, as permanent", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    await expectPermanent(backend.upsertTurns([turn(tenant, newCallSid(), "item_x", 0)]), "23503");
  });

  backendTest("refuses a turn tagged with another tenant than its call's", async (backend) => {
    const [owner, other] = await withAdmin(async (sql) => [await seedTenant(sql), await seedTenant(sql)]);
    const callSid = await withAdmin((sql) => seedCall(sql, owner));
    await expectPermanent(backend.upsertTurns([turn(other, callSid, "item_x", 0)]), "23503");
    assertEquals(await withAdmin((sql) => storedTurns(sql, callSid)), []);
  });

  backendTest("finishes a call: ended_at, status, end_reason and usage", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    const endedAt = new Date(Date.now() - 5_000);
    const usage = { input_tokens: 1200, output_tokens: 340, total_tokens: 1540 };
    await backend.finishCall({ callSid, status: "completed", endReason: "caller_hung_up", usage, endedAt });
    assertEquals(await backend.getCall(callSid), {
      callSid,
      tenantId: tenant.tenantId,
      status: "completed",
      endReason: "caller_hung_up",
      handoffCount: 0,
      usage,
      streamClaimed: false,
    });
    const [row] = await withAdmin((sql) =>
      sql<{ ended_at: Date }[]>`select ended_at from public.calls where call_sid = ${callSid}`
    );
    assertEquals(row.ended_at.getTime(), endedAt.getTime());
  });

  backendTest("stamps ended_at itself when the caller gives no time", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    const before = Date.now();
    await backend.finishCall({ callSid, status: "failed", endReason: "model_refused_key", usage: {} });
    const [row] = await withAdmin((sql) =>
      sql<{ ended_at: Date }[]>`select ended_at from public.calls where call_sid = ${callSid}`
    );
    // Both clocks are this machine's; allow for the database's transaction start time.
    assert(Math.abs(row.ended_at.getTime() - before) < 5_000, `ended_at ${row.ended_at.toISOString()}`);
  });

  backendTest("refuses to finish a call that has no row, as permanent", async (backend) => {
    await expectPermanent(
      backend.finishCall({ callSid: newCallSid(), status: "completed", endReason: "x", usage: {} }),
      "NO_CALL_ROW",
    );
  });

  // ---- handoffs (long calls continue on a fresh worker) ----

  async function handoffTimes(callSid: string) {
    const [row] = await withAdmin((sql) =>
      sql<{ ended_at: Date | null; handed_off_at: Date | null }[]>`
        select ended_at, handed_off_at from public.calls where call_sid = ${callSid}`
    );
    return { endedAt: row.ended_at, handedOffAt: row.handed_off_at };
  }

  backendTest("a handoff stamps handed_off_at, not ended_at: the call goes on", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    const at = new Date(Date.now() - 2_000);
    const usage = { input_tokens: 10 };
    await backend.finishCall({
      callSid,
      status: "handed_off",
      endReason: "handoff:quiet:listen",
      usage,
      endedAt: at,
    });
    assertEquals(await backend.getCall(callSid), {
      callSid,
      tenantId: tenant.tenantId,
      status: "handed_off",
      endReason: "handoff:quiet:listen",
      handoffCount: 0,
      usage,
      streamClaimed: false,
    });
    assertEquals(await handoffTimes(callSid), { endedAt: null, handedOffAt: at });
  });

  backendTest(
    "a call's first stream claims it once: a replayed token's claim gets nothing",
    async (backend) => {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const other = await withAdmin((sql) => seedTenant(sql));
      const callSid = await withAdmin((sql) => seedCall(sql, tenant));
      assertEquals(await backend.claimCallStream(callSid, other.tenantId, 0), null, "another tenant's claim");
      assertEquals((await backend.getCall(callSid))?.streamClaimed, false);
      const claimed = await backend.claimCallStream(callSid, tenant.tenantId, 0);
      assertEquals(claimed, {
        callSid,
        tenantId: tenant.tenantId,
        status: "in_progress",
        endReason: null,
        handoffCount: 0,
        usage: {},
        streamClaimed: true,
      });
      assertEquals(await backend.claimCallStream(callSid, tenant.tenantId, 0), null);
      assertEquals(await backend.getCall(callSid), claimed);
      assertEquals(await backend.claimCallStream(newCallSid(), tenant.tenantId, 0), null);
    },
  );

  backendTest(
    "a resume claims its handoff once, only while the row is handed off after the one before",
    async (backend) => {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = await withAdmin((sql) => seedCall(sql, tenant));
      const usage = { input_tokens: 10 };
      await backend.claimCallStream(callSid, tenant.tenantId, 0);
      assertEquals(await backend.claimCallStream(callSid, tenant.tenantId, 1), null, "the call is live");
      await backend.finishCall({ callSid, status: "handed_off", endReason: "handoff:forced:reply", usage });
      assertEquals(await backend.claimCallStream(callSid, tenant.tenantId, 2), null, "not the next handoff");
      const resumed = {
        callSid,
        tenantId: tenant.tenantId,
        status: "in_progress",
        endReason: null,
        handoffCount: 1,
        usage,
        streamClaimed: true,
      };
      assertEquals(await backend.claimCallStream(callSid, tenant.tenantId, 1), resumed);
      // The same resume token used again: the compare-and-set has moved on.
      assertEquals(await backend.claimCallStream(callSid, tenant.tenantId, 1), null);
      assertEquals(await backend.getCall(callSid), resumed);
      await backend.finishCall({ callSid, status: "handed_off", endReason: "handoff:quiet:listen", usage });
      assertEquals(await backend.claimCallStream(callSid, tenant.tenantId, 1), null, "an older handoff");
      assertEquals((await backend.claimCallStream(callSid, tenant.tenantId, 2))?.handoffCount, 2);
      assertEquals((await backend.getCall(callSid))?.handoffCount, 2, "one per handoff");
    },
  );

  backendTest(
    "a resume's claim carries the metrics of the streams before it; malformed turns are left out",
    async (backend) => {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = await withAdmin((sql) => seedCall(sql, tenant));
      await backend.claimCallStream(callSid, tenant.tenantId, 0);
      const first = { turn: 0, firstAudioSentMs: 300, firstAudioPlayedMs: 700, toolMs: 0 };
      await backend.finishCall({
        callSid,
        status: "handed_off",
        endReason: "handoff:quiet:listen",
        usage: {},
        metrics: {
          turns: [first, { turn: 1, firstAudioSentMs: "fast" } as unknown as typeof first],
          first_audio_sent_p50_ms: 300,
          first_audio_sent_max_ms: 300,
          first_audio_played_p50_ms: 700,
          first_audio_played_max_ms: 700,
          audio_in_ms: 4000,
          audio_out_ms: 1500,
          model: "gpt-realtime",
        },
      });
      const carried = { turns: [first], audio_in_ms: 4000, audio_out_ms: 1500 };
      assertEquals((await backend.claimCallStream(callSid, tenant.tenantId, 1))?.metrics, carried);
      assertEquals((await backend.getCall(callSid))?.metrics, carried);
    },
  );

  backendTest(
    "a crashed worker's call is taken over once, only after its lease lapsed, never one whose claim named no worker",
    async (backend) => {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = await withAdmin((sql) => seedCall(sql, tenant));
      const owner = crypto.randomUUID();
      const reason = "handoff:crash:reply";
      // What the connect action read: the row at a handoff count (the compare-and-set's expectation).
      const at = (sid: string, handoffCount: number): CallRecord => ({
        callSid: sid,
        tenantId: tenant.tenantId,
        status: "in_progress",
        endReason: null,
        handoffCount,
        usage: {},
        streamClaimed: true,
      });
      // The claim renews the owner's lease in the same statement: fresh from the first moment.
      assertEquals(
        (await backend.claimCallStream(callSid, tenant.tenantId, 0, owner))?.status,
        "in_progress",
      );
      assertEquals(
        await backend.resumeCrashedCall(at(callSid, 0), 60_000, reason),
        null,
        "the owner is alive",
      );
      await backend.renewWorkerLease(owner);
      assertEquals(await backend.resumeCrashedCall(at(callSid, 0), 60_000, reason), null, "renewed: alive");
      assertEquals(
        await backend.resumeCrashedCall(at(callSid, 1), 0, reason),
        null,
        "not the row's handoff count",
      );
      // A lapse of 0 ms: every lease is older than that.
      const taken = await backend.resumeCrashedCall(at(callSid, 0), 0, reason);
      assertEquals([taken?.status, taken?.endReason, taken?.handoffCount], ["handed_off", reason, 0]);
      assertEquals(await backend.resumeCrashedCall(at(callSid, 0), 0, reason), null, "once");
      const rescuer = crypto.randomUUID();
      assertEquals((await backend.claimCallStream(callSid, tenant.tenantId, 1, rescuer))?.handoffCount, 1);
      assertEquals(
        await backend.resumeCrashedCall(at(callSid, 1), 60_000, reason),
        null,
        "the new owner is alive",
      );
      await backend.releaseWorkerLease(rescuer);
      assertEquals(
        (await backend.resumeCrashedCall(at(callSid, 1), 60_000, reason))?.status,
        "handed_off",
        "a released lease counts as lapsed",
      );

      const unnamed = await withAdmin((sql) => seedCall(sql, tenant));
      await backend.claimCallStream(unnamed, tenant.tenantId, 0);
      assertEquals(await backend.resumeCrashedCall(at(unnamed, 0), 0, reason), null, "no worker named");
      const unclaimed = await withAdmin((sql) => seedCall(sql, tenant));
      assertEquals(
        await backend.resumeCrashedCall(at(unclaimed, 0), 0, reason),
        null,
        "no stream claimed it",
      );
    },
  );

  backendTest("no stream claims a call that has ended", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    await backend.finishCall({ callSid, status: "completed", endReason: "twilio_stop", usage: {} });
    assertEquals(await backend.claimCallStream(callSid, tenant.tenantId, 0), null);
    assertEquals(await backend.claimCallStream(callSid, tenant.tenantId, 1), null);
    assertEquals((await backend.getCall(callSid))?.status, "completed");
  });

  backendTest(
    "the heartbeat refreshes stream_seen_at only while the row is the stream's",
    async (backend) => {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = await withAdmin((sql) => seedCall(sql, tenant));
      await backend.claimCallStream(callSid, tenant.tenantId, 0);
      const setSeen = (at: string) =>
        withAdmin((sql) =>
          sql`update public.calls set stream_seen_at = ${at}::timestamptz where call_sid = ${callSid}`
        );
      const seen = () =>
        withAdmin(async (sql) => {
          const [row] = await sql<{ stream_seen_at: Date }[]>`
          select stream_seen_at from public.calls where call_sid = ${callSid}`;
          return row.stream_seen_at.getTime();
        });
      await setSeen("2026-01-01T00:00:00Z");
      await backend.touchCallStream(callSid, 0);
      assert(Date.now() - (await seen()) < 60_000, "refreshed");
      await setSeen("2026-01-01T00:00:00Z");
      await backend.touchCallStream(callSid, 1);
      assertEquals(await seen(), Date.parse("2026-01-01T00:00:00Z"), "another stream's beat");
      await backend.finishCall({ callSid, status: "completed", endReason: "twilio_stop", usage: {} });
      await backend.touchCallStream(callSid, 0);
      assertEquals(await seen(), Date.parse("2026-01-01T00:00:00Z"), "an ended call");
    },
  );

  backendTest("the sweep finalizes calls with no sign of life and leaves live ones", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const [stale, live] = await withAdmin(async (
      sql,
    ) => [await seedCall(sql, tenant), await seedCall(sql, tenant)]);
    await withAdmin((sql) =>
      sql`update public.calls set started_at = now() - interval '10 minutes' where call_sid = ${stale}`
    );
    assert((await backend.finalizeStaleCalls()) >= 1);
    const status = async (callSid: string) => {
      const call = await backend.getCall(callSid);
      return [call?.status, call?.endReason];
    };
    assertEquals(await status(stale), ["failed", "stale: the stream never opened"]);
    assertEquals(await status(live), ["in_progress", null]);
  });

  registerToolStoreConformance(backendTest);
  registerCallStatusStoreConformance(backendTest);
}
