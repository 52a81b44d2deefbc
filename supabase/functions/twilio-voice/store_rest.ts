// StoreBackend over PostgREST with supabase-js and the service role key (TURN_STORE=rest, the
// default): what the deployed function uses, since the platform sets SUPABASE_URL and
// SUPABASE_SERVICE_ROLE_KEY for every Edge Function.

import { createClient, type SupabaseClient } from "@supabase/supabase-js";
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
import { isTransientHttpStatus, StoreError } from "./store_errors.ts";
import {
  AGENT_COLUMNS,
  type AgentDbRow,
  agentFromRow,
  CALL_COLUMNS,
  type CallDbRow,
  callFromRow,
  latestPerItem,
  noCallRowError,
  type OutboundDbRow,
  outboundFromRow,
  TOOL_CALL_COLUMNS,
  TOOL_COLUMNS,
  type ToolCallDbRow,
  toolCallFromRow,
  toolCallToRow,
  type ToolDbRow,
  toolFromRow,
  TURN_COLUMNS,
  type TurnDbRow,
  turnFromRow,
  turnToRow,
} from "./store_rows.ts";

export interface RestStoreOptions {
  /** Abandon a request that has not answered by then (a hung socket would stall the writer). */
  requestTimeoutMs?: number;
  /** For tests; defaults to the global fetch. */
  fetch?: typeof fetch;
}

interface PostgrestFailure {
  code?: string;
  message?: string;
  details?: string | null;
  hint?: string | null;
}

export function storeErrorFromPostgrest(status: number, error: PostgrestFailure): StoreError {
  // supabase-js reports a failed fetch (refused, reset, timed out) as status 0 with an empty code.
  const code = error.code || (status === 0 ? "FETCH_FAILED" : `HTTP_${status}`);
  // Only code and message: supabase-js puts a JS stack into `details` for a failed fetch, and
  // PostgREST's `details`/`hint` quote row values (a caller's number) — neither belongs in a log.
  return new StoreError(error.message ?? "request failed", {
    code,
    status,
    permanent: !isTransientHttpStatus(status),
  });
}

function timeoutFetch(base: typeof fetch, timeoutMs: number): typeof fetch {
  return (input, init) => {
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    return base(input, { ...init, signal });
  };
}

class RestStoreBackend implements StoreBackend {
  readonly #client: SupabaseClient;

