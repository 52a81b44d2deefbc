// The database behind the bridge, as one interface with two backends (store_rest.ts for the
// deployed function, store_postgres.ts for local runs), chosen by TURN_STORE=rest|postgres.
// Every write is idempotent so a retry after a lost reply never duplicates anything.

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

export interface NumberOwner {
  tenantId: string;
  agent: AgentSettings | null;
}

export interface CallStart {
  callSid: string;
  tenantId: string;
  fromNumber: string | null;
  toNumber: string | null;
}

export interface CallRecord {
  callSid: string;
  tenantId: string;
  status: CallStatus;
  endReason: string | null;
  handoffCount: number;
  usage: Record<string, number>;
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
  /** When the call ended; defaults to the time of the write. TurnStore stamps it at finish() so a
   * write retried after an outage still records the real end. For status handed_off this is the
   * handoff's time and goes to handed_off_at: the call itself goes on (ended_at stays as it is). */
  endedAt?: Date;
}

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
   * A handed-off call continues on a new stream: status back to in_progress, end_reason cleared,
   * handoff_count raised to `handoff` (the stream's handoff number, so a retried resume counts
   * once). Null when the call cannot continue: it has ended (completed/failed), or it has already
   * counted a later handoff.
   */
  resumeCall(callSid: string, handoff: number): Promise<CallRecord | null>;
  /** A call's turns ordered by seq (used to restore context after a handoff). */
  loadTurns(callSid: string): Promise<TurnRow[]>;
  close(): Promise<void>;
}
