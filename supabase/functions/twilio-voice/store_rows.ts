// The tables' rows as both backends read and write them (snake_case, as Postgres and PostgREST
// spell them), and the mapping to the interface's types.

import type { AgentSettings, CallRecord, CallStatus, TurnRow } from "./store.ts";
import { StoreError } from "./store_errors.ts";

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
}

export const CALL_COLUMNS = "call_sid,tenant_id,status,end_reason,handoff_count,usage,stream_seen_at";

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
  return {
    callSid: row.call_sid,
    tenantId: row.tenant_id,
    status: row.status,
    endReason: row.end_reason,
    handoffCount: row.handoff_count,
    usage: row.usage,
    streamClaimed: row.stream_seen_at !== null,
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
