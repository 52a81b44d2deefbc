// Picks the StoreBackend the configuration asks for (TURN_STORE=rest|postgres, default rest).
// Backends are imported on demand so the deployed function (rest) never loads the Postgres
// driver, and a local run (postgres) never loads supabase-js.

import type { Config } from "./config.ts";
import type { StoreBackend } from "./store.ts";

export type StoreSettings = Pick<
  Config,
  "turnStore" | "supabaseUrl" | "supabaseServiceRoleKey" | "supabaseDbUrl"
>;

export class StoreConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StoreConfigError";
  }
}

// Never quote the values: SUPABASE_DB_URL carries a password, the service role key is a secret.
function requireSetting(value: string | null | undefined, variable: string, kind: string): string {
  if (!value) throw new StoreConfigError(`${variable} is not set (needed by TURN_STORE=${kind})`);
  return value;
}

export async function createStoreBackend(settings: StoreSettings): Promise<StoreBackend> {
  const kind: string = settings.turnStore ?? "rest";
  if (kind === "rest") {
    const url = requireSetting(settings.supabaseUrl, "SUPABASE_URL", kind);
    if (!/^https?:\/\/[^/]+/i.test(url)) {
      throw new StoreConfigError(
        "SUPABASE_URL must be the project's http(s) URL, e.g. https://REF.supabase.co",
      );
    }
    const key = requireSetting(settings.supabaseServiceRoleKey, "SUPABASE_SERVICE_ROLE_KEY", kind);
    const { createRestBackend } = await import("./store_rest.ts");
    return createRestBackend(url, key);
  }
  if (kind === "postgres") {
    const url = requireSetting(settings.supabaseDbUrl, "SUPABASE_DB_URL", kind);
    if (!/^postgres(ql)?:\/\//i.test(url)) {
      throw new StoreConfigError("SUPABASE_DB_URL must be a postgresql:// connection string");
    }
    const { createPostgresBackend } = await import("./store_postgres.ts");
    return createPostgresBackend(url);
  }
  throw new StoreConfigError(`TURN_STORE must be "rest" or "postgres", not ${JSON.stringify(kind)}`);
}
