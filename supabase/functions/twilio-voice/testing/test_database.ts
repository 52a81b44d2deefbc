// The real Postgres the store tests run against: TEST_DATABASE_URL, a database with the
// project's migrations applied (tests/test_twilio_voice_function.py passes it). Every test seeds
// its own tenant, number and calls under fresh random ids, so the suite can run again and again
// against the same database.

import postgres from "postgres";

export const TEST_DATABASE_URL_MISSING =
  "TEST_DATABASE_URL is not set: the store tests need a real Postgres with the migrations " +
  "applied. Run them through tests/test_twilio_voice_function.py, or set TEST_DATABASE_URL.";

export function testDatabaseUrl(): string | undefined {
  return Deno.env.get("TEST_DATABASE_URL") || undefined;
}

/** Registers one test that fails when there is no database, so a run without one is red, not
 * green with everything skipped. Returns whether the database tests can run. */
export function requireTestDatabase(suite: string): boolean {
  const url = testDatabaseUrl();
  if (!url) {
    Deno.test(`${suite}: TEST_DATABASE_URL is set`, () => {
      throw new Error(TEST_DATABASE_URL_MISSING);
    });
  }
  return url !== undefined;
}

export type Sql = postgres.Sql;

/** An owner connection for seeding and for checking what the backends wrote. */
export async function withAdmin<T>(use: (sql: Sql) => Promise<T>): Promise<T> {
  const url = testDatabaseUrl();
  if (!url) throw new Error(TEST_DATABASE_URL_MISSING);
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await use(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function randomDigits(count: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(count));
  return [...bytes].map((b) => String(b % 10)).join("");
}

/** A CallSid of Twilio's shape: CA followed by 32 hex digits. */
export function newCallSid(): string {
  return "CA" + crypto.randomUUID().replaceAll("-", "");
}

/** A random E.164 number in +1, unlikely to repeat across runs. */
export function newPhoneNumber(): string {
  return "+1" + randomDigits(12);
}

export interface SeededTenant {
  tenantId: string;
  phoneNumber: string;
}

export async function seedTenant(
  sql: Sql,
  agent?: { greeting?: string; voice?: string; turnDetection?: Record<string, unknown> },
): Promise<SeededTenant> {
  const phoneNumber = newPhoneNumber();
  const [tenant] = await sql<{ id: string }[]>`
    insert into public.tenants (name) values (${"store-test-" + crypto.randomUUID()})
    returning id`;
  await sql`
    insert into public.tenant_phone_numbers (phone_number, tenant_id)
    values (${phoneNumber}, ${tenant.id})`;
  if (agent) {
    await sql`
      insert into public.tenant_agents (tenant_id, greeting, voice, turn_detection)
      values (${tenant.id}, ${agent.greeting ?? null}, ${agent.voice ?? null},
              ${agent.turnDetection ? sql.json(agent.turnDetection as postgres.JSONValue) : null})`;
  }
  return { tenantId: tenant.id, phoneNumber };
}

export async function seedCall(sql: Sql, tenant: SeededTenant): Promise<string> {
  const callSid = newCallSid();
  await sql`
    insert into public.calls (call_sid, tenant_id, to_number)
    values (${callSid}, ${tenant.tenantId}, ${tenant.phoneNumber})`;
  return callSid;
}

export interface StoredTurn {
  item_id: string;
  role: string;
  text: string;
  seq: number;
  interrupted: boolean;
  tenant_id: string;
}

export async function storedTurns(sql: Sql, callSid: string): Promise<StoredTurn[]> {
  const rows = await sql<StoredTurn[]>`
    select item_id, role, text, seq, interrupted, tenant_id
    from public.call_turns where call_sid = ${callSid} order by seq, id`;
  // Plain objects in a plain array, so deep equality does not trip over postgres.js's Result.
  return rows.map((row) => ({ ...row }));
}
