// A local stand-in for a Supabase project's Data API (the API gateway in front of PostgREST),
// backed by the real test Postgres so constraints, grants and RLS behave for real. It enforces the
// request shape the hosted service expects and answers as it does:
// - path /rest/v1/<table>, a table of the public schema (else 404 PGRST205);
// - an `apikey` header the gateway knows (else 401, the gateway's own message), and
//   `Authorization: Bearer <the same key>`, a JWT signed with the project's secret whose `role`
//   claim the request then runs as (set local role + request.jwt.claims, as PostgREST does);
// - Accept-Profile / Content-Profile naming `public` when present (else 406 PGRST106);
// - Prefer (return, resolution, missing), on_conflict, columns, filters, order, limit;
// - JSON bodies whose keys are real columns (else 400 PGRST204);
// - POST /rest/v1/rpc/<function> with the named arguments as a JSON body (else 404 PGRST202).
// Postgres errors come back as PostgREST forwards them: {code, message, details, hint} with the
// status from https://docs.postgrest.org/en/v12/references/errors.html#http-status-codes.

import postgres from "postgres";
import {
  findFunction,
  findTable,
  type FunctionCache,
  insertStatement,
  parsePreferences,
  type PostgrestErrorBody,
  PostgrestRequestError,
  type Preferences,
  rpcStatement,
  type SchemaCache,
  selectStatement,
  type SqlStatement,
  type TableSchema,
  updateStatement,
} from "./postgrest_query.ts";

export interface RecordedRequest {
  method: string;
  path: string;
  query: [string, string][];
  prefer: string | null;
  /** The JSON body as sent, or null. */
  body: unknown;
  status: number;
  /** The error body's code (a SQLSTATE, PGRSTnnn), or null on success and gateway refusals. */
  errorCode: string | null;
}

export interface ContractServer {
  /** What SUPABASE_URL would be: the origin, without /rest/v1. */
  url: string;
  /** Every request answered, in order, so a test can check exactly what went over the wire. */
  requests: RecordedRequest[];
  /** Answer every request with this status and a PostgREST error until set back to null. */
  failWith: number | null;
  close(): Promise<void>;
}

