// The tables' rows as both backends read and write them (snake_case, as Postgres and PostgREST
// spell them), and the mapping to the interface's types.

import type {
  AgentSettings,
  CallRecord,
  CallStatus,
  OutboundSettings,
  TenantTool,
  ToolCallRow,
  ToolKind,
  TransferOutcome,
  TurnRow,
} from "./store.ts";
import { StoreError } from "./store_errors.ts";
import { metricsFromRow } from "./turn_latency.ts";

export interface AgentDbRow {
  instructions: string | null;
  voice: string | null;
  greeting: string | null;
  model: string | null;
  transcription_model: string | null;
  turn_detection: Record<string, unknown> | null;
}

export const AGENT_COLUMNS = "instructions,voice,greeting,model,transcription_model,turn_detection";

export interface CallDbRow {
  call_sid: string;
  tenant_id: string;
  status: CallStatus;
  end_reason: string | null;
  handoff_count: number;
  usage: Record<string, number>;
  /** A timestamptz: a Date from postgres.js, an ISO string from PostgREST. */
  stream_seen_at: Date | string | null;
  transfer_to: string | null;
  transfer_outcome: string | null;
  from_number: string | null;
  direction?: string;
  outbound_context?: Record<string, unknown> | null;
  /** jsonb: what the streams so far measured, checked by metricsFromRow. */
  metrics: unknown;
}

export const CALL_COLUMNS = "call_sid,tenant_id,status,end_reason,handoff_count,usage,stream_seen_at," +
  "transfer_to,transfer_outcome,from_number,direction,outbound_context,metrics";

export interface TurnDbRow {
  tenant_id: string;
  call_sid: string;
  role: TurnRow["role"];
  text: string;
  item_id: string;
  seq: number;
  interrupted: boolean;
}

export const TURN_COLUMNS = "tenant_id,call_sid,role,text,item_id,seq,interrupted";

export function agentFromRow(row: AgentDbRow): AgentSettings {
  return {
    instructions: row.instructions,
    voice: row.voice,
    greeting: row.greeting,
    model: row.model,
    transcriptionModel: row.transcription_model,
    turnDetection: row.turn_detection,
  };
}

export function callFromRow(row: CallDbRow): CallRecord {
  const call: CallRecord = {
    callSid: row.call_sid,
    tenantId: row.tenant_id,
    status: row.status,
    endReason: row.end_reason,
    handoffCount: row.handoff_count,
    usage: row.usage,
    streamClaimed: row.stream_seen_at !== null,
  };
  if (row.from_number) call.fromNumber = row.from_number;
  // Only on a call the transfer tool ended.
  if (row.transfer_to) call.transferTo = row.transfer_to;
  if (row.transfer_outcome) call.transferOutcome = row.transfer_outcome as TransferOutcome;
  if (row.direction === "outbound") call.outbound = { context: row.outbound_context ?? null };
  const metrics = metricsFromRow(row.metrics);
  if (metrics !== null) call.metrics = metrics;
  return call;
}

// ---- tools ----

export interface ToolDbRow {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
  kind: ToolKind;
  http_url: string | null;
  sql_function: string | null;
  transfer_to: string | null;
  timeout_ms: number;
}

export const TOOL_COLUMNS = "name,description,parameters,kind,http_url,sql_function,transfer_to,timeout_ms";

export function toolFromRow(row: ToolDbRow): TenantTool {
  return {
    name: row.name,
    description: row.description,
    parameters: row.parameters,
    kind: row.kind,
    httpUrl: row.http_url,
    sqlFunction: row.sql_function,
    transferTo: row.transfer_to,
    timeoutMs: row.timeout_ms,
  };
}

export interface ToolCallDbRow {
  tenant_id: string;
  call_sid: string;
  seq: number;
  call_id: string;
  name: string;
  arguments: unknown;
  output: string;
  status: ToolCallRow["status"];
  duration_ms: number;
}

export const TOOL_CALL_COLUMNS = "tenant_id,call_sid,seq,call_id,name,arguments,output,status,duration_ms";

export function toolCallToRow(call: ToolCallRow): ToolCallDbRow {
  return {
    tenant_id: call.tenantId,
    call_sid: call.callSid,
    seq: call.seq,
    call_id: call.callId,
    name: call.name,
    arguments: call.arguments,
    output: call.output,
    status: call.status,
    duration_ms: call.durationMs,
  };
}

export function toolCallFromRow(row: ToolCallDbRow): ToolCallRow {
  return {
    tenantId: row.tenant_id,
    callSid: row.call_sid,
    seq: row.seq,
    callId: row.call_id,
    name: row.name,
    arguments: row.arguments,
    output: row.output,
    status: row.status,
    durationMs: row.duration_ms,
  };
}

export function turnToRow(turn: TurnRow): TurnDbRow {
  return {
    tenant_id: turn.tenantId,
    call_sid: turn.callSid,
    role: turn.role,
    text: turn.text,
    item_id: turn.itemId,
    seq: turn.seq,
    interrupted: turn.interrupted,
  };
}

export function turnFromRow(row: TurnDbRow): TurnRow {
  return {
    tenantId: row.tenant_id,
    callSid: row.call_sid,
    role: row.role,
    text: row.text,
    itemId: row.item_id,
    seq: row.seq,
    interrupted: row.interrupted,
  };
}

export function turnKey(row: Pick<TurnRow, "callSid" | "itemId">): string {
  // A NUL cannot occur in a CallSid or a Realtime item id, so the key is unambiguous.
  return `${row.callSid}\u0000${row.itemId}`;
}

/** One row per (callSid, itemId), the last one given winning: an upsert statement may not touch
 * the same row twice ("ON CONFLICT DO UPDATE command cannot affect row a second time"). */
export function latestPerItem(rows: readonly TurnRow[]): TurnRow[] {
  const latest = new Map<string, TurnRow>();
  for (const row of rows) {
    const key = turnKey(row);
    latest.delete(key);
    latest.set(key, row);
  }
  return [...latest.values()];
}

export function noCallRowError(callSid: string): StoreError {
  return new StoreError(`no calls row for ${callSid}: the webhook inserts it when the call starts`, {
    code: "NO_CALL_ROW",
    permanent: true,
  });
}

export interface OutboundDbRow {
  outbound_greeting: string;
  voicemail_action: string;
  voicemail_message: string;
  record_calls: boolean;
}

/** A tenant without an agent row gets the defaults: no greeting of its own, machines hung up on. */
export function outboundFromRow(row: OutboundDbRow | undefined): OutboundSettings {
  return {
    outboundGreeting: row?.outbound_greeting ?? "",
    voicemailAction: row?.voicemail_action === "message" ? "message" : "hang_up",
    voicemailMessage: row?.voicemail_message ?? "",
    recordCalls: row?.record_calls === true,
  };
}
