// StoreBackend over direct SQL (TURN_STORE=postgres, SUPABASE_DB_URL): for local runs and for
// users who run the bridge outside Supabase. The connection is the database owner's, so it is
// not subject to RLS, like the service role the rest backend uses.

import postgres from "postgres";
import type {
  CallEnd,
  CallRecord,
  CallStart,
  NumberOwner,
  OutboundSettings,
  RecordingStatus,
  StoreBackend,
  ToolCallRow,
  TransferOutcome,
  TurnRow,
  TwilioCallStatus,
} from "./store.ts";
import { isPermanentSqlState, StoreError } from "./store_errors.ts";
import {
  type AgentDbRow,
  agentFromRow,
  CALL_COLUMNS,
  type CallDbRow,
  callFromRow,
  latestPerItem,
  noCallRowError,
  type OutboundDbRow,
  outboundFromRow,
  type ToolCallDbRow,
  toolCallFromRow,
  toolCallToRow,
  type ToolDbRow,
  toolFromRow,
  type TurnDbRow,
  turnFromRow,
  turnToRow,
} from "./store_rows.ts";

export interface PostgresStoreOptions {
  /** Connections in the pool. The turn writer uses one; call-start lookups may use another. */
  maxConnections?: number;
  connectTimeoutSeconds?: number;
  /** Shown in pg_stat_activity; tests use a unique one to find (and kill) their connections. */
  applicationName?: string;
  /** How long a query may go unanswered before its pool is replaced (default 5 s). */
  queryTimeoutMs?: number;
}

// postgres.js's own error codes for a socket that failed, closed or never opened, plus the Node
// ones it passes through. All of them mean "try again later".
const CONNECTION_ERROR_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

export function storeErrorFromPostgres(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  const text = typeof message === "string" ? message : String(error);
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !CONNECTION_ERROR_CODES.has(code)) {
    return new StoreError(text, { code, permanent: isPermanentSqlState(code), cause: error });
  }
  if (typeof code === "string" && CONNECTION_ERROR_CODES.has(code)) {
    return new StoreError(text, { code, permanent: false, cause: error });
  }
  // postgres.js's other own codes (SASL_SIGNATURE_MISMATCH, MAX_PARAMETERS_EXCEEDED, ...) are
  // about the credentials or the statement: another try would fail the same way.
  if (typeof code === "string") {
    return new StoreError(text, { code, permanent: true, cause: error });
  }
  return new StoreError(text, { code: "UNKNOWN", permanent: false, cause: error });
}

// Under Deno, a query caught on a connection reset mid-write can stay unanswered forever and the
// pool with it (seen in turn_store_test's proxy test); past this the pool is replaced.
const DEFAULT_QUERY_TIMEOUT_MS = 5_000;

class PostgresStoreBackend implements StoreBackend {
  #sql: postgres.Sql;
  readonly #stale: postgres.Sql[] = [];
  readonly #queryTimeoutMs: number;

  constructor(private readonly databaseUrl: string, private readonly options: PostgresStoreOptions) {
    this.#queryTimeoutMs = options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    this.#sql = this.#connect();
  }

