import assert from "node:assert/strict";
import type { ToolRun } from "./bridge.ts";
import type { TenantTool } from "./store.ts";
import { httpToolBody, MAX_TOOL_RESPONSE_BYTES, signToolRequest, toolRunner } from "./tool_runner.ts";
import { createSqlToolPool } from "./tool_sql.ts";
import { createSqlTools, seedOrder, startToolServer, verifyToolSignature } from "./testing/tool_fixtures.ts";
import { requireTestDatabase, seedTenant, testDatabaseUrl, withAdmin } from "./testing/test_database.ts";

const KEY = "ab".repeat(32);
const CONTEXT = {
  tenantId: "7f2c1d7e-3a5b-4c1d-9e8f-0a1b2c3d4e5f",
  callSid: "CA0123456789abcdef0123456789abcdef",
  from: "+15550009999",
  to: "+15550001111",
};

function httpTool(url: string, timeoutMs = 1_000): TenantTool {
  return {
    name: "lookup_order",
    description: "Look up an order",
    parameters: { type: "object" },
    kind: "http",
    httpUrl: url,
    sqlFunction: null,
    transferTo: null,
    timeoutMs,
  };
}

const run = (tool: TenantTool, args: unknown = { order: "A1" }): ToolRun => ({
  callId: "call_1",
  tool,
  arguments: args,
});

Deno.test("the signature is v1= and the hex HMAC-SHA256 of timestamp.body, and a receiver verifies it", async () => {
  const body = httpToolBody(CONTEXT, run(httpTool("http://x")));
  assert.deepEqual(JSON.parse(body), {
    tool: "lookup_order",
    call_id: "call_1",
    call_sid: CONTEXT.callSid,
    tenant_id: CONTEXT.tenantId,
    from: CONTEXT.from,
    to: CONTEXT.to,
    arguments: { order: "A1" },
  });
  const signature = await signToolRequest(KEY, 1_800_000_000, body);
  assert.match(signature, /^v1=[0-9a-f]{64}$/);
  const headers = new Headers({ "x-supactl-timestamp": "1800000000", "x-supactl-signature": signature });
  assert.equal(await verifyToolSignature(KEY, headers, body, 1_800_000_010), true);
  assert.equal(await verifyToolSignature(KEY, headers, body + " ", 1_800_000_010), false, "another body");
  assert.equal(
    await verifyToolSignature("cd".repeat(32), headers, body, 1_800_000_010),
    false,
    "another key",
  );
  assert.equal(await verifyToolSignature(KEY, headers, body, 1_800_001_000), false, "too old");
});

Deno.test("http tools: 2xx JSON and text are the output; redirects, errors, oversized and timeouts are error outputs", async () => {
  const server = startToolServer(() => KEY);
  const runner = toolRunner({ signingKey: () => Promise.resolve(KEY), sql: null, privateHostsAllowed: true });
  try {
    const ok = await runner(CONTEXT, run(httpTool(`${server.url}/lookup`)));
    assert.deepEqual([ok.status, JSON.parse(ok.output)], ["ok", { order: "A1", status: "shipped" }]);
    assert.ok(ok.durationMs >= 0);
    assert.deepEqual(server.requests.map((r) => [r.path, r.verified]), [["/lookup", true]]);

    const text = await runner(CONTEXT, run(httpTool(`${server.url}/text`)));
    assert.deepEqual([text.status, text.output], ["ok", "The shop opens at nine."]);

    const redirect = await runner(CONTEXT, run(httpTool(`${server.url}/redirect`)));
    assert.equal(redirect.status, "error");
    assert.match(JSON.parse(redirect.output).error, /redirect \(302\)/);
    assert.equal(
      server.requests.filter((r) => r.path === "/lookup").length,
      1,
      "the redirect was not followed",
    );

    const failed = await runner(CONTEXT, run(httpTool(`${server.url}/fail`)));
    assert.deepEqual([failed.status, JSON.parse(failed.output).error], [
      "error",
      "the tool answered HTTP 500",
    ]);

    const big = await runner(CONTEXT, run(httpTool(`${server.url}/big`)));
    assert.equal(big.status, "error");
    assert.match(JSON.parse(big.output).error, new RegExp(`over ${MAX_TOOL_RESPONSE_BYTES} bytes`));

    const slow = await runner(CONTEXT, run(httpTool(`${server.url}/slow`, 200)));
    assert.equal(slow.status, "timeout");
    assert.ok(slow.durationMs < 1_500, `gave up at its timeout, not at the answer (${slow.durationMs} ms)`);

    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = closed.addr.port;
    closed.close();
    const unreachable = await runner(CONTEXT, run(httpTool(`http://127.0.0.1:${port}/x`)));
    assert.deepEqual([unreachable.status, JSON.parse(unreachable.output).error], [
      "error",
      "the tool could not be reached",
    ]);
  } finally {
    await server.close();
  }
});

