// The database behind the bridge, as one interface with two backends (store_rest.ts for the
// deployed function, store_postgres.ts for local runs), chosen by TURN_STORE=rest|postgres.
// Every write is idempotent so a retry after a lost reply never duplicates anything.

import type { CallMetrics, CarriedMetrics } from "./turn_latency.ts";
export type Role = "user" | "assistant";
export type CallStatus = "in_progress" | "completed" | "failed" | "handed_off";

/** A tenant's agent settings; null fields (or no row at all) mean the bridge's defaults. */
export interface AgentSettings {
  instructions: string | null;
  voice: string | null;
  greeting: string | null;
  model: string | null;
  transcriptionModel: string | null;
  turnDetection: Record<string, unknown> | null;
}

/** A tenant without an agent row: every field the bridge's default. */
export const NO_AGENT_SETTINGS: Readonly<AgentSettings> = Object.freeze({
  instructions: null,
  voice: null,
  greeting: null,
  model: null,
  transcriptionModel: null,
  turnDetection: null,
});

export interface NumberOwner {
  tenantId: string;
  agent: AgentSettings | null;
  /** The tenant's enabled tools (tenant_tools), by name; absent: none. */
  tools?: TenantTool[];
}

// ---- tools (tenant_tools, call_tool_calls) ----

export type ToolKind = "http" | "sql" | "transfer" | "end_call";

/** One of a tenant's tools, as tenant_tools holds it (the target its kind needs, the others null). */
export interface TenantTool {
  name: string;
  description: string;
  /** A JSON Schema object. */
  parameters: Record<string, unknown>;
  kind: ToolKind;
  httpUrl: string | null;
  /** `schema.function`, taking (args jsonb) and returning jsonb. */
  sqlFunction: string | null;
  /** E.164. */
  transferTo: string | null;
  timeoutMs: number;
}

export type ToolCallStatus = "ok" | "error" | "timeout";

/** One tool call of a call, stored in conversation order (seq shares the turns' numbering). */
export interface ToolCallRow {
  tenantId: string;
  callSid: string;
  seq: number;
  /** The model's call_id; (callSid, callId) is unique. */
  callId: string;
  name: string;
  /** The parsed arguments (the model's text when it was not JSON). */
  arguments: unknown;
  /** At most TOOL_OUTPUT_MAX_CHARS (call_tool_calls.output's check). */
  output: string;
  status: ToolCallStatus;
  durationMs: number;
}

/** What the Dial of a transfer came to (calls.transfer_outcome), from Twilio's DialCallStatus. */
export type TransferOutcome = "answered" | "no-answer" | "busy" | "failed" | "canceled";

export interface CallStart {
  callSid: string;
  tenantId: string;
  fromNumber: string | null;
  toNumber: string | null;
  /** Absent: inbound. */
  direction?: "inbound" | "outbound";
  /** An outbound call's context from its signed webhook URL (outbound.ts). */
  outboundContext?: Record<string, unknown> | null;
}

/** A tenant's outbound-call settings (tenant_agents; defaults without a row). */
export interface OutboundSettings {
  outboundGreeting: string;
  voicemailAction: "hang_up" | "message";
  voicemailMessage: string;
  /** Record the tenant's calls (tenant_agents.record_calls; off by default: consent). */
  recordCalls: boolean;
}

export interface CallRecord {
  callSid: string;
  tenantId: string;
  status: CallStatus;
  endReason: string | null;
  handoffCount: number;
  usage: Record<string, number>;
  /** A stream has claimed the call (calls.stream_seen_at is set): a webhook asking to start it
   * again is a replay. */
  streamClaimed: boolean;
  /** The caller's number (calls.from_number), when Twilio gave one: tools get it as `from`. */
  fromNumber?: string;
  /** Set on a call the transfer tool ended: the number dialled, and (once Twilio said) how it went. */
  transferTo?: string;
  transferOutcome?: TransferOutcome;
  /** Set on an outbound call (calls.direction): its signed per-call context, if any. */
  outbound?: { context: Record<string, unknown> | null };
  /** What the streams so far measured (calls.metrics), when read and not empty: a resumed stream
   * adds its own to it. */
  metrics?: CarriedMetrics;
}

export interface TurnRow {
  tenantId: string;
  callSid: string;
  role: Role;
  text: string;
  /** The Realtime conversation item; (callSid, itemId) is unique. */
  itemId: string;
  /** Position in the conversation, not arrival order. */
  seq: number;
  interrupted: boolean;
}

