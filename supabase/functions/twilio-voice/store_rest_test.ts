import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { createRestBackend, storeErrorFromPostgrest } from "./store_rest.ts";
import { StoreError } from "./store_errors.ts";
import { startContractProject } from "./testing/postgrest_contract_server.ts";
import { registerStoreConformance, turn } from "./testing/store_conformance.ts";
import { seedCall, seedTenant, testDatabaseUrl, withAdmin } from "./testing/test_database.ts";

registerStoreConformance("rest store", async () => {
  const { server, serviceRoleKey } = await startContractProject(testDatabaseUrl()!);
  const backend = createRestBackend(server.url, serviceRoleKey);
  return {
    backend,
    async close() {
      await backend.close();
      await server.close();
      // Errors the suite provokes come from Postgres (SQLSTATEs); a PGRST code or a gateway
      // refusal would mean the backend sent a request the hosted Data API refuses.
      const refusedShapes = server.requests.filter((r) =>
        r.status >= 400 && (r.errorCode === null || r.errorCode.startsWith("PGRST"))
      );
      assertEquals(refusedShapes, []);
    },
  };
});

const ignore = !testDatabaseUrl();

function expectStoreError(check: (error: StoreError) => void) {
  return (error: unknown) => {
    assert(error instanceof StoreError, `expected a StoreError, got ${error}`);
    check(error);
    return true;
  };
}

Deno.test("rest store: sends what PostgREST expects for a call's writes", { ignore }, async () => {
  const { server, serviceRoleKey } = await startContractProject(testDatabaseUrl()!);
  const backend = createRestBackend(server.url, serviceRoleKey);
  try {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    await backend.startCall({ callSid, tenantId: tenant.tenantId, fromNumber: null, toNumber: null });
    await backend.upsertTurns([turn(tenant, callSid, "item_a", 0)]);
    await backend.finishCall({
      callSid,
      status: "completed",
      endReason: "stop",
      usage: { total_tokens: 3 },
      endedAt: new Date("2026-11-25T10:00:00Z"),
    });
    // Every request the backend made, and no other.
    assertEquals(server.requests.map(({ body: _body, errorCode: _code, ...request }) => request), [
      {
        method: "POST",
        path: "/rest/v1/calls",
        query: [["on_conflict", "call_sid"]],
        prefer: "resolution=ignore-duplicates",
        status: 201,
      },
      {
        method: "POST",
        path: "/rest/v1/call_turns",
        query: [
          ["on_conflict", "call_sid,item_id"],
          ["columns", '"tenant_id","call_sid","role","text","item_id","seq","interrupted"'],
        ],
        prefer: "resolution=merge-duplicates",
        status: 201,
      },
      {
        method: "PATCH",
        path: "/rest/v1/calls",
        query: [["call_sid", `eq.${callSid}`], ["select", "call_sid"]],
        prefer: "return=representation",
        status: 200,
      },
    ]);
    assertEquals(server.requests[2].body, {
      ended_at: "2026-11-25T10:00:00.000Z",
      status: "completed",
      end_reason: "stop",
      usage: { total_tokens: 3 },
    });
  } finally {
    await backend.close();
    await server.close();
  }
});

Deno.test("rest store: a key the project does not know is a permanent error", { ignore }, async () => {
  const { server } = await startContractProject(testDatabaseUrl()!);
  const backend = createRestBackend(
    server.url,
    "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.forged",
  );
  try {
    await rejects(
      backend.getCall("CA" + "0".repeat(32)),
      expectStoreError((error) => {
        assertEquals([error.status, error.permanent, error.message], [401, true, "Invalid API key"]);
      }),
    );
  } finally {
    await server.close();
  }
});

Deno.test("rest store: the anon key cannot write turns (RLS and grants hold)", { ignore }, async () => {
  const { server, anonKey } = await startContractProject(testDatabaseUrl()!);
  const backend = createRestBackend(server.url, anonKey);
  try {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    await rejects(
      backend.upsertTurns([turn(tenant, callSid, "item_a", 0)]),
      expectStoreError((error) =>
        assertEquals([error.status, error.code, error.permanent], [401, "42501", true])
      ),
    );
  } finally {
    await server.close();
  }
});

Deno.test("rest store: a 503 from the Data API is transient", { ignore }, async () => {
  const { server, serviceRoleKey } = await startContractProject(testDatabaseUrl()!);
  const backend = createRestBackend(server.url, serviceRoleKey);
  server.failWith = 503;
  try {
    await rejects(
      backend.upsertTurns([{
        tenantId: crypto.randomUUID(),
        callSid: "CA" + "0".repeat(32),
        role: "user",
        text: "hi",
        itemId: "item_a",
        seq: 0,
        interrupted: false,
      }]),
      expectStoreError((error) =>
        assertEquals([error.status, error.code, error.permanent], [503, "PGRST000", false])
      ),
    );
  } finally {
    await server.close();
  }
});

Deno.test("rest store: an unreachable Data API is transient", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  const backend = createRestBackend(`http://127.0.0.1:${port}`, "key");
  await rejects(
    backend.getCall("CA" + "0".repeat(32)),
    expectStoreError((error) => assertEquals([error.code, error.permanent], ["FETCH_FAILED", false])),
  );
});

Deno.test("rest store: sorts HTTP failures into transient and permanent", () => {
  const sorted = [0, 400, 401, 404, 408, 409, 429, 500, 503, 504].map((status) => [
    status,
    storeErrorFromPostgrest(status, { message: "x" }).permanent,
  ]);
  assertEquals(sorted, [
    [0, false],
    [400, true],
    [401, true],
    [404, true],
    [408, false],
    [409, true],
    [429, false],
    [500, false],
    [503, false],
    [504, false],
  ]);
});

Deno.test("rest store: errors keep code and message, never supabase-js details or PostgREST hints", () => {
  const error = storeErrorFromPostgrest(0, {
    message: "TypeError: fetch failed",
    details:
      "TypeError: fetch failed\n    at fetch (ext:deno_fetch/26_fetch.js:1)\n    to_number=+14155550100",
    hint: "Key (to_number)=(+14155550100) already exists.",
  });
  assertEquals([error.message, error.code], ["TypeError: fetch failed", "FETCH_FAILED"]);
  assertEquals(JSON.stringify({ ...error, message: error.message }).includes("+1415"), false);
});
