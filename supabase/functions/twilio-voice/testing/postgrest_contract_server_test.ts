// The contract server must refuse what the hosted Data API refuses, or the rest store's tests
// would prove nothing. Raw requests, no supabase-js.

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type ContractProject, startContractProject } from "./postgrest_contract_server.ts";
import {
  newCallSid,
  requireTestDatabase,
  seedCall,
  type SeededTenant,
  seedTenant,
  testDatabaseUrl,
  withAdmin,
} from "./test_database.ts";

interface Answer {
  status: number;
  body: unknown;
}

function serviceHeaders(
  project: ContractProject,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    apikey: project.serviceRoleKey,
    authorization: `Bearer ${project.serviceRoleKey}`,
    "content-type": "application/json",
    ...extra,
  };
}

async function send(
  project: ContractProject,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<Answer> {
  const response = await fetch(project.server.url + path, {
    method: init.method ?? "GET",
    headers: init.headers ?? serviceHeaders(project),
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** Status and error code only: the contract is about which requests are refused, and how. */
function verdict(answer: Answer): [number, unknown] {
  const body = answer.body as { code?: unknown; message?: unknown } | null;
  return [answer.status, body && !Array.isArray(body) ? body.code ?? body.message : null];
}

function turnRow(tenant: SeededTenant, callSid: string, itemId: string) {
  return {
    tenant_id: tenant.tenantId,
    call_sid: callSid,
    role: "user",
    text: "hi",
    item_id: itemId,
    seq: 0,
    interrupted: false,
  };
}

if (requireTestDatabase("postgrest contract server")) {
  const contractTest = (name: string, body: (project: ContractProject) => Promise<void>) =>
    Deno.test(`postgrest contract server: ${name}`, async () => {
      const project = await startContractProject(testDatabaseUrl()!);
      try {
        await body(project);
      } finally {
        await project.server.close();
      }
    });

  contractTest("refuses a request without an apikey header, as the gateway does", async (project) => {
    const answer = await send(project, "/rest/v1/calls", { headers: {} });
    assertEquals(answer, {
      status: 401,
      body: {
        code: null,
        message: "No API key found in request",
        details: null,
        hint: "No `apikey` request header or url param was found.",
      },
    });
  });

  contractTest("refuses an unknown apikey", async (project) => {
    const headers = { apikey: "sb_secret_unknown", authorization: "Bearer sb_secret_unknown" };
    assertEquals(verdict(await send(project, "/rest/v1/calls", { headers })), [401, "Invalid API key"]);
  });

  contractTest("refuses a missing or different bearer token", async (project) => {
    const withoutBearer = { apikey: project.serviceRoleKey };
    const otherBearer = { apikey: project.serviceRoleKey, authorization: `Bearer ${project.anonKey}` };
    assertEquals(verdict(await send(project, "/rest/v1/calls", { headers: withoutBearer })), [
      401,
      "PGRST301",
    ]);
    assertEquals(verdict(await send(project, "/rest/v1/calls", { headers: otherBearer })), [401, "PGRST301"]);
  });

  contractTest("refuses paths outside /rest/v1/<table> and unknown tables", async (project) => {
    assertEquals(verdict(await send(project, "/calls")), [404, "PGRST125"]);
    assertEquals(verdict(await send(project, "/rest/v1/calls/1")), [404, "PGRST125"]);
    assertEquals(verdict(await send(project, "/rest/v1/call_turn")), [404, "PGRST205"]);
  });

  contractTest("refuses a schema other than public", async (project) => {
    const headers = serviceHeaders(project, { "accept-profile": "auth" });
    assertEquals(verdict(await send(project, "/rest/v1/calls", { headers })), [406, "PGRST106"]);
  });

  contractTest("refuses body keys and columns that are not real columns", async (project) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    const row = { ...turnRow(tenant, callSid, "item_a"), callSid };
    assertEquals(verdict(await send(project, "/rest/v1/call_turns", { method: "POST", body: [row] })), [
      400,
      "PGRST204",
    ]);
    const columns = encodeURIComponent('"tenant_id","speaker"');
    const answer = await send(project, `/rest/v1/call_turns?columns=${columns}`, {
      method: "POST",
      body: [turnRow(tenant, callSid, "item_a")],
    });
    assertEquals(verdict(answer), [400, "PGRST204"]);
  });

  contractTest("upserts only on a real unique key, and only with a resolution", async (project) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    const body = [turnRow(tenant, callSid, "item_a")];
    const merge = serviceHeaders(project, { prefer: "resolution=merge-duplicates" });
    const upsert = (query: string, headers = merge) =>
      send(project, `/rest/v1/call_turns?${query}`, { method: "POST", headers, body });
    assertEquals(verdict(await upsert("on_conflict=call_sid,item_id")), [201, null]);
    assertEquals(verdict(await upsert("on_conflict=call_sid,item_id")), [201, null]);
    // seq alone is not unique: Postgres refuses the ON CONFLICT target, PostgREST forwards it.
    assertEquals(verdict(await upsert("on_conflict=seq")), [400, "42P10"]);
    assertEquals(verdict(await upsert("on_conflict=speaker")), [400, "42703"]);
    // Without Prefer: resolution=..., on_conflict is ignored and the insert hits the unique key.
    assertEquals(verdict(await upsert("on_conflict=call_sid,item_id", serviceHeaders(project))), [
      409,
      "23505",
    ]);
  });

  contractTest("answers rows for return=representation and GET, in PostgREST's shape", async (project) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    const created = await send(project, "/rest/v1/call_turns?select=item_id,interrupted", {
      method: "POST",
      headers: serviceHeaders(project, { prefer: "return=representation" }),
      body: turnRow(tenant, callSid, "item_a"),
    });
    assertEquals(created, { status: 201, body: [{ item_id: "item_a", interrupted: false }] });
    const updated = await send(project, `/rest/v1/call_turns?call_sid=eq.${callSid}&select=interrupted`, {
      method: "PATCH",
      headers: serviceHeaders(project, { prefer: "return=representation" }),
      body: { interrupted: true },
    });
    assertEquals(updated, { status: 200, body: [{ interrupted: true }] });
    const silent = await send(project, `/rest/v1/calls?call_sid=eq.${newCallSid()}`, {
      method: "PATCH",
      body: { status: "completed" },
    });
    assertEquals(silent, { status: 204, body: null });
    const read = await send(
      project,
      `/rest/v1/call_turns?select=item_id,seq&call_sid=eq.${callSid}&order=seq.desc`,
    );
    assertEquals(read, { status: 200, body: [{ item_id: "item_a", seq: 0 }] });
  });

  contractTest("refuses filters it cannot parse", async (project) => {
    assertEquals(verdict(await send(project, "/rest/v1/calls?call_sid=equals.CA1")), [400, "PGRST100"]);
    assertEquals(verdict(await send(project, "/rest/v1/calls?order=call_sid.sideways")), [400, "PGRST100"]);
    assertEquals(verdict(await send(project, "/rest/v1/calls?caller=eq.1")), [400, "42703"]);
  });

  contractTest("forwards constraint violations with PostgREST's statuses", async (project) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const orphan = turnRow(tenant, newCallSid(), "item_a");
    assertEquals(verdict(await send(project, "/rest/v1/call_turns", { method: "POST", body: orphan })), [
      409,
      "23503",
    ]);
    const badRole = {
      ...turnRow(tenant, await withAdmin((sql) => seedCall(sql, tenant)), "item_b"),
      role: "system",
    };
    assertEquals(verdict(await send(project, "/rest/v1/call_turns", { method: "POST", body: badRole })), [
      400,
      "23514",
    ]);
    const notJson = await fetch(project.server.url + "/rest/v1/calls", {
      method: "POST",
      headers: serviceHeaders(project),
      body: "{",
    });
    assertEquals(verdict({ status: notJson.status, body: await notJson.json() }), [400, "PGRST102"]);
  });
}
