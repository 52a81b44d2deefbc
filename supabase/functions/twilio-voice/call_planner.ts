// What a stream whose token checked out does, from what the store said about it: whether its claim
// on the call row lets it go on (planClaim), then how the call starts (planCall: which session,
// greeting or not, where turn numbering continues, which turns to restore). Pure: call_session.ts
// does the reads, logs the warnings and carries the plans out.

import { checkAgentSettings } from "./agent_settings.ts";
import type { CallStarted } from "./bridge.ts";
import { restorableContext } from "./handoff.ts";
import type { LogFields } from "./log.ts";
import { buildSessionConfig } from "./session_config.ts";
import type { CallRecord, NumberOwner, ToolCallRow, TurnRow } from "./store.ts";
import type { StreamCall } from "./stream_contract.ts";

/** What the store returned for the stream, read before the call starts. */
export interface StoreFindings {
  /** Who owns the stream's number now (findNumberOwner); null when nobody does. */
  owner: NumberOwner | null;
  /** On a stream that resumes a handed-off call, once its claim succeeded: the claimed row and
   * the call's stored turns. Null on a first stream. */
  resumed: { call: CallRecord; turns: TurnRow[]; toolCalls?: ToolCallRow[] } | null;
}

/** Something the session logs as a warning (field names only, never a tenant's values). */
export interface PlanWarning {
  event: string;
  fields: LogFields;
}

/** What claim_call_stream said: the claimed row, null (not this stream's to take), or
 * "unavailable" (the store could not be asked). */
export type ClaimResult = CallRecord | null | "unavailable";

export type ClaimPlan =
  | {
    kind: "go_on";
    /** The row is this stream's: read the turns to restore (a resume) and finalize it at the end. */
    call: CallRecord | null;
    warnings: PlanWarning[];
  }
  | {
    /** Closed before any model session, the row left as it is: it belongs to another stream
     * (or to nobody, on a call that has ended). */
    kind: "refuse";
    reason: typeof STREAM_CLAIM_REFUSED | "stream_claim_unavailable";
    warnings: PlanWarning[];
  };

/** Why a stream whose claim on its call row was refused ended (a policy violation on its socket). */
export const STREAM_CLAIM_REFUSED = "stream_claim_refused";

/** The stream's number in claim_call_stream: 0 the first, n the one resuming handoff n. */
export function streamNumber(stream: StreamCall): number {
  return stream.resume?.handoff ?? 0;
}

export function planClaim(stream: StreamCall, claim: ClaimResult): ClaimPlan {
  const fields = { stream: streamNumber(stream) };
  if (claim === null) {
    // A replayed token or webhook, a second use of a resume token, or a call that has moved on.
    return {
      kind: "refuse",
      reason: STREAM_CLAIM_REFUSED,
      warnings: [{ event: "stream.claim_refused", fields }],
    };
  }
  if (claim !== "unavailable") return { kind: "go_on", call: claim, warnings: [] };
  if (stream.resume) {
    // A resume needs the store anyway (its turns), and an unchecked one could restore a
    // transcript into a session that did not continue the call.
    return {
      kind: "refuse",
      reason: "stream_claim_unavailable",
      warnings: [{ event: "stream.claim_unavailable", fields }],
    };
  }
  // A first stream with a fresh token: a caller is on the line and nothing is restored into its
  // session, so it goes on unchecked rather than dropping the call on a store hiccup.
  return { kind: "go_on", call: null, warnings: [{ event: "stream.claim_unchecked", fields }] };
}

export interface CallPlan {
  /** What the bridge begins with; the session adds the stream's ids and the handoff schedule. */
  call: Pick<
    CallStarted,
    "session" | "greeting" | "firstSeq" | "resume" | "priorUsage" | "priorMetrics" | "tools"
  >;
  /** The Realtime model to connect to. */
  model: string;
  warnings: PlanWarning[];
}

export function planCall(stream: StreamCall, found: StoreFindings, defaultModel: string): CallPlan {
  const warnings: PlanWarning[] = [];
  const owner = found.owner;
  // The number was moved to another tenant since the webhook: the token's tenant keeps the call,
  // with the default agent rather than someone else's.
  if (owner !== null && owner.tenantId !== stream.tenantId) {
    warnings.push({ event: "call.number_moved", fields: {} });
  }
  const settings = owner?.tenantId === stream.tenantId ? owner.agent : null;
  // Another tenant's tools never run in this call (the number moved: the default agent has none).
  const tools = owner?.tenantId === stream.tenantId ? owner.tools ?? [] : [];

  const resumed = stream.resume ? found.resumed : null;

  const checked = checkAgentSettings(settings);
  // The column, never the value: instructions are the tenant's business.
  if (checked.rejected.length > 0) {
    warnings.push({ event: "agent.setting_rejected", fields: { fields: checked.rejected.join(",") } });
  }
  const agent = checked.agent;
  const { session, dropped } = buildSessionConfig(agent, tools);
  if (dropped.length > 0) {
    warnings.push({ event: "agent.settings_dropped", fields: { fields: dropped.join(",") } });
  }

  const stored = resumed?.turns ?? [];
  const storedCalls = resumed?.toolCalls ?? [];
  // Turns and tool calls share one budget, newest first (handoff.ts).
  const { turns: restored, toolCalls: restoredCalls } = restorableContext(stored, storedCalls);
  return {
    call: {
      session,
      // A resumed call was greeted on its first stream.
      greeting: stream.resume ? null : agent?.greeting ?? null,
      resume: stream.resume
        ? {
          turns: restored,
          mode: stream.resume.mode,
          ...(restoredCalls.length > 0 ? { toolCalls: restoredCalls } : {}),
        }
        : undefined,
      // Seqs continue after every stored turn and tool call, restored or not: no collision with
      // earlier rows.
      firstSeq: [...stored, ...storedCalls].reduce((next, row) => Math.max(next, row.seq + 1), 0),
      tools,
      priorUsage: resumed?.call.usage,
      priorMetrics: resumed?.call.metrics,
    },
    model: agent?.model?.trim() || defaultModel,
    warnings,
  };
}
