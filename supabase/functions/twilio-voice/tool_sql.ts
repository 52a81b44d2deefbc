// The SQL tool executor over SUPABASE_DB_URL (postgres.js, as store_postgres.ts connects): one
// transaction per call that drops to role `authenticated` with the tenant's claims, so RLS applies
// to the tool's function exactly as to the tenant's own API requests.

import postgres from "postgres";
import type { SqlToolExecutor } from "./tool_runner.ts";

// tenant_tools.sql_function's check: `schema.fn`, each a lower-case identifier of up to 63 chars.
const SQL_FUNCTION = /^([a-z_][a-z0-9_]{0,62})\.([a-z_][a-z0-9_]{0,62})$/;

/** A Postgres identifier, quoted (the check above already rules out quotes; belt and braces). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** `select "schema"."fn"($1::jsonb)`, or null for a name that is not `schema.fn`. */
export function sqlToolStatement(fn: string): string | null {
  const parts = SQL_FUNCTION.exec(fn);
  return parts ? `select ${quoteIdent(parts[1])}.${quoteIdent(parts[2])}($1::jsonb) as result` : null;
}

export interface SqlToolPool {
  execute: SqlToolExecutor;
  close(): Promise<void>;
}

export function createSqlToolPool(
  databaseUrl: string,
  options: { applicationName?: string } = {},
): SqlToolPool {
  const sql = postgres(databaseUrl, {
    max: 2,
    connect_timeout: 5,
    idle_timeout: 20,
    // Supavisor's transaction mode (port 6543) cannot keep prepared statements.
    prepare: false,
    fetch_types: false,
    onnotice: () => {},
    connection: { application_name: options.applicationName ?? "twilio-voice-tools" },
  });
  return {
    execute: async (fn, args, claims, timeoutMs) => {
      const statement = sqlToolStatement(fn);
      if (statement === null) {
        throw Object.assign(new Error(`not a schema.function name: ${fn}`), { code: "42602" });
      }
      return await sql.begin(async (tx) => {
        await tx`set local role authenticated`;
        await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
        // An integer from tenant_tools.timeout_ms (100..30000): safe to inline; SET takes no $1.
        await tx.unsafe(`set local statement_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
        // As a JSON value, not a JSON text: a string parameter would arrive as a jsonb string.
        const [row] = await tx.unsafe(statement, [tx.json((args ?? {}) as postgres.JSONValue)]);
        return row?.result ?? null;
      });
    },
    close: () => sql.end({ timeout: 1 }).catch(() => {}),
  };
}
