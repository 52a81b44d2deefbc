// Runs a tenant's http and sql tools for the bridge, off the audio path, each within its timeout.
// Whatever goes wrong becomes an output the model can read and apologise for ({"error": ...}),
// never an exception: the call goes on.
//
// HTTP: POST a JSON body to the tenant's URL, signed with the tenant's key (tenant_tool_keys):
//   X-Supactl-Timestamp: <unix seconds>
//   X-Supactl-Signature: v1=<hex HMAC-SHA256(key, timestamp + "." + raw body)>
// Redirects are never followed (a 3xx is an error): a tool's URL must not bounce the signed body,
// and the caller's number in it, to another host.
//
// SQL: `schema.fn(args jsonb) returns jsonb`, in one transaction as role `authenticated` with the
// tenant's claims in request.jwt.claims (tenant_id, call_sid, caller), under a statement timeout:
// the function sees only what the tenant's RLS lets it see.

import type { ToolResult, ToolRun } from "./bridge.ts";
import { hmacSha256Hex } from "./hmac.ts";
import { errorMessage } from "./log.ts";
import { readCappedText } from "./request_body.ts";
import { errorOutput } from "./tool_output.ts";

// A tool's answer is for the model to read, not a download: 64 KB read at most (the stored and
// relayed output is capped further, tool_output.ts).
export const MAX_TOOL_RESPONSE_BYTES = 64 * 1024;

/** Who is calling whom, for the tool's body and claims. */
export interface ToolCallContext {
  tenantId: string;
  callSid: string;
  from: string | null;
  to: string | null;
}

/** Runs a SQL tool's function (tool_sql.ts); null where there is no database URL. */
export type SqlToolExecutor = (
  fn: string,
  args: unknown,
  claims: Record<string, unknown>,
  timeoutMs: number,
) => Promise<unknown>;

export interface ToolRunnerDeps {
  /** The tenant's HTTP signing key (StoreBackend.toolSigningKey). */
  signingKey(tenantId: string): Promise<string>;
  sql: SqlToolExecutor | null;
  fetch?: typeof fetch;
  /** Whether an HTTP tool may reach loopback, private and link-local addresses (never on a hosted
   * function: a tenant's user can set a tool's URL, and must not reach the platform's insides). */
  privateHostsAllowed?: boolean;
  /** Unix seconds, for the signature's timestamp. */
  unixNow?: () => number;
  now?: () => number;
}

export function toolRunner(
  deps: ToolRunnerDeps,
): (context: ToolCallContext, run: ToolRun) => Promise<ToolResult> {
  const now = deps.now ?? (() => performance.now());
  return async (context, run) => {
    const started = now();
    const signal = AbortSignal.timeout(run.tool.timeoutMs);
    let result: Omit<ToolResult, "durationMs">;
    try {
      result = run.tool.kind === "http"
        ? await runHttpTool(deps, context, run, signal)
        : await runSqlTool(deps, context, run, signal);
    } catch (error) {
      result = signal.aborted || error instanceof ToolTimeout
        ? {
          status: "timeout",
          output: errorOutput(`the tool did not answer within ${run.tool.timeoutMs} ms`),
        }
        : { status: "error", output: errorOutput(failureMessage(error)) };
    }
    return { ...result, durationMs: now() - started };
  };
}

/** What the model is told of a failure: the tool's own words where they are the tenant's (a
 * RAISE in its function), never a connection string or a stack. */
function failureMessage(error: unknown): string {
  if (error instanceof ToolFailure) return error.message;
  const code = (error as { code?: unknown })?.code;
  if (code === "P0001") return `the tool failed: ${errorMessage(error)}`;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)
    ? `the tool failed (SQLSTATE ${code})`
    : "the tool could not be reached";
}

class ToolFailure extends Error {}
class ToolTimeout extends Error {}

/** The body an HTTP tool is POSTed, exactly as signed. */
export function httpToolBody(context: ToolCallContext, run: ToolRun): string {
  return JSON.stringify({
    tool: run.tool.name,
    call_id: run.callId,
    call_sid: context.callSid,
    tenant_id: context.tenantId,
    from: context.from,
    to: context.to,
    arguments: run.arguments,
  });
}

