// What the tool tests call: a tenant's HTTP tool server that verifies the signature as a tenant's
// receiver would (the README's recipe), and a tenant's SQL tool over a table under RLS.

import type { Sql } from "./test_database.ts";

/** The receiver's check: recompute v1=HMAC-SHA256(key, timestamp + "." + body), compare in
 * constant time, and refuse a timestamp older than five minutes. */
export async function verifyToolSignature(
  key: string,
  headers: Headers,
  body: string,
  nowS = Math.floor(Date.now() / 1000),
): Promise<boolean> {
  const timestamp = headers.get("x-supactl-timestamp") ?? "";
  const signature = headers.get("x-supactl-signature") ?? "";
  if (!/^[0-9]+$/.test(timestamp) || Math.abs(nowS - Number(timestamp)) > 300) return false;
  const hmac = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  const hex = signature.startsWith("v1=") ? signature.slice(3) : "";
  if (!/^[0-9a-f]{64}$/.test(hex)) return false;
  const mac = new Uint8Array(hex.match(/../g)!.map((byte) => parseInt(byte, 16)));
  // crypto.subtle.verify compares in constant time.
  return await crypto.subtle.verify("HMAC", hmac, mac, new TextEncoder().encode(`${timestamp}.${body}`));
}

export interface ToolServerRequest {
  path: string;
  body: Record<string, unknown>;
  verified: boolean;
}

export interface ToolServer {
  url: string;
  requests: ToolServerRequest[];
  close(): Promise<void>;
}

/** Routes: /lookup (JSON), /text, /slow (answers after 2 s), /big (100 KB), /redirect (302 to
 * /lookup), /fail (500). Every request's signature is checked against `key()`. */
export function startToolServer(key: () => Promise<string> | string): ToolServer {
  const requests: ToolServerRequest[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const path = new URL(request.url).pathname;
    const text = await request.text();
    const verified = await verifyToolSignature(await key(), request.headers, text);
    requests.push({ path, body: JSON.parse(text), verified });
    if (!verified) return new Response("bad signature", { status: 401 });
    switch (path) {
      case "/lookup":
        return Response.json({ order: JSON.parse(text).arguments.order ?? null, status: "shipped" });
      case "/text":
        return new Response("The shop opens at nine.", { headers: { "content-type": "text/plain" } });
      case "/slow":
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        return Response.json({ late: true });
      case "/big":
        return new Response("x".repeat(100 * 1024));
      case "/redirect":
        return new Response(null, { status: 302, headers: { location: "/lookup" } });
      default:
        return new Response("boom", { status: 500 });
    }
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}

/** tooltest.find_order(args jsonb): the caller's tenant's orders with ref = args.ref, under RLS
 * (SECURITY INVOKER), and tooltest.slow_tool, which sleeps past any short timeout. */
export async function createSqlTools(sql: Sql): Promise<void> {
  await sql.unsafe(`
    create schema if not exists tooltest;
    grant usage on schema tooltest to authenticated;
    create table if not exists tooltest.orders (tenant_id uuid not null, ref text not null, status text not null);
    alter table tooltest.orders enable row level security;
    grant select on tooltest.orders to authenticated;
    drop policy if exists orders_own on tooltest.orders;
    create policy orders_own on tooltest.orders for select to authenticated
      using (tenant_id = (select public.current_tenant_id()));
    create or replace function tooltest.find_order(args jsonb) returns jsonb
      language sql stable security invoker set search_path = ''
      as $$ select jsonb_build_object(
              'orders', coalesce(jsonb_agg(jsonb_build_object('ref', o.ref, 'status', o.status)), '[]'::jsonb),
              'role', current_user,
              'call_sid', current_setting('request.jwt.claims', true)::jsonb ->> 'call_sid')
            from tooltest.orders o where o.ref = args ->> 'ref' $$;
    create or replace function tooltest.slow_tool(args jsonb) returns jsonb
      language sql volatile security invoker set search_path = ''
      as $$ select jsonb_build_object('slept', pg_catalog.pg_sleep(5) is not null) $$;
    grant execute on function tooltest.find_order(jsonb), tooltest.slow_tool(jsonb) to authenticated;
  `);
}

export async function seedOrder(sql: Sql, tenantId: string, ref: string, status: string): Promise<void> {
  await sql`insert into tooltest.orders (tenant_id, ref, status) values (${tenantId}::uuid, ${ref}, ${status})`;
}