export interface CallEnd {
  callSid: string;
  status: Exclude<CallStatus, "in_progress">;
  endReason: string;
  /** Token usage summed over the call's model responses (input_tokens, output_tokens, ...). */
  usage: Record<string, number>;
  /** The call's per-turn latency and audio so far, earlier streams included (calls.metrics,
   * turn_latency.ts); kept as it was when absent. */
  metrics?: CallMetrics;
  /** When the call ended; defaults to the time of the write. TurnStore stamps it at finish() so a
   * write retried after an outage still records the real end. For status handed_off this is the
   * handoff's time and goes to handed_off_at: the call itself goes on (ended_at stays as it is). */
  endedAt?: Date;
  /** A call ended by the transfer tool: the number it is dialled to (calls.transfer_to). */
  transferTo?: string;
}

export type { RecordingStatus, TwilioCallStatus } from "./call_status.ts";
import type { RecordingStatus, TwilioCallStatus } from "./call_status.ts";

export interface StoreBackend {
  /** The tenant that owns an E.164 number, with its agent settings; null when nobody does. */
  findNumberOwner(phoneNumber: string): Promise<NumberOwner | null>;
  /** Insert the call row; a second call for the same CallSid changes nothing. */
  startCall(call: CallStart): Promise<void>;
  getCall(callSid: string): Promise<CallRecord | null>;
  /** Insert or update turns on (call_sid, item_id): the latest text/interrupted wins. */
  upsertTurns(rows: TurnRow[]): Promise<void>;
  /** Set ended_at (handed_off_at for a handoff), status, end_reason and usage. */
  finishCall(end: CallEnd): Promise<void>;
  /**
   * Stream `stream` of the call claims its row (claim_call_stream): 0, the first stream, while no
   * stream has; n > 0, the stream resuming handoff n, while the row is handed_off after n - 1
   * handoffs (then in_progress with handoff_count n). The claimed row, or null when the claim is
   * not this stream's to take (taken already, the call moved on or ended, another tenant's).
   */
  claimCallStream(
    callSid: string,
    tenantId: string,
    stream: number,
    workerId?: string,
  ): Promise<CallRecord | null>;
  /** This worker is alive (worker_leases): its claims name it (`worker` above), and a call it
   * serves is resumed elsewhere only once the lease has lapsed. */
  renewWorkerLease(workerId: string): Promise<void>;
  /** This worker serves no call any more: the lease row goes. */
  releaseWorkerLease(workerId: string): Promise<void>;
  /**
   * A crash's call taken over (resume_crashed_call): the row, if still in_progress at `call`'s
   * handoff_count, whose stream's worker has not renewed its lease for `lapseMs`, becomes
   * handed_off with `endReason`, once. The updated row, or null (the owner is alive, the call moved
   * on, or its claim named no worker).
   */
  resumeCrashedCall(call: CallRecord, lapseMs: number, endReason: string): Promise<CallRecord | null>;
  /** The heartbeat of a running stream: stream_seen_at refreshed while the row is still this
   * stream's (in_progress at handoff_count `stream`). */
  touchCallStream(callSid: string, stream: number): Promise<void>;
  /** Calls left in_progress/handed_off with no sign of life finalized as failed
   * (finalize_stale_calls); how many. */
  finalizeStaleCalls(): Promise<number>;
  /** A call's turns ordered by seq (used to restore context after a handoff). */
  loadTurns(callSid: string): Promise<TurnRow[]>;
  /** The tenant's HTTP tool signing key (tenant_tool_keys), created on first use. */
  toolSigningKey(tenantId: string): Promise<string>;
  /** Insert tool calls on (call_sid, call_id); a retried row changes nothing. */
  upsertToolCalls(rows: ToolCallRow[]): Promise<void>;
  /** A call's tool calls ordered by seq (restored with the turns after a handoff). */
  loadToolCalls(callSid: string): Promise<ToolCallRow[]>;
  /** A signed status callback (record_twilio_call_status): true when it moved the row, false for
   * a retry, a late or unknown-call callback (a final status is never replaced). */
  recordTwilioStatus(update: TwilioCallStatus): Promise<boolean>;
  /** The tenant's outbound settings (outbound greeting, what an answering machine gets). */
  outboundSettings(tenantId: string): Promise<OutboundSettings>;
  /** The tenant's numbers in phone_number order: the first is the default From of a dial (as
   * supactl dial's, tenants.list_numbers). */
  tenantNumbers(tenantId: string): Promise<string[]>;
  /** A signed recording status callback (record_call_recording; tenant from the call row). */
  recordRecording(update: RecordingStatus): Promise<boolean>;
  /**
   * Twilio reported how the transfer's Dial ended: transfer_outcome set, once, on a call the
   * transfer tool ended. With `comeBack` (nobody answered) the row becomes handed_off with
   * `endReason` (its handoff_count unchanged), so the next stream claims it as a resume. The
   * updated row, or null when the call was not transferred or its outcome is already set.
   */
  recordTransferOutcome(
    callSid: string,
    outcome: TransferOutcome,
    comeBack: { endReason: string } | null,
  ): Promise<CallRecord | null>;
  close(): Promise<void>;
}
