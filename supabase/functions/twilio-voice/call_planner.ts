// What a stream whose token checked out does, from what the store said about it: start the call
// (which session, greeting or not, where turn numbering continues, which turns to restore) or
// refuse it. Pure: call_session.ts does the reads, logs the warnings and carries the plan out.

import { checkAgentSettings } from "./agent_settings.ts";
import type { CallStarted } from "./bridge.ts";
import { restorableTurns } from "./handoff.ts";
import type { LogFields } from "./log.ts";
import { buildSessionConfig } from "./session_config.ts";
import type { CallRecord, NumberOwner, TurnRow } from "./store.ts";
import type { StreamCall } from "./stream_contract.ts";

/** What the store returned for the stream, read before the call starts. */
export interface StoreFindings {
  /** Who owns the stream's number now (findNumberOwner); null when nobody does. */
  owner: NumberOwner | null;
  /** On a stream that resumes a handed-off call: the row resumeCall returned (null: the call
   * cannot continue) and the call's stored turns. Null on a first stream. */
  resumed: { call: CallRecord | null; turns: TurnRow[] } | null;
}

/** Something the session logs as a warning (field names only, never a tenant's values). */
export interface PlanWarning {
  event: string;
  fields: LogFields;
}

export type CallPlan =
  | {
    kind: "start";
    /** What the bridge begins with; the session adds the stream's ids and the handoff schedule. */
    call: Pick<CallStarted, "session" | "greeting" | "firstSeq" | "resume" | "priorUsage">;
    /** The Realtime model to connect to. */
    model: string;
    warnings: PlanWarning[];
  }
  | {
    kind: "refuse";
    reason: "call_not_resumable";
    /** False when the call row belongs to someone else (ended, or a later stream's): this stream
     * must leave it as it is. */
    finalize: false;
    warnings: PlanWarning[];
  };

export function planCall(stream: StreamCall, found: StoreFindings, defaultModel: string): CallPlan {
  const warnings: PlanWarning[] = [];
  const owner = found.owner;
  // The number was moved to another tenant since the webhook: the token's tenant keeps the call,
  // with the default agent rather than someone else's.
  if (owner !== null && owner.tenantId !== stream.tenantId) {
    warnings.push({ event: "call.number_moved", fields: {} });
  }
  const settings = owner?.tenantId === stream.tenantId ? owner.agent : null;

  const resumed = stream.resume ? found.resumed : null;
  if (stream.resume && (resumed === null || resumed.call === null)) {
    // The call has ended, or a later stream has taken it over: not ours to finalize.
    warnings.push({ event: "call.not_resumable", fields: { handoff: stream.resume.handoff } });
    return { kind: "refuse", reason: "call_not_resumable", finalize: false, warnings };
  }

  const checked = checkAgentSettings(settings);
  // The column, never the value: instructions are the tenant's business.
  if (checked.rejected.length > 0) {
    warnings.push({ event: "agent.setting_rejected", fields: { fields: checked.rejected.join(",") } });
  }
  const agent = checked.agent;
  const { session, dropped } = buildSessionConfig(agent);
  if (dropped.length > 0) {
    warnings.push({ event: "agent.settings_dropped", fields: { fields: dropped.join(",") } });
  }

  const stored = resumed?.turns ?? [];
  return {
    kind: "start",
    call: {
      session,
      // A resumed call was greeted on its first stream.
      greeting: stream.resume ? null : agent?.greeting ?? null,
      resume: stream.resume ? { turns: restorableTurns(stored), mode: stream.resume.mode } : undefined,
      // Seqs continue after every stored turn, restored or not: no collision with earlier rows.
      firstSeq: stored.reduce((next, turn) => Math.max(next, turn.seq + 1), 0),
      priorUsage: resumed?.call?.usage,
    },
    model: agent?.model?.trim() || defaultModel,
    warnings,
  };
}