  #connect(): postgres.Sql {
    const { databaseUrl, options } = this;
    return postgres(databaseUrl, {
      max: options.maxConnections ?? 2,
      connect_timeout: options.connectTimeoutSeconds ?? 5,
      // Close idle sockets so a worker between calls holds no database connection.
      idle_timeout: 20,
      // Supavisor's transaction mode (port 6543) cannot keep prepared statements.
      prepare: false,
      // postgres.js reads pg_type for array types on every new connection; when the server kills
      // the connection during that read, its rejection is unhandled and would end the worker.
      // The store neither sends nor reads arrays.
      fetch_types: false,
      onnotice: () => {},
      connection: { application_name: options.applicationName ?? "twilio-voice" },
    });
  }

  /** Swap in a fresh pool. The stale one is ended by close(): ending a pool whose socket was
   * reset mid-write can raise an uncaught socket error under Deno, and close() is on the way out. */
  #renew(): void {
    this.#stale.push(this.#sql);
    this.#sql = this.#connect();
  }

  async #run<T>(query: () => Promise<T>): Promise<T> {
    let timer: number | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QueryTimeout()), this.#queryTimeoutMs);
    });
    const running = query();
    running.catch(() => {}); // a query abandoned for its timeout may still fail later
    try {
      return await Promise.race([running, hung]);
    } catch (error) {
      const failure = error instanceof QueryTimeout
        ? new StoreError(error.message, { code: "QUERY_TIMEOUT", permanent: false })
        : storeErrorFromPostgres(error);
      // After a connection failed, the pool is replaced rather than trusted to recover.
      if (failure.code === "QUERY_TIMEOUT" || CONNECTION_ERROR_CODES.has(failure.code)) this.#renew();
      throw failure;
    } finally {
      clearTimeout(timer);
    }
  }

  findNumberOwner(phoneNumber: string): Promise<NumberOwner | null> {
    return this.#run(async () => {
      const rows = await this.#sql<
        (AgentDbRow & { tenant_id: string; has_agent: boolean; tools: ToolDbRow[] })[]
      >`
        select n.tenant_id, a.tenant_id is not null as has_agent, a.instructions, a.voice,
               a.greeting, a.model, a.transcription_model, a.turn_detection,
               coalesce((
                 select jsonb_agg(jsonb_build_object(
                          'name', t.name, 'description', t.description, 'parameters', t.parameters,
                          'kind', t.kind, 'http_url', t.http_url, 'sql_function', t.sql_function,
                          'transfer_to', t.transfer_to, 'timeout_ms', t.timeout_ms) order by t.name)
                 from public.tenant_tools t where t.tenant_id = n.tenant_id and t.enabled
               ), '[]'::jsonb) as tools
        from public.tenant_phone_numbers n
        left join public.tenant_agents a on a.tenant_id = n.tenant_id
        where n.phone_number = ${phoneNumber}`;
      const row = rows[0];
      if (!row) return null;
      return {
        tenantId: row.tenant_id,
        agent: row.has_agent ? agentFromRow(row) : null,
        tools: row.tools.map(toolFromRow),
      };
    });
  }

  startCall(call: CallStart): Promise<void> {
    return this.#run(async () => {
      await this.#sql`
        insert into public.calls (call_sid, tenant_id, from_number, to_number, direction, outbound_context)
        values (${call.callSid}, ${call.tenantId}, ${call.fromNumber}, ${call.toNumber},
                ${call.direction ?? "inbound"},
                ${call.outboundContext ? this.#sql.json(call.outboundContext as postgres.JSONValue) : null})
        on conflict (call_sid) do nothing`;
    });
  }

  getCall(callSid: string): Promise<CallRecord | null> {
    return this.#run(async () => {
      const rows = await this.#sql<CallDbRow[]>`
        select call_sid, tenant_id, status, end_reason, handoff_count, usage, stream_seen_at,
               transfer_to, transfer_outcome, from_number, direction, outbound_context, metrics
        from public.calls where call_sid = ${callSid}`;
      return rows[0] ? callFromRow(rows[0]) : null;
    });
  }

  upsertTurns(rows: TurnRow[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    const payload = latestPerItem(rows).map(turnToRow);
    return this.#run(async () => {
      // One JSON parameter for the whole batch: one round trip, and no per-type array encoding.
      await this.#sql`
        insert into public.call_turns (tenant_id, call_sid, role, text, item_id, seq, interrupted)
        select tenant_id, call_sid, role, text, item_id, seq, interrupted
        from jsonb_to_recordset(${this.#sql.json(payload as unknown as postgres.JSONValue)}::jsonb)
          as r(tenant_id uuid, call_sid text, role text, text text, item_id text, seq integer,
               interrupted boolean)
        on conflict (call_sid, item_id) do update
          set role = excluded.role, text = excluded.text, seq = excluded.seq,
              interrupted = excluded.interrupted`;
    });
  }

  finishCall(end: CallEnd): Promise<void> {
    return this.#run(async () => {
      const endedAt = end.endedAt ?? null;
      const stamp = end.status === "handed_off" ? "handed_off_at" : "ended_at";
      const rows = await this.#sql`
        update public.calls
        set ${this.#sql(stamp)} = coalesce(${endedAt}::timestamptz, now()), status = ${end.status},
            end_reason = ${end.endReason}, usage = ${this.#sql.json(end.usage)}::jsonb,
            metrics = coalesce(${
        end.metrics ? this.#sql.json(end.metrics as unknown as Record<string, number>) : null
      }::jsonb, metrics),
            transfer_to = coalesce(${end.transferTo ?? null}::text, transfer_to)
        where call_sid = ${end.callSid}
        returning call_sid`;
      if (rows.length === 0) throw noCallRowError(end.callSid);
    });
  }

  claimCallStream(
    callSid: string,
    tenantId: string,
    stream: number,
    worker?: string,
  ): Promise<CallRecord | null> {
    return this.#run(async () => {
      const rows = await this.#sql<CallDbRow[]>`
        select ${this.#sql.unsafe(CALL_COLUMNS)}
        from public.claim_call_stream(${callSid}, ${tenantId}::uuid, ${stream}::integer,
                                      ${worker ?? null}::uuid)`;
      return rows[0] ? callFromRow(rows[0]) : null;
    });
  }

  renewWorkerLease(workerId: string): Promise<void> {
    return this.#run(async () => {
      await this.#sql`select public.renew_worker_lease(${workerId}::uuid)`;
    });
  }

  releaseWorkerLease(workerId: string): Promise<void> {
    return this.#run(async () => {
      await this.#sql`select public.release_worker_lease(${workerId}::uuid)`;
    });
  }

  resumeCrashedCall(call: CallRecord, lapseMs: number, endReason: string): Promise<CallRecord | null> {
    return this.#run(async () => {
      const rows = await this.#sql<CallDbRow[]>`
        select ${this.#sql.unsafe(CALL_COLUMNS)}
        from public.resume_crashed_call(${call.callSid}, ${call.handoffCount}::integer, ${lapseMs}::integer,
                                        ${endReason})`;
      return rows[0] ? callFromRow(rows[0]) : null;
    });
  }

  touchCallStream(callSid: string, stream: number): Promise<void> {
    return this.#run(async () => {
      await this.#sql`
        update public.calls set stream_seen_at = now()
        where call_sid = ${callSid} and status = 'in_progress' and handoff_count = ${stream}`;
    });
  }

  finalizeStaleCalls(): Promise<number> {
    return this.#run(async () => {
      const [row] = await this.#sql<{ finalized: number }[]>`
        select public.finalize_stale_calls() as finalized`;
      return row.finalized;
    });
  }

  loadTurns(callSid: string): Promise<TurnRow[]> {
    return this.#run(async () => {
      const rows = await this.#sql<TurnDbRow[]>`
        select tenant_id, call_sid, role, text, item_id, seq, interrupted
        from public.call_turns where call_sid = ${callSid}
        order by seq, id`;
      return rows.map(turnFromRow);
    });
  }

  toolSigningKey(tenantId: string): Promise<string> {
    return this.#run(async () => {
      // Created on first use; a concurrent first use keeps whichever key was inserted first.
      const [row] = await this.#sql<{ signing_key: string }[]>`
        with created as (
          insert into public.tenant_tool_keys (tenant_id) values (${tenantId}::uuid)
          on conflict (tenant_id) do nothing
          returning signing_key
        )
        select signing_key from created
        union all
        select signing_key from public.tenant_tool_keys where tenant_id = ${tenantId}::uuid
        limit 1`;
      return row.signing_key;
    });
  }

  upsertToolCalls(rows: ToolCallRow[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    const payload = rows.map(toolCallToRow);
    return this.#run(async () => {
      await this.#sql`
        insert into public.call_tool_calls
          (tenant_id, call_sid, seq, call_id, name, arguments, output, status, duration_ms)
        select tenant_id, call_sid, seq, call_id, name, arguments, output, status, duration_ms
        from jsonb_to_recordset(${this.#sql.json(payload as unknown as postgres.JSONValue)}::jsonb)
          as r(tenant_id uuid, call_sid text, seq integer, call_id text, name text, arguments jsonb,
               output text, status text, duration_ms integer)
        on conflict (call_sid, call_id) do nothing`;
    });
  }

  loadToolCalls(callSid: string): Promise<ToolCallRow[]> {
    return this.#run(async () => {
      const rows = await this.#sql<ToolCallDbRow[]>`
        select tenant_id, call_sid, seq, call_id, name, arguments, output, status, duration_ms
        from public.call_tool_calls where call_sid = ${callSid}
        order by seq, id`;
      return rows.map(toolCallFromRow);
    });
  }

  recordTransferOutcome(
    callSid: string,
    outcome: TransferOutcome,
    comeBack: { endReason: string } | null,
  ): Promise<CallRecord | null> {
    return this.#run(async () => {
      // Compare-and-set on a transferred call without an outcome: a replayed callback does nothing.
      const rows = await this.#sql<CallDbRow[]>`
        update public.calls
        set transfer_outcome = ${outcome},
            status = case when ${comeBack !== null} then 'handed_off' else status end,
            end_reason = coalesce(${comeBack?.endReason ?? null}::text, end_reason),
            handed_off_at = case when ${comeBack !== null} then now() else handed_off_at end,
            ended_at = case when ${comeBack !== null} then null else ended_at end
        where call_sid = ${callSid} and status = 'completed' and transfer_to is not null
          and transfer_outcome is null
        returning call_sid, tenant_id, status, end_reason, handoff_count, usage, stream_seen_at,
                  transfer_to, transfer_outcome, from_number, direction, outbound_context, metrics`;
      return rows[0] ? callFromRow(rows[0]) : null;
    });
  }

  recordTwilioStatus(update: TwilioCallStatus): Promise<boolean> {
    return this.#run(async () => {
      const [row] = await this.#sql<{ moved: boolean }[]>`
        select public.record_twilio_call_status(${update.callSid}, ${update.status},
          ${update.durationS}::integer, ${update.answeredBy}::text) as moved`;
      return row.moved;
    });
  }

  outboundSettings(tenantId: string): Promise<OutboundSettings> {
    return this.#run(async () => {
      const [row] = await this.#sql<OutboundDbRow[]>`
        select outbound_greeting, voicemail_action, voicemail_message, record_calls
        from public.tenant_agents where tenant_id = ${tenantId}`;
      return outboundFromRow(row);
    });
  }

  tenantNumbers(tenantId: string): Promise<string[]> {
    return this.#run(async () => {
      const rows = await this.#sql<{ phone_number: string }[]>`
        select phone_number from public.tenant_phone_numbers where tenant_id = ${tenantId}
        order by phone_number`;
      return rows.map((row) => row.phone_number);
    });
  }

  recordRecording(update: RecordingStatus): Promise<boolean> {
    return this.#run(async () => {
      const [row] = await this.#sql<{ written: boolean }[]>`
        select public.record_call_recording(${update.callSid}, ${update.recordingSid}, ${update.status},
          ${update.channels}::integer, ${update.durationS}::integer) as written`;
      return row.written;
    });
  }

  async close(): Promise<void> {
    // Under Deno, a connection the server killed can stay half-closed and make end() wait for
    // its whole timeout; a worker that is closing has no time to spare.
    await Promise.all([this.#sql, ...this.#stale].map((pool) => pool.end({ timeout: 1 }).catch(() => {})));
  }
}

class QueryTimeout extends Error {
  constructor() {
    super("the database did not answer in time");
  }
}

export function createPostgresBackend(
  databaseUrl: string,
  options: PostgresStoreOptions = {},
): StoreBackend {
  return new PostgresStoreBackend(databaseUrl, options);
}
