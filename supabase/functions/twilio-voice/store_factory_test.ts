import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { createStoreBackend, StoreConfigError, type StoreSettings } from "./store_factory.ts";
import { testDatabaseUrl } from "./testing/test_database.ts";

const none: StoreSettings = {
  turnStore: "rest",
  supabaseUrl: null,
  supabaseServiceRoleKey: null,
  supabaseDbUrl: null,
};

async function refusal(settings: StoreSettings): Promise<string> {
  let message = "";
  await rejects(createStoreBackend(settings), (error: unknown) => {
    assert(error instanceof StoreConfigError, String(error));
    message = error.message;
    return true;
  });
  return message;
}

Deno.test("store factory: rest needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY, named", async () => {
  assertEquals(await refusal(none), "SUPABASE_URL is not set (needed by TURN_STORE=rest)");
  assertEquals(
    await refusal({ ...none, supabaseUrl: "https://abc.supabase.co" }),
    "SUPABASE_SERVICE_ROLE_KEY is not set (needed by TURN_STORE=rest)",
  );
});

Deno.test("store factory: postgres needs SUPABASE_DB_URL, and never echoes it", async () => {
  assertEquals(
    await refusal({ ...none, turnStore: "postgres" }),
    "SUPABASE_DB_URL is not set (needed by TURN_STORE=postgres)",
  );
  const message = await refusal({
    ...none,
    turnStore: "postgres",
    supabaseDbUrl: "mysql://root:hunter2@db/x",
  });
  assert(!message.includes("hunter2"), message);
});

Deno.test("store factory: refuses an unknown TURN_STORE", async () => {
  const settings = { ...none, turnStore: "sqlite" } as unknown as StoreSettings;
  assertEquals(await refusal(settings), 'TURN_STORE must be "rest" or "postgres", not "sqlite"');
});

Deno.test("store factory: builds the rest backend without touching the network", async () => {
  const backend = await createStoreBackend({
    ...none,
    supabaseUrl: "http://127.0.0.1:9",
    supabaseServiceRoleKey: "k",
  });
  assertEquals(typeof backend.upsertTurns, "function");
  await backend.close();
});

Deno.test("store factory: builds a postgres backend that reaches the database", {
  ignore: !testDatabaseUrl(),
}, async () => {
  const backend = await createStoreBackend({
    ...none,
    turnStore: "postgres",
    supabaseDbUrl: testDatabaseUrl()!,
  });
  try {
    assertEquals(await backend.getCall("CA" + "0".repeat(32)), null);
  } finally {
    await backend.close();
  }
});