Deno.test("a sql tool without a database URL answers an error", async () => {
  const runner = toolRunner({ signingKey: () => Promise.resolve(KEY), sql: null, privateHostsAllowed: true });
  const result = await runner(
    CONTEXT,
    run({ ...httpTool(""), kind: "sql", httpUrl: null, sqlFunction: "a.b" }),
  );
  assert.equal(result.status, "error");
  assert.match(JSON.parse(result.output).error, /no database URL/);
});

if (requireTestDatabase("tool_runner")) {
  Deno.test("a sql tool runs as authenticated with the tenant's claims: RLS hides another tenant's row", async () => {
    const [mine, theirs] = await withAdmin(async (sql) => {
      await createSqlTools(sql);
      const tenants = [await seedTenant(sql), await seedTenant(sql)];
      const ref = `R-${crypto.randomUUID().slice(0, 8)}`;
      await seedOrder(sql, tenants[0].tenantId, ref, "packed");
      await seedOrder(sql, tenants[1].tenantId, `${ref}-other`, "secret");
      return tenants.map((tenant) => ({ ...tenant, ref }));
    });
    const pool = createSqlToolPool(testDatabaseUrl()!);
    const runner = toolRunner({
      signingKey: () => Promise.resolve(KEY),
      sql: pool.execute,
      privateHostsAllowed: true,
    });
    const tool = { ...httpTool(""), kind: "sql" as const, httpUrl: null, sqlFunction: "tooltest.find_order" };
    try {
      const own = await runner({ ...CONTEXT, tenantId: mine.tenantId }, run(tool, { ref: mine.ref }));
      assert.deepEqual(JSON.parse(own.output), {
        orders: [{ ref: mine.ref, status: "packed" }],
        role: "authenticated",
        call_sid: CONTEXT.callSid,
      });
      const other = await runner(
        { ...CONTEXT, tenantId: mine.tenantId },
        run(tool, { ref: `${theirs.ref}-other` }),
      );
      assert.deepEqual(
        JSON.parse(other.output).orders,
        [],
        "the other tenant's row exists but is not visible",
      );

      const slow = await runner(CONTEXT, run({ ...tool, sqlFunction: "tooltest.slow_tool", timeoutMs: 200 }));
      assert.equal(slow.status, "timeout");
      const missing = await runner(CONTEXT, run({ ...tool, sqlFunction: "tooltest.nope" }));
      assert.deepEqual([missing.status, JSON.parse(missing.output).error], [
        "error",
        "the tool failed (SQLSTATE 42883)",
      ]);
    } finally {
      await pool.close();
    }
  });
}

Deno.test("an HTTP tool may not call the platform's own network: private hosts are refused before any request", async () => {
  let fetched = 0;
  const runner = toolRunner({
    signingKey: () => Promise.resolve(KEY),
    sql: null,
    fetch: () => {
      fetched++;
      return Promise.resolve(new Response("{}"));
    },
  });
  for (
    const url of [
      "http://127.0.0.1:8080/x",
      "http://2130706433/x", // 127.0.0.1 as one number
      "http://169.254.169.254/latest/meta-data/",
      "http://10.0.0.7/",
      "http://172.20.1.1/",
      "http://192.168.1.1/",
      "http://100.64.0.1/",
      "http://0.0.0.0/",
      "http://[::1]/",
      "http://[::ffff:127.0.0.1]/",
      "http://[fd00::1]/",
      "http://[fe80::1]/",
      "http://localhost:54321/",
      "http://db.internal/",
    ]
  ) {
    const result = await runner(CONTEXT, run(httpTool(url)));
    assert.equal(result.status, "error", url);
    assert.match(result.output, /private address/, url);
  }
  assert.equal(fetched, 0);
  for (const url of ["https://api.example.com/t", "http://172.32.0.1/", "http://8.8.8.8/"]) {
    assert.equal((await runner(CONTEXT, run(httpTool(url)))).status, "ok", url);
  }
  assert.equal(fetched, 3);
});