  constructor(supabaseUrl: string, serviceRoleKey: string, options: RestStoreOptions) {
    this.#client = createClient(supabaseUrl, serviceRoleKey, {
      // A server-side client: no session to keep, refresh or pick up from a URL.
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      global: {
        fetch: timeoutFetch(options.fetch ?? fetch, options.requestTimeoutMs ?? 10_000),
      },
    });
  }

  async findNumberOwner(phoneNumber: string): Promise<NumberOwner | null> {
    const owner = await this.#client.from("tenant_phone_numbers").select("tenant_id")
      .eq("phone_number", phoneNumber).maybeSingle<{ tenant_id: string }>();
    if (owner.error) throw storeErrorFromPostgrest(owner.status, owner.error);
    if (!owner.data) return null;
    const agent = await this.#client.from("tenant_agents").select(AGENT_COLUMNS)
      .eq("tenant_id", owner.data.tenant_id).maybeSingle<AgentDbRow>();
    if (agent.error) throw storeErrorFromPostgrest(agent.status, agent.error);
    const tools = await this.#client.from("tenant_tools").select(TOOL_COLUMNS)
      .eq("tenant_id", owner.data.tenant_id).eq("enabled", true).order("name").returns<ToolDbRow[]>();
    if (tools.error) throw storeErrorFromPostgrest(tools.status, tools.error);
    return {
      tenantId: owner.data.tenant_id,
      agent: agent.data ? agentFromRow(agent.data) : null,
      tools: (tools.data ?? []).map(toolFromRow),
    };
  }

  async startCall(call: CallStart): Promise<void> {
    const { error, status } = await this.#client.from("calls").upsert({
      call_sid: call.callSid,
      tenant_id: call.tenantId,
      from_number: call.fromNumber,
      to_number: call.toNumber,
      direction: call.direction ?? "inbound",
      outbound_context: call.outboundContext ?? null,
    }, { onConflict: "call_sid", ignoreDuplicates: true });
    if (error) throw storeErrorFromPostgrest(status, error);
  }

  async getCall(callSid: string): Promise<CallRecord | null> {
    const { data, error, status } = await this.#client.from("calls").select(CALL_COLUMNS)
      .eq("call_sid", callSid).maybeSingle<CallDbRow>();
    if (error) throw storeErrorFromPostgrest(status, error);
    return data ? callFromRow(data) : null;
  }

  async upsertTurns(rows: TurnRow[]): Promise<void> {
    if (rows.length === 0) return;
    const { error, status } = await this.#client.from("call_turns")
      .upsert(latestPerItem(rows).map(turnToRow), { onConflict: "call_sid,item_id" });
    if (error) throw storeErrorFromPostgrest(status, error);
  }

  async finishCall(end: CallEnd): Promise<void> {
    const { data, error, status } = await this.#client.from("calls").update({
      [end.status === "handed_off" ? "handed_off_at" : "ended_at"]: (end.endedAt ?? new Date()).toISOString(),
      status: end.status,
      end_reason: end.endReason,
      usage: end.usage,
      ...(end.metrics !== undefined ? { metrics: end.metrics } : {}),
      ...(end.transferTo !== undefined ? { transfer_to: end.transferTo } : {}),
    }).eq("call_sid", end.callSid).select("call_sid");
    if (error) throw storeErrorFromPostgrest(status, error);
    if (!data || data.length === 0) throw noCallRowError(end.callSid);
  }

  // The interface's signature, not restated: the claim names this worker when it has a lease.
  claimCallStream: StoreBackend["claimCallStream"] = (callSid, tenantId, stream, worker) =>
    this.#callRowRpc("claim_call_stream", {
      p_call_sid: callSid,
      p_tenant_id: tenantId,
      p_stream: stream,
      p_worker_id: worker ?? null,
    });

  async renewWorkerLease(workerId: string): Promise<void> {
    const { error, status } = await this.#client.rpc("renew_worker_lease", { p_worker_id: workerId });
    if (error) throw storeErrorFromPostgrest(status, error);
  }

  async releaseWorkerLease(workerId: string): Promise<void> {
    const { error, status } = await this.#client.rpc("release_worker_lease", { p_worker_id: workerId });
    if (error) throw storeErrorFromPostgrest(status, error);
  }

  resumeCrashedCall(call: CallRecord, lapseMs: number, endReason: string): Promise<CallRecord | null> {
    return this.#callRowRpc("resume_crashed_call", {
      p_call_sid: call.callSid,
      p_handoff_count: call.handoffCount,
      p_lapse_ms: lapseMs,
      p_end_reason: endReason,
    });
  }

  /** A function that `returns setof public.calls`: PostgREST answers with the rows, none when the
   * function changed nothing. */
  async #callRowRpc(name: string, args: Record<string, unknown>): Promise<CallRecord | null> {
    const { data, error, status } = await this.#client.rpc(name, args).select(CALL_COLUMNS);
    if (error) throw storeErrorFromPostgrest(status, error);
    const [row] = (data ?? []) as unknown as CallDbRow[];
    return row ? callFromRow(row) : null;
  }

  async touchCallStream(callSid: string, stream: number): Promise<void> {
    // The worker's clock rather than the database's: PostgREST cannot say now() in an update.
    // Workers run NTP-synced; the sweep's bound (minutes) dwarfs any skew.
    const { error, status } = await this.#client.from("calls")
      .update({ stream_seen_at: new Date().toISOString() })
      .eq("call_sid", callSid).eq("status", "in_progress").eq("handoff_count", stream);
    if (error) throw storeErrorFromPostgrest(status, error);
  }

  async finalizeStaleCalls(): Promise<number> {
    const { data, error, status } = await this.#client.rpc("finalize_stale_calls");
    if (error) throw storeErrorFromPostgrest(status, error);
    return typeof data === "number" ? data : 0;
  }

  async loadTurns(callSid: string): Promise<TurnRow[]> {
    const { data, error, status } = await this.#client.from("call_turns").select(TURN_COLUMNS)
      .eq("call_sid", callSid).order("seq").order("id").returns<TurnDbRow[]>();
    if (error) throw storeErrorFromPostgrest(status, error);
    return (data ?? []).map(turnFromRow);
  }

  async toolSigningKey(tenantId: string): Promise<string> {
    // Created on first use; a concurrent first use keeps whichever key was inserted first.
    const created = await this.#client.from("tenant_tool_keys")
      .upsert({ tenant_id: tenantId }, { onConflict: "tenant_id", ignoreDuplicates: true });
    if (created.error) throw storeErrorFromPostgrest(created.status, created.error);
    const { data, error, status } = await this.#client.from("tenant_tool_keys").select("signing_key")
      .eq("tenant_id", tenantId).single<{ signing_key: string }>();
    if (error) throw storeErrorFromPostgrest(status, error);
    return data.signing_key;
  }

  async upsertToolCalls(rows: ToolCallRow[]): Promise<void> {
    if (rows.length === 0) return;
    const { error, status } = await this.#client.from("call_tool_calls")
      .upsert(rows.map(toolCallToRow), { onConflict: "call_sid,call_id", ignoreDuplicates: true });
    if (error) throw storeErrorFromPostgrest(status, error);
  }

  async loadToolCalls(callSid: string): Promise<ToolCallRow[]> {
    const { data, error, status } = await this.#client.from("call_tool_calls").select(TOOL_CALL_COLUMNS)
      .eq("call_sid", callSid).order("seq").order("id").returns<ToolCallDbRow[]>();
    if (error) throw storeErrorFromPostgrest(status, error);
    return (data ?? []).map(toolCallFromRow);
  }

  async recordTransferOutcome(
    callSid: string,
    outcome: TransferOutcome,
    comeBack: { endReason: string } | null,
  ): Promise<CallRecord | null> {
    const changes: Record<string, unknown> = { transfer_outcome: outcome };
    if (comeBack !== null) {
      Object.assign(changes, {
        status: "handed_off",
        end_reason: comeBack.endReason,
        handed_off_at: new Date().toISOString(),
        ended_at: null,
      });
    }
    // Compare-and-set on a transferred call without an outcome: a replayed callback does nothing.
    const { data, error, status } = await this.#client.from("calls").update(changes)
      .eq("call_sid", callSid).eq("status", "completed").not("transfer_to", "is", null)
      .is("transfer_outcome", null).select(CALL_COLUMNS).returns<CallDbRow[]>();
    if (error) throw storeErrorFromPostgrest(status, error);
    const [row] = data ?? [];
    return row ? callFromRow(row) : null;
  }

  async recordTwilioStatus(update: TwilioCallStatus): Promise<boolean> {
    const { data, error, status } = await this.#client.rpc("record_twilio_call_status", {
      p_call_sid: update.callSid,
      p_status: update.status,
      p_duration_s: update.durationS,
      p_answered_by: update.answeredBy,
    });
    if (error) throw storeErrorFromPostgrest(status, error);
    return data === true;
  }

  async outboundSettings(tenantId: string): Promise<OutboundSettings> {
    const { data, error, status } = await this.#client.from("tenant_agents")
      .select("outbound_greeting,voicemail_action,voicemail_message,record_calls").eq("tenant_id", tenantId)
      .maybeSingle<OutboundDbRow>();
    if (error) throw storeErrorFromPostgrest(status, error);
    return outboundFromRow(data ?? undefined);
  }

  async tenantNumbers(tenantId: string): Promise<string[]> {
    const { data, error, status } = await this.#client.from("tenant_phone_numbers").select("phone_number")
      .eq("tenant_id", tenantId).order("phone_number").returns<{ phone_number: string }[]>();
    if (error) throw storeErrorFromPostgrest(status, error);
    return (data ?? []).map((row) => row.phone_number);
  }

  async recordRecording(update: RecordingStatus): Promise<boolean> {
    const { data, error, status } = await this.#client.rpc("record_call_recording", {
      p_call_sid: update.callSid,
      p_recording_sid: update.recordingSid,
      p_status: update.status,
      p_channels: update.channels,
      p_duration_s: update.durationS,
    });
    if (error) throw storeErrorFromPostgrest(status, error);
    return data === true;
  }

  close(): Promise<void> {
    // Plain HTTP requests: nothing stays open between them.
    return Promise.resolve();
  }
}

export function createRestBackend(
  supabaseUrl: string,
  serviceRoleKey: string,
  options: RestStoreOptions = {},
): StoreBackend {
  return new RestStoreBackend(supabaseUrl, serviceRoleKey, options);
}
