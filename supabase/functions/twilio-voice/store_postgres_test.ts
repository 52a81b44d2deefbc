import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { createPostgresBackend, storeErrorFromPostgres } from "./store_postgres.ts";
import { StoreError } from "./store_errors.ts";
import { registerStoreConformance } from "./testing/store_conformance.ts";
import { testDatabaseUrl } from "./testing/test_database.ts";

registerStoreConformance("postgres store", () => {
  const backend = createPostgresBackend(testDatabaseUrl()!);
  return Promise.resolve({ backend, close: () => backend.close() });
});

Deno.test("postgres store: a wrong password is a permanent error", {
  ignore: !testDatabaseUrl(),
}, async () => {
  const url = new URL(testDatabaseUrl()!);
  url.password = "not-the-password";
  const backend = createPostgresBackend(url.toString());
  try {
    await rejects(backend.getCall("CA" + "0".repeat(32)), (error: unknown) => {
      assert(error instanceof StoreError);
      assertEquals([error.code, error.permanent], ["28P01", true]);
      assert(!error.message.includes("not-the-password"));
      return true;
    });
  } finally {
    await backend.close();
  }
});

Deno.test("postgres store: an unreachable server is a transient error", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  const backend = createPostgresBackend(`postgresql://u:p@127.0.0.1:${port}/db`);
  try {
    await rejects(backend.getCall("CA" + "0".repeat(32)), (error: unknown) => {
      assert(error instanceof StoreError);
      assertEquals(error.permanent, false, `${error.code}: ${error.message}`);
      return true;
    });
  } finally {
    await backend.close();
  }
});

Deno.test("postgres store: sorts server errors into transient and permanent", () => {
  const sorted = [
    { code: "57P01", message: "terminating connection due to administrator command" },
    { code: "40001", message: "could not serialize access" },
    { code: "23505", message: "duplicate key" },
    { code: "42501", message: "permission denied" },
    { code: "CONNECTION_CLOSED", message: "write CONNECTION_CLOSED 127.0.0.1:5432" },
    { code: "SASL_SIGNATURE_MISMATCH", message: "The server did not return the correct signature" },
  ].map((error) => [error.code, storeErrorFromPostgres(error).permanent]);
  assertEquals(sorted, [
    ["57P01", false],
    ["40001", false],
    ["23505", true],
    ["42501", true],
    ["CONNECTION_CLOSED", false],
    ["SASL_SIGNATURE_MISMATCH", true],
  ]);
});