/** `v1=` and the hex HMAC-SHA256 of `timestamp.body` under the tenant's key. */
export async function signToolRequest(key: string, timestamp: number, body: string): Promise<string> {
  return "v1=" + await hmacSha256Hex(key, `${timestamp}.${body}`);
}

async function runHttpTool(
  deps: ToolRunnerDeps,
  context: ToolCallContext,
  run: ToolRun,
  signal: AbortSignal,
): Promise<Omit<ToolResult, "durationMs">> {
  const host = new URL(run.tool.httpUrl!).hostname;
  if (!deps.privateHostsAllowed && isPrivateHost(host)) {
    return {
      status: "error",
      output: errorOutput(`the tool's host ${host} is a private address, which tools may not call`),
    };
  }
  const body = httpToolBody(context, run);
  const timestamp = (deps.unixNow ?? (() => Math.floor(Date.now() / 1000)))();
  const key = await deps.signingKey(context.tenantId);
  const response = await (deps.fetch ?? fetch)(run.tool.httpUrl!, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-supactl-timestamp": String(timestamp),
      "x-supactl-signature": await signToolRequest(key, timestamp, body),
    },
    body,
    redirect: "manual",
    signal,
  });
  if (response.status < 200 || response.status > 299) {
    await response.body?.cancel().catch(() => {});
    const why = response.status >= 300 && response.status < 400
      ? `the tool answered a redirect (${response.status}), which is not followed`
      : `the tool answered HTTP ${response.status}`;
    return { status: "error", output: errorOutput(why) };
  }
  const read = await readCappedText(response, MAX_TOOL_RESPONSE_BYTES, run.tool.timeoutMs);
  if (read.kind === "too_large") {
    return {
      status: "error",
      output: errorOutput(`the tool's answer is over ${MAX_TOOL_RESPONSE_BYTES} bytes`),
    };
  }
  if (read.kind === "timeout" || signal.aborted) throw new ToolTimeout();
  return { status: "ok", output: read.text.trim() || "{}" };
}

async function runSqlTool(
  deps: ToolRunnerDeps,
  context: ToolCallContext,
  run: ToolRun,
  signal: AbortSignal,
): Promise<Omit<ToolResult, "durationMs">> {
  if (deps.sql === null) {
    // The REST store has no database connection: SQL tools need SUPABASE_DB_URL.
    return { status: "error", output: errorOutput("SQL tools are not available here (no database URL)") };
  }
  const claims = {
    role: "authenticated",
    tenant_id: context.tenantId,
    call_sid: context.callSid,
    caller: context.from,
  };
  const running = deps.sql(run.tool.sqlFunction!, run.arguments, claims, run.tool.timeoutMs);
  running.catch(() => {});
  const aborted = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  try {
    const value = await Promise.race([running, aborted]);
    return { status: "ok", output: JSON.stringify(value ?? null) };
  } catch (error) {
    // Postgres cancelled the statement at statement_timeout: the tool's timeout, as it was meant.
    throw (error as { code?: unknown })?.code === "57014" ? new ToolTimeout() : error;
  }
}

/**
 * Hosts a tenant's HTTP tool must not reach from inside the platform: loopback, private, shared
 * (CGNAT), link-local (cloud metadata at 169.254.169.254), multicast and unspecified addresses,
 * IPv4-mapped IPv6, and names that only resolve inside a network. The URL parser has already
 * normalised numeric forms (`http://2130706433/` is 127.0.0.1 here). A public name that resolves to
 * a private address is not caught: that needs the resolver (README: Defining tools).
 */
export function isPrivateHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  if (host === "localhost" || /\.(localhost|local|internal|lan|home\.arpa)$/.test(host)) return true;
  const v4 = host.match(/^(\d{1,3})\.(\d{1,3})\.\d{1,3}\.\d{1,3}$/);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return a === 0 || a === 10 || a === 127 || a >= 224 || (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127);
  }
  if (host.includes(":")) {
    return host === "::" || host === "::1" || /^(fc|fd|fe[89ab])/.test(host) || host.startsWith("::ffff:");
  }
  return false;
}
