// `supactl tools test`: one tool call run by the bridge's own tool runner (tool_runner.ts,
// tool_sql.ts), outside a call. Reads one JSON request on stdin, prints the ToolResult as JSON.
// Not served by the function: supactl runs it with the pinned Deno.

import type { TenantTool } from "./store.ts";
import { toolRunner } from "./tool_runner.ts";
import { createSqlToolPool } from "./tool_sql.ts";

interface Request {
  tool: TenantTool;
  arguments: unknown;
  tenantId: string;
  callSid: string;
  from: string | null;
  to: string | null;
  signingKey: string;
  databaseUrl: string | null;
}

const request = JSON.parse(await new Response(Deno.stdin.readable).text()) as Request;
const pool = request.databaseUrl
  ? createSqlToolPool(request.databaseUrl, { applicationName: "supactl-tools-test" })
  : null;
try {
  // On the developer's own machine, as `supactl tools test` runs: a local tool server is fine.
  const run = toolRunner({
    signingKey: () => Promise.resolve(request.signingKey),
    sql: pool?.execute ?? null,
    privateHostsAllowed: true,
  });
  const result = await run(
    { tenantId: request.tenantId, callSid: request.callSid, from: request.from, to: request.to },
    { callId: "call_supactl_tools_test", tool: request.tool, arguments: request.arguments },
  );
  console.log(JSON.stringify(result));
} finally {
  await pool?.close();
}
