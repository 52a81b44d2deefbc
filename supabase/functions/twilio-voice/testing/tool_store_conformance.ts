// The tool half of the store conformance suite (store_conformance.ts runs it for every backend):
// a tenant's enabled tools come with its number, the signing key is made once, tool calls are
// stored once and read back in order, and a transfer's outcome is recorded once.

import { deepStrictEqual as assertEquals, match, ok as assert } from "node:assert/strict";
import type { StoreBackend, ToolCallRow } from "../store.ts";
import { seedCall, type SeededTenant, seedTenant, type Sql, withAdmin } from "./test_database.ts";

type BackendTest = (name: string, body: (backend: StoreBackend) => Promise<void>) => void;

export async function seedTool(
  sql: Sql,
  tenant: SeededTenant,
  tool: {
    name: string;
    kind: string;
    url?: string;
    sqlFunction?: string;
    transferTo?: string;
    enabled?: boolean;
  },
): Promise<void> {
  await sql`
    insert into public.tenant_tools (tenant_id, name, description, kind, http_url, sql_function, transfer_to, enabled)
    values (${tenant.tenantId}, ${tool.name}, ${"the " + tool.name + " tool"}, ${tool.kind}, ${
    tool.url ?? null
  },
            ${tool.sqlFunction ?? null}, ${tool.transferTo ?? null}, ${tool.enabled ?? true})`;
}

/** A stored-looking tool call of `callSid` (an HTTP lookup that answered). */
export function toolCall(tenant: SeededTenant, callSid: string, seq: number, callId: string): ToolCallRow {
  return {
    tenantId: tenant.tenantId,
    callSid,
    seq,
    callId,
    name: "lookup_order",
    arguments: { order: "A1" },
    output: '{"status":"shipped"}',
    status: "ok",
    durationMs: 12,
  };
}

export function registerToolStoreConformance(backendTest: BackendTest): void {
  backendTest("a number's owner comes with its enabled tools, by name", async (backend) => {
    const tenant = await withAdmin(async (sql) => {
      const tenant = await seedTenant(sql);
      await seedTool(sql, tenant, { name: "transfer", kind: "transfer", transferTo: "+15550001234" });
      await seedTool(sql, tenant, { name: "lookup", kind: "http", url: "https://tools.example/lookup" });
      await seedTool(sql, tenant, { name: "old", kind: "end_call", enabled: false });
      return tenant;
    });
    const owner = await backend.findNumberOwner(tenant.phoneNumber);
    assertEquals(owner?.tools, [
      {
        name: "lookup",
        description: "the lookup tool",
        parameters: { type: "object", properties: {} },
        kind: "http",
        httpUrl: "https://tools.example/lookup",
        sqlFunction: null,
        transferTo: null,
        timeoutMs: 5000,
      },
      {
        name: "transfer",
        description: "the transfer tool",
        parameters: { type: "object", properties: {} },
        kind: "transfer",
        httpUrl: null,
        sqlFunction: null,
        transferTo: "+15550001234",
        timeoutMs: 5000,
      },
    ]);
  });

  backendTest("the signing key is made on first use and the same after", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const key = await backend.toolSigningKey(tenant.tenantId);
    match(key, /^[0-9a-f]{64}$/);
    assertEquals(await backend.toolSigningKey(tenant.tenantId), key);
  });

  backendTest(
    "tool calls are stored once per call_id and read back in conversation order",
    async (backend) => {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = await withAdmin((sql) => seedCall(sql, tenant));
      await backend.upsertToolCalls([toolCall(tenant, callSid, 5, "call_b")]);
      await backend.upsertToolCalls([
        toolCall(tenant, callSid, 2, "call_a"),
        toolCall(tenant, callSid, 5, "call_b"),
      ]);
      assertEquals((await backend.loadToolCalls(callSid)).map((row) => [row.seq, row.callId]), [
        [2, "call_a"],
        [
          5,
          "call_b",
        ],
      ]);
      assertEquals((await backend.loadToolCalls(callSid))[0], toolCall(tenant, callSid, 2, "call_a"));
    },
  );

  backendTest(
    "a transfer's outcome is recorded once; nobody answering makes the row claimable",
    async (backend) => {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const [answered, unanswered, plain] = await withAdmin(async (sql) => [
        await seedCall(sql, tenant),
        await seedCall(sql, tenant),
        await seedCall(sql, tenant),
      ]);
      for (const callSid of [answered, unanswered]) {
        assert(await backend.claimCallStream(callSid, tenant.tenantId, 0));
        await backend.finishCall({
          callSid,
          status: "completed",
          endReason: "transferred",
          usage: {},
          transferTo: "+15550001234",
        });
      }
      await backend.finishCall({ callSid: plain, status: "completed", endReason: "twilio_stop", usage: {} });

      const taken = await backend.recordTransferOutcome(answered, "answered", null);
      assertEquals([taken?.status, taken?.transferTo, taken?.transferOutcome], [
        "completed",
        "+15550001234",
        "answered",
      ]);
      assertEquals(await backend.recordTransferOutcome(answered, "no-answer", null), null, "once");
      assertEquals(await backend.recordTransferOutcome(plain, "answered", null), null, "not transferred");

      const back = await backend.recordTransferOutcome(unanswered, "no-answer", {
        endReason: "handoff:transfer_unanswered",
      });
      assertEquals([back?.status, back?.endReason, back?.handoffCount], [
        "handed_off",
        "handoff:transfer_unanswered",
        0,
      ]);
      assertEquals((await backend.claimCallStream(unanswered, tenant.tenantId, 1))?.status, "in_progress");
      assertEquals(await backend.claimCallStream(unanswered, tenant.tenantId, 1), null, "claimed once");
    },
  );
}
