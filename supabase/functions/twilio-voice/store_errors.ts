// What a StoreBackend throws. TurnStore retries a transient failure (the database or the network
// is briefly away) and gives up at once on a permanent one (a constraint the row breaks, a
// refused key): retrying those only burns the worker's time.

export class StoreError extends Error {
  /** SQLSTATE (e.g. 23503), PostgREST code (PGRST204), or a network error code. */
  readonly code: string;
  readonly permanent: boolean;
  /** HTTP status, for the REST backend. */
  readonly status: number | undefined;

  constructor(
    message: string,
    options: { code: string; permanent: boolean; status?: number; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.name = "StoreError";
    this.code = options.code;
    this.permanent = options.permanent;
    this.status = options.status;
  }
}

// SQLSTATE classes that name something wrong with the statement or the data, not the server's
// state: 22 data exception, 23 integrity constraint, 28 bad credentials, 42 syntax or access,
// 2B/0L/0P roles and grants. Everything else (08 connection, 40 rollback, 53 resources, 57
// operator intervention such as pg_terminate_backend, 58, XX) may succeed on a later try.
const PERMANENT_SQLSTATE_CLASSES = new Set(["22", "23", "28", "42", "2B", "0L", "0P"]);

export function isPermanentSqlState(sqlState: string): boolean {
  return PERMANENT_SQLSTATE_CLASSES.has(sqlState.slice(0, 2));
}

/** HTTP statuses worth retrying: timeouts, rate limits and server-side trouble. */
export function isTransientHttpStatus(status: number): boolean {
  return status === 0 || status === 408 || status === 429 || status >= 500;
}

export function asStoreError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new StoreError(message, { code: "UNKNOWN", permanent: false, cause: error });
}