export interface ContractServerOptions {
  databaseUrl: string;
  /** The project's JWT secret: keys are HS256 JWTs signed with it. */
  jwtSecret: string;
  /** Keys the gateway accepts in `apikey` (the anon and service role keys). */
  apiKeys: string[];
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function base64urlDecode(text: string): Uint8Array {
  const padded = text.replaceAll("-", "+").replaceAll("_", "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(padded), (char) => char.charCodeAt(0));
}

function hmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** A Supabase-style API key: an HS256 JWT with a `role` claim. */
export async function signJwt(secret: string, claims: Record<string, unknown>): Promise<string> {
  const encode = (value: unknown) => base64url(new TextEncoder().encode(JSON.stringify(value)));
  const signingInput = `${encode({ alg: "HS256", typ: "JWT" })}.${encode(claims)}`;
  const signature = await crypto.subtle.sign(
    "HMAC",
    await hmacKey(secret),
    new TextEncoder().encode(signingInput),
  );
  return `${signingInput}.${base64url(new Uint8Array(signature))}`;
}

async function verifyJwt(secret: string, token: string): Promise<Record<string, unknown> | null> {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(new TextDecoder().decode(base64urlDecode(parts[0])));
    if (header.alg !== "HS256") return null;
    const valid = await crypto.subtle.verify(
      "HMAC",
      await hmacKey(secret),
      base64urlDecode(parts[2]),
      new TextEncoder().encode(`${parts[0]}.${parts[1]}`),
    );
    if (!valid) return null;
    const claims = JSON.parse(new TextDecoder().decode(base64urlDecode(parts[1])));
    if (typeof claims.exp === "number" && claims.exp * 1000 < Date.now()) return null;
    return claims;
  } catch {
    return null;
  }
}

function statusForSqlState(code: string, anonymous: boolean): number {
  if (code === "42501") return anonymous ? 401 : 403;
  if (code === "23503" || code === "23505") return 409;
  if (code === "25006") return 405;
  if (code === "42883" || code === "42P01") return 404;
  if (code === "P0001") return 400;
  if (code === "53400" || code === "42P17") return 500;
  const byClass: Record<string, number> = {
    "08": 503,
    "09": 500,
    "0L": 403,
    "0P": 403,
    "25": 500,
    "28": 403,
    "2D": 500,
    "38": 500,
    "39": 500,
    "3B": 500,
    "40": 500,
    "53": 503,
    "54": 500,
    "55": 500,
    "57": 500,
    "58": 500,
    "F0": 500,
    "HV": 500,
    "P0": 500,
    "XX": 500,
  };
  return byClass[code.slice(0, 2)] ?? 400;
}

async function loadSchemaCache(sql: postgres.Sql): Promise<SchemaCache> {
  const columns = await sql<{ table_name: string; column_name: string; type: string }[]>`
    select c.relname as table_name, a.attname as column_name,
           format_type(a.atttypid, a.atttypmod) as type
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'v', 'p') and a.attnum > 0
      and not a.attisdropped
    order by c.relname, a.attnum`;
  const keys = await sql<{ table_name: string; columns: string[] }[]>`
    select c.relname as table_name,
           array_agg(a.attname::text order by k.ordinality) as columns
    from pg_constraint con
    join pg_class c on c.oid = con.conrelid
    join pg_namespace n on n.oid = c.relnamespace
    cross join lateral unnest(con.conkey) with ordinality as k(attnum, ordinality)
    join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
    where n.nspname = 'public' and con.contype = 'p'
    group by c.relname`;
  const cache: SchemaCache = new Map();
  for (const row of columns) {
    let table = cache.get(row.table_name);
    if (!table) {
      table = { name: row.table_name, columns: new Map(), primaryKey: [] };
      cache.set(row.table_name, table);
    }
    table.columns.set(row.column_name, row.type);
  }
  for (const key of keys) {
    const table = cache.get(key.table_name);
    if (table) table.primaryKey = key.columns;
  }
  return cache;
}

async function loadFunctionCache(sql: postgres.Sql): Promise<FunctionCache> {
  const rows = await sql<
    {
      name: string;
      arg_names: string[];
      arg_types: string[];
      defaults: number;
      returns_set: boolean;
      row_table: string | null;
    }[]
  >`
    select p.proname as name, coalesce(p.proargnames, '{}') as arg_names,
           array(select format_type(a.type, null) from unnest(p.proargtypes::oid[]) with ordinality
                 as a(type, position) order by a.position) as arg_types,
           p.pronargdefaults::integer as defaults, p.proretset as returns_set, rc.relname as row_table
    from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
    join pg_type t on t.oid = p.prorettype
    left join pg_class rc on rc.oid = t.typrelid and rc.relkind in ('r', 'v', 'p')
    where n.nspname = 'public' and p.prokind = 'f'`;
  return new Map(rows.map((row) => [row.name, {
    name: row.name,
    args: row.arg_types.map((type, index) => ({ name: row.arg_names[index], type })),
    defaults: row.defaults,
    returnsSet: row.returns_set,
    rowTable: row.row_table,
  }]));
}

function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function gatewayRefusal(message: string, hint: string): PostgrestRequestError {
  // The gateway answers before PostgREST; its body has no code, only message and hint.
  return new PostgrestRequestError(401, { code: null, message, details: null, hint });
}

interface Caller {
  role: string;
  claims: Record<string, unknown>;
}

export async function startPostgrestContractServer(
  options: ContractServerOptions,
): Promise<ContractServer> {
  const sql = postgres(options.databaseUrl, { max: 4, onnotice: () => {} });
  let schema: SchemaCache;
  let functions: FunctionCache;
  try {
    schema = await loadSchemaCache(sql);
    functions = await loadFunctionCache(sql);
  } catch (error) {
    await sql.end({ timeout: 5 });
    throw error;
  }
  const requests: RecordedRequest[] = [];

  async function authenticate(request: Request): Promise<Caller> {
    const apikey = request.headers.get("apikey");
    if (!apikey) {
      throw gatewayRefusal(
        "No API key found in request",
        "No `apikey` request header or url param was found.",
      );
    }
    if (!options.apiKeys.includes(apikey)) {
      throw gatewayRefusal("Invalid API key", "Double check your Supabase `anon` or `service_role` API key.");
    }
    const authorization = request.headers.get("authorization");
    if (authorization !== `Bearer ${apikey}`) {
      throw new PostgrestRequestError(401, {
        code: "PGRST301",
        message: "Authorization must be 'Bearer ' followed by the same key as apikey",
        details: authorization ? "the bearer token differs from apikey" : "no Authorization header",
        hint: null,
      });
    }
    const claims = await verifyJwt(options.jwtSecret, apikey);
    if (!claims) {
      throw new PostgrestRequestError(401, {
        code: "PGRST301",
        message: "JWSError JWSInvalidSignature",
        details: null,
        hint: null,
      });
    }
    return { role: typeof claims.role === "string" ? claims.role : "anon", claims };
  }

  function checkProfile(request: Request): void {
    const header = request.method === "GET" || request.method === "HEAD"
      ? "accept-profile"
      : "content-profile";
    const profile = request.headers.get(header);
    if (profile !== null && profile !== "public") {
      throw new PostgrestRequestError(406, {
        code: "PGRST106",
        message: "Invalid schema: " + profile,
        details: null,
        hint: "Only the following schemas are exposed: public, graphql_public",
      });
    }
  }

  async function readJsonBody(request: Request): Promise<unknown> {
    const contentType = request.headers.get("content-type") ?? "";
    if (!contentType.startsWith("application/json")) {
      throw new PostgrestRequestError(415, {
        code: "PGRST107",
        message: `Content-Type not acceptable: ${contentType || "(none)"}`,
        details: null,
        hint: null,
      });
    }
    try {
      return JSON.parse(await request.text());
    } catch {
      throw new PostgrestRequestError(400, {
        code: "PGRST102",
        message: "Empty or invalid json",
        details: null,
        hint: null,
      });
    }
  }

  function buildStatement(
    method: string,
    table: TableSchema,
    query: URLSearchParams,
    prefs: Preferences,
    body: unknown,
  ): SqlStatement {
    if (method === "GET") return selectStatement(table, query);
    if (method === "POST") return insertStatement(table, query, prefs, body);
    return updateStatement(table, query, prefs, body);
  }

  async function execute(caller: Caller, statement: SqlStatement): Promise<unknown[] | null> {
    return await executeBody(caller, statement) as unknown[] | null;
  }

  async function executeBody(caller: Caller, statement: SqlStatement): Promise<unknown> {
    try {
      return await sql.begin(async (tx) => {
        await tx.unsafe(`set local role "${caller.role.replaceAll('"', '""')}"`);
        await tx`select set_config('request.jwt.claims', ${JSON.stringify(caller.claims)}, true)`;
        const rows = await tx.unsafe(statement.text, statement.params);
        return statement.returnsBody ? (rows[0] as unknown as { body: unknown }).body : null;
      });
    } catch (error) {
      const { code, message, detail, hint } = error as Record<string, string | undefined>;
      if (typeof code !== "string" || !/^[0-9A-Z]{5}$/.test(code)) throw error;
      throw new PostgrestRequestError(statusForSqlState(code, caller.role === "anon"), {
        code,
        message: message ?? "",
        details: detail ?? null,
        hint: hint ?? null,
      });
    }
  }

  /** POST /rest/v1/rpc/<function>: the JSON body's keys are the named arguments; 200 with the
   * rows (a set-returning function) or the value, as PostgREST answers. */
  async function answerRpc(request: Request, name: string): Promise<Response> {
    if (request.method !== "POST") {
      return jsonResponse(405, {
        code: "PGRST117",
        message: `the contract server implements RPC by POST only, not ${request.method}`,
        details: null,
        hint: null,
      });
    }
    const caller = await authenticate(request);
    checkProfile(request);
    const body = await readJsonBody(request);
    const fn = findFunction(functions, name, body);
    const query = new URL(request.url).searchParams;
    return jsonResponse(200, await executeBody(caller, rpcStatement(fn, schema, query, body)));
  }

  async function answer(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const rpc = /^\/rest\/v1\/rpc\/([^/]+)$/.exec(url.pathname);
    if (rpc) return await answerRpc(request, decodeURIComponent(rpc[1]));
    const match = /^\/rest\/v1\/([^/]+)$/.exec(url.pathname);
    if (!match) {
      return jsonResponse(404, {
        code: "PGRST125",
        message: `Invalid path specified in request URL: ${url.pathname}`,
        details: null,
        hint: null,
      });
    }
    if (!["GET", "POST", "PATCH"].includes(request.method)) {
      return jsonResponse(405, {
        code: "PGRST117",
        message: `the contract server does not implement ${request.method}`,
        details: null,
        hint: null,
      });
    }
    const caller = await authenticate(request);
    checkProfile(request);
    const table = findTable(schema, decodeURIComponent(match[1]));
    const body = request.method === "GET" ? null : await readJsonBody(request);
    const prefs = parsePreferences(request.headers.get("prefer"));
    const rows = await execute(caller, buildStatement(request.method, table, url.searchParams, prefs, body));
    const applied = prefs.applied.length > 0 ? { "preference-applied": prefs.applied.join(", ") } : undefined;
    const count = rows?.length ?? 0;
    if ((request.headers.get("accept") ?? "").includes("application/vnd.pgrst.object+json")) {
      if (count !== 1) {
        throw new PostgrestRequestError(406, {
          code: "PGRST116",
          message: "JSON object requested, multiple (or no) rows returned",
          details: `The result contains ${count} rows`,
          hint: null,
        });
      }
      return jsonResponse(request.method === "POST" ? 201 : 200, rows![0], applied);
    }
    if (request.method === "GET") {
      return jsonResponse(200, rows, { "content-range": count > 0 ? `0-${count - 1}/*` : "*/*" });
    }
    const success = request.method === "POST" ? 201 : prefs.return === "representation" ? 200 : 204;
    if (rows === null) return new Response(null, { status: success, headers: applied });
    return jsonResponse(success, rows, applied);
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const url = new URL(request.url);
    const record: RecordedRequest = {
      method: request.method,
      path: url.pathname,
      query: [...url.searchParams],
      prefer: request.headers.get("prefer"),
      body: null,
      status: 0,
      errorCode: null,
    };
    requests.push(record);
    let response: Response;
    try {
      if (request.method !== "GET") record.body = JSON.parse(await request.clone().text() || "null");
    } catch {
      record.body = "(not JSON)";
    }
    try {
      if (contract.failWith !== null) {
        const failure: PostgrestErrorBody = {
          code: "PGRST000",
          message: "Could not connect to the database",
          details: null,
          hint: null,
        };
        throw new PostgrestRequestError(contract.failWith, failure);
      }
      response = await answer(request);
    } catch (error) {
      if (!(error instanceof PostgrestRequestError)) {
        response = jsonResponse(500, { code: "PGRSTX00", message: String(error), details: null, hint: null });
      } else {
        response = jsonResponse(error.status, error.body);
        record.errorCode = error.body.code;
      }
    }
    record.status = response.status;
    return response;
  });

  const { port } = server.addr as Deno.NetAddr;
  const contract: ContractServer = {
    url: `http://127.0.0.1:${port}`,
    requests,
    failWith: null,
    async close() {
      await server.shutdown();
      await sql.end({ timeout: 5 });
    },
  };
  return contract;
}

export interface ContractProject {
  server: ContractServer;
  serviceRoleKey: string;
  anonKey: string;
}

/** A contract server with a fresh JWT secret and the two keys a Supabase project has. */
export async function startContractProject(databaseUrl: string): Promise<ContractProject> {
  const jwtSecret = crypto.randomUUID() + crypto.randomUUID();
  const issuedAt = Math.floor(Date.now() / 1000);
  const claims = { iss: "supabase", ref: "contracttest", iat: issuedAt, exp: issuedAt + 3600 };
  const serviceRoleKey = await signJwt(jwtSecret, { ...claims, role: "service_role" });
  const anonKey = await signJwt(jwtSecret, { ...claims, role: "anon" });
  const server = await startPostgrestContractServer({
    databaseUrl,
    jwtSecret,
    apiKeys: [serviceRoleKey, anonKey],
  });
  return { server, serviceRoleKey, anonKey };
}
