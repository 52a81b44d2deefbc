// One call's sockets wired to its CallBridge: Twilio's Media Stream on one side, the Realtime model
// on the other, the turn writer behind. The only awaits are in setup (token check, tenant lookup)
// and at the end (finalize, flush); per frame it is decode, one bridge call, one send.

import { outboundAgent } from "./outbound.ts";
import { CallBridge, type CallOutcome, type ItemKind, type ToolResult, type ToolRun } from "./bridge.ts";
import {
  type ClaimResult,
  planCall,
  planClaim,
  type StoreFindings,
  STREAM_CLAIM_REFUSED,
  streamNumber,
} from "./call_planner.ts";
import { realtimeModelUrl } from "./config.ts";
import { DRAIN_QUIET_WAIT_MS, DRAIN_REASON, handoffSchedule } from "./handoff.ts";
import { streamIdleWatch } from "./idle_watch.ts";
import { errorMessage, type Logger } from "./log.ts";
import type { SessionMetrics } from "./metrics.ts";
import { decodeServerEvent } from "./realtime_events.ts";
import type { CallEnd, NumberOwner, StoreBackend, ToolCallRow, TurnRow } from "./store.ts";
import type { ToolCallContext } from "./tool_runner.ts";
import { errorOutput } from "./tool_output.ts";
import { type StreamCall, verifyStreamStart } from "./stream_contract.ts";
import { decodeTwilioFrame, type TwilioEncoder, twilioEncoder, type TwilioFrame } from "./twilio_frames.ts";
import type { RejectReason } from "./wire.ts";

/** The per-call face of the turn store: record is synchronous (queued), the rest is the end. */
export interface CallWriter {
  record(row: TurnRow): void;
  /** Queue a tool call's row (stored once per call_id). */
  recordToolCall(row: ToolCallRow): void;
  /** Queue the call row's finalization (after every recorded turn). */
  finish(end: Omit<CallEnd, "callSid">): void;
  /** Write what is queued, giving up after timeoutMs (what is left stays queued and logged). */
  flush(timeoutMs: number): Promise<void>;
}

export type ModelSocketFactory = (url: string, protocols: string[]) => WebSocket;

export interface CallSessionDeps {
  twilioAuthToken: string;
  openaiApiKey: string;
  realtimeUrl: string;
  realtimeModel: string;
  store: StoreBackend;
  openWriter(callSid: string, tenantId: string): CallWriter;
  openModelSocket: ModelSocketFactory;
  log: Logger;
  /** The model must confirm the session within this time, or the caller gets the apology. */
  setupTimeoutMs: number;
  /** Bound on the final write; the worker may be about to go. */
  flushTimeoutMs: number;
  /** From the upgrade to a `start` whose token checks out; then the socket is closed. */
  preStartDeadlineMs: number;
  /** Told how each call ended, so the connect action can answer before the row is written. */
  onOutcome(outcome: StreamOutcome): void;
  /** How often a running stream refreshes calls.stream_seen_at (HEARTBEAT_INTERVAL_MS). */
  heartbeatIntervalMs: number;
  /** The wall clock in unix seconds, for the stream token's window. */
  unixNow(): number;
  /** WALL_CLOCK_LIMIT_S, counted from workerStartedAt (Supabase) or, when that is null, from each
   * stream's start (plain Deno): see handoff.ts. */
  wallClockLimitS: number;
  workerStartedAt: number | null;
  /** The clock of workerStartedAt, in ms (performance.now). */
  now(): number;
  /** How long a built-in's end waits for the last mark (ENDING_PLAYBACK_TIMEOUT_MS). */
  endingPlaybackTimeoutMs?: number;
  /** The worker's /metrics (metrics.ts); absent: nothing is counted. */
  metrics?: SessionMetrics;
  /** Runs a tenant's http or sql tool (tool_runner.ts); absent: tools answer an error. */
  runTool?: (context: ToolCallContext, run: ToolRun) => Promise<ToolResult>;
}

// What Twilio sends before `start` is one `connected` frame (~70 bytes), and `start` itself is
// under 2 KB even with a handful of <Parameter>s: anything more is not Twilio. Twilio sends both
// as soon as the socket opens, so the deadline (PRE_START_DEADLINE_MS in app.ts) is generous.
export const MAX_PRE_START_MESSAGE_CHARS = 16 * 1024;
export const MAX_PRE_START_MESSAGES = 8;
// finalize_stale_calls (migration 20261203090000_call_streams.sql) fails a call that has shown no
// sign of life for 2 minutes: a beat every 30 s lets three in a row be lost before a live call
// could be taken for a dead one.
export const HEARTBEAT_INTERVAL_MS = 30_000;
// After transfer or end_call the call ends once Twilio echoes the last mark of the agent's line;
// a line is a sentence or two (well under 30 s), so past this the echo is taken as lost.
export const ENDING_PLAYBACK_TIMEOUT_MS = 30_000;
/** Close code for a peer that broke the stream's rules (RFC 6455 §7.4.1: policy violation). */
const POLICY_VIOLATION = 1008;
const GOING_AWAY = 1001;

/** How a stream ended, with which stream of its call it was (0 the first, n the nth resume). */
export interface StreamOutcome extends CallOutcome {
  stream: number | null;
}

/** The call row a stream claimed: its stream number there. */
interface ClaimedRow {
  callSid: string;
  tenantId: string;
  stream: number;
}

export interface CallSession {
  /** Resolves when both sockets are closed and the call's writes are flushed (or timed out). */
  readonly done: Promise<void>;
  /** False until the start frame's token checked out: such sockets are capped per worker. */
  readonly proven: boolean;
  /** The worker is shutting down: hand the call off to a fresh one (the failure path when the
   * call has not begun yet), and resolve once its writes are flushed. */
  shutdown(reason: string): Promise<void>;
}

export function startCallSession(twilio: WebSocket, deps: CallSessionDeps): CallSession {
  let log = deps.log;
  let encoder: TwilioEncoder | null = null;
  let model: WebSocket | null = null;
  let writer: CallWriter | null = null;
  let setupTimer: number | undefined;
  const handoffTimers: number[] = [];
  let heartbeat: number | undefined;
  const streamStartedAt = deps.now();
  let started = false;
  /** Set once the start frame's token checks out: the socket has proved it is Twilio's. */
  let proven = false;
  /** Set once the stream's claim on the call row succeeded: from then on the row is ours to
   * finalize, even if the call ends before the bridge began (hang-up during setup, lookup
   * failure). Until then (and for a refused claim, ever) the row is someone else's. */
  let verified: ClaimedRow | null = null;
  /** The claim in flight: a call that ends meanwhile waits for it to know whose row it is. */
  let claiming: Promise<ClaimedRow | null> | null = null;
  const rejected: Partial<Record<`${"twilio" | "model"}_${RejectReason}`, number>> = {};
  let sendsSkipped = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => resolveDone = resolve);
  let ending: Promise<void> | null = null;
  /** The Realtime model this call runs on: its tokens are priced by it (calls.metrics.model). */
  let realtimeModel: string | null = null;
  /** Set once the call has begun: who calls whom, for its tools. */
  let toolContext: ToolCallContext | null = null;
  let endingTimer: number | undefined;

  let preStartMessages = 0;
  const refuse = (why: string) => {
    log.warn("stream.refused", { reason: why });
    closeQuietly(twilio, POLICY_VIOLATION, why);
  };
  const preStartTimer = setTimeout(() => {
    if (!proven && ending === null) refuse("no valid start in time");
  }, deps.preStartDeadlineMs);
  // The upgrade turns Deno's per-socket idle timer off (app.ts); the worker's one sweep stands in.
  const idle = streamIdleWatch.watch(() => {
    log.warn("stream.idle", {});
    closeQuietly(twilio, GOING_AWAY, "no frame from the stream in time");
  });

  const count = (side: "twilio" | "model", reason: RejectReason, event?: string) => {
    const key = `${side}_${reason}` as const;
    rejected[key] = (rejected[key] ?? 0) + 1;
    // Only the first of each kind is logged: a misbehaving peer must not flood the log.
    if (rejected[key] === 1) log.warn(`${side}.frame_ignored`, { reason, frame_event: event });
  };

  // Bound once per call: a relayed frame adds to its direction's count without a lookup.
  const callerFrames = deps.metrics?.frames.bind("caller_to_model");
  const modelFrames = deps.metrics?.frames.bind("model_to_caller");

  // Never send on a socket that is not open: Deno throws, and the frame would be lost anyway.
  const sendTwilio = (text: string) => {
    if (twilio.readyState === WebSocket.OPEN) twilio.send(text);
    else sendsSkipped++;
  };
  const sendModel = (text: string) => {
    if (model !== null && model.readyState === WebSocket.OPEN) model.send(text);
    else sendsSkipped++;
  };

  const bridge = new CallBridge({
    model: sendModel,
    twilioMedia: (payload) => {
      modelFrames?.inc();
      sendTwilio(encoder!.media(payload));
    },
    twilioMark: (name) => sendTwilio(encoder!.mark(name)),
    twilioClear: () => sendTwilio(encoder!.clear()),
    turn: (row) => writer?.record(row),
    runTool: (run) => runTool(run),
    toolCall: (row) => writer?.recordToolCall(row),
    log: (level, event, fields) => log[level](event, fields),
    end: (outcome) => {
      ending = finishCall(outcome);
    },
  }, {
    newItemId: itemIdFactory(),
    clock: () => deps.now(),
    // One measurement feeds both the call row (calls.metrics) and the worker's histogram.
    onTurnMeasured: (turn) => deps.metrics?.replyLatencySeconds.observe(turn.firstAudioSentMs / 1000),
  });

  /** Off the audio path: the bridge hears back when the tool answers (or its timeout passed). */
  function runTool(run: ToolRun): void {
    const started = deps.now();
    const running = deps.runTool && toolContext
      ? deps.runTool(toolContext, run)
      : Promise.resolve<ToolResult>({
        output: errorOutput("tools are not available"),
        status: "error",
        durationMs: 0,
      });
    running.catch((error): ToolResult => {
      log.error("tool.failed", { tool: run.tool.name, message: errorMessage(error) });
      return { output: errorOutput("the tool failed"), status: "error", durationMs: deps.now() - started };
    }).then((result) => bridge.toolFinished(run.callId, result));
  }

  async function finishCall(outcome: CallOutcome): Promise<void> {
    clearTimeout(preStartTimer);
    clearTimeout(setupTimer);
    handoffTimers.forEach((timer) => clearTimeout(timer));
    clearInterval(heartbeat);
    clearTimeout(endingTimer);
    idle.forget();
    closeQuietly(model, 1000, "call ended");
    const call = verified ?? await claiming;
    deps.onOutcome({ ...outcome, callSid: call?.callSid ?? null, stream: call?.stream ?? null });
    if (call !== null) {
      writer ??= deps.openWriter(call.callSid, call.tenantId);
      const end: Omit<CallEnd, "callSid"> = {
        status: outcome.status,
        endReason: outcome.reason,
        usage: { ...outcome.usage },
        metrics: { ...outcome.metrics, model: realtimeModel },
      };
      if (outcome.transferTo !== undefined) end.transferTo = outcome.transferTo;
      writer.finish(end);
      try {
        await writer.flush(deps.flushTimeoutMs);
      } catch (error) {
        log.error("store.flush_failed", { message: errorMessage(error) });
      }
    }
    // After the row is final: closing the stream makes Twilio ask the connect action, which reads it.
    // A stream refused at its claim (its token replayed, or its call already streaming) broke the
    // stream's rules: it is told so, like a stream that never proved itself.
    const code = outcome.reason === STREAM_CLAIM_REFUSED ? POLICY_VIOLATION : 1000;
    closeQuietly(twilio, code, CLOSE_REASONS[outcome.status]);
    log.info("call.ended", {
      status: outcome.status,
      reason: outcome.reason,
      ...snakeCase(outcome.stats),
      ...rejected,
      sends_skipped: sendsSkipped,
      input_tokens: outcome.usage.input_tokens,
      output_tokens: outcome.usage.output_tokens,
    });
    resolveDone();
  }

  async function onStart(frame: Extract<TwilioFrame, { event: "start" }>): Promise<void> {
    if (started) return count("twilio", "bad_shape", "start");
    started = true;
    log = deps.log.with({ call_sid: frame.callSid, stream_sid: frame.streamSid });
    encoder = twilioEncoder(frame.streamSid);
    const checked = await verifyStreamStart(
      deps.twilioAuthToken,
      frame.callSid,
      frame.customParameters,
      deps.unixNow(),
    );
    if (!checked.ok) {
      log.warn("stream.token_rejected", { reason: checked.reason });
      bridge.fail(checked.reason);
      return;
    }
    const stream = checked.call;
    log = log.with({ tenant_id: stream.tenantId });
    proven = true;
    clearTimeout(preStartTimer);

    // Started together: on a resumed call these reads are most of the handoff's gap. The turns
    // wait for the claim: a stream that has not claimed the call reads none of its transcript.
    const ownerLookup = deps.store.findNumberOwner(stream.toNumber);
    ownerLookup.catch(() => {});
    const claimed = await claimStream(stream);
    const claim = planClaim(stream, claimed);
    for (const warning of claim.warnings) log.warn(warning.event, warning.fields);
    if (claim.kind === "refuse") {
      bridge.fail(claim.reason);
      return;
    }
    let owner: NumberOwner | null;
    try {
      owner = await ownerLookup;
    } catch (error) {
      // A tenant's agent with the wrong instructions is worse than an apology.
      log.error("store.agent_lookup_failed", { message: errorMessage(error) });
      bridge.fail("agent_lookup_failed");
      return;
    }
    let resumed: StoreFindings["resumed"] = null;
    if (stream.resume && claim.call !== null) {
      try {
        const [turns, toolCalls] = await Promise.all([
          deps.store.loadTurns(stream.callSid),
          deps.store.loadToolCalls(stream.callSid),
        ]);
        resumed = { call: claim.call, turns, toolCalls };
      } catch (error) {
        // Without its history the model would start the conversation over: apologize instead.
        log.error("store.resume_failed", { message: errorMessage(error) });
        bridge.fail("resume_failed");
        return;
      }
    }
    if (owner !== null && claim.call?.outbound) {
      // An outbound call: the tenant's outbound greeting and the call's signed context (outbound.ts).
      try {
        owner = outboundAgent(
          owner,
          await deps.store.outboundSettings(owner.tenantId),
          claim.call.outbound.context,
        );
      } catch (error) {
        log.warn("store.outbound_settings_failed", { message: errorMessage(error) });
      }
    }
    if (bridge.phase === "ended") return; // the caller hung up during the lookup

    const plan = planCall(stream, { owner, resumed }, deps.realtimeModel);
    for (const warning of plan.warnings) log.warn(warning.event, warning.fields);
    writer = deps.openWriter(stream.callSid, stream.tenantId);
    toolContext = {
      tenantId: stream.tenantId,
      callSid: stream.callSid,
      from: claim.call?.fromNumber ?? null,
      to: stream.toNumber || null,
    };
    const handoff = deps.wallClockLimitS === 0 ? null : handoffSchedule(
      deps.wallClockLimitS,
      deps.workerStartedAt ?? streamStartedAt,
      streamStartedAt,
    );
    bridge.begin({
      ...plan.call,
      callSid: stream.callSid,
      streamSid: frame.streamSid,
      tenantId: stream.tenantId,
      handoff: handoff ?? undefined,
    });
    // WALL_CLOCK_LIMIT_S=0 (a self-hosted fleet): no wall clock, nothing scheduled; only a drain
    // hands the call off.
    for (const at of handoff === null ? [] : [handoff.quietFromMs, handoff.forceAtMs]) {
      // A timer may fire a fraction of a millisecond before `at` by performance.now(): the time it
      // was set for has come all the same, or the window would never open.
      handoffTimers.push(
        setTimeout(() => bridge.tick(Math.max(deps.now(), at)), Math.max(0, at - deps.now())),
      );
    }
    heartbeat = startHeartbeat(stream.callSid, streamNumber(stream));
    if (handoff !== null) {
      log.info("call.handoff_planned", {
        handoff: stream.resume?.handoff ?? 0,
        quiet_from_s: Math.round((handoff.quietFromMs - deps.now()) / 100) / 10,
        force_at_s: Math.round((handoff.forceAtMs - deps.now()) / 100) / 10,
      });
    }
    realtimeModel = plan.model;
    openModel(plan.model);
  }

  /** The stream's claim on its call row; the row is ours (`verified`) once it succeeded. */
  async function claimStream(stream: StreamCall): Promise<ClaimResult> {
    const number = streamNumber(stream);
    const ours: ClaimedRow = { callSid: stream.callSid, tenantId: stream.tenantId, stream: number };
    const attempt = deps.store.claimCallStream(stream.callSid, stream.tenantId, number);
    claiming = attempt.then(
      (row) => row === null ? null : ours,
      // Unchecked, a first stream still owns the row it goes on with (planClaim); a resume does not.
      () => number === 0 ? ours : null,
    );
    let claimed: ClaimResult;
    try {
      claimed = await attempt;
    } catch (error) {
      log.error("store.claim_failed", { message: errorMessage(error) });
      claimed = "unavailable";
    }
    verified = await claiming;
    return claimed;
  }

  /** Off the audio path: one UPDATE every interval, never two at once, a failure only logged. */
  function startHeartbeat(callSid: string, stream: number): number {
    let beating = false;
    return setInterval(() => {
      if (beating) return;
      beating = true;
      deps.store.touchCallStream(callSid, stream)
        .catch((error) => log.warn("store.heartbeat_failed", { message: errorMessage(error) }))
        .finally(() => beating = false);
    }, deps.heartbeatIntervalMs);
  }

  function openModel(modelName: string): void {
    setupTimer = setTimeout(() => {
      if (bridge.phase !== "live") bridge.fail("model_setup_timeout");
    }, deps.setupTimeoutMs);
    try {
      // Headers cannot be set on Supabase's Deno: the key travels as a subprotocol.
      model = deps.openModelSocket(realtimeModelUrl(deps.realtimeUrl, modelName), [
        "realtime",
        `openai-insecure-api-key.${deps.openaiApiKey}`,
      ]);
    } catch (error) {
      log.error("model.connect_failed", { message: errorMessage(error) });
      bridge.fail("model_connect_failed");
      return;
    }
    log.info("model.connecting", { model: modelName });
    const setupStartedAt = deps.now();
    model.onopen = () => bridge.modelOpened();
    model.onmessage = (message) => {
      const decoded = decodeServerEvent(message.data);
      if (decoded.ok) {
        const wasLive = bridge.phase === "live";
        bridge.onModelEvent(decoded.frame);
        if (!wasLive && bridge.phase === "live") {
          deps.metrics?.modelSetupSeconds.observe((deps.now() - setupStartedAt) / 1000);
        }
        if (endingTimer === undefined && bridge.endingAfterPlayback) {
          endingTimer = setTimeout(
            () => bridge.finishEnding(),
            deps.endingPlaybackTimeoutMs ?? ENDING_PLAYBACK_TIMEOUT_MS,
          );
        }
      } else count("model", decoded.reason, decoded.event);
    };
    model.onerror = (event) => {
      log.warn("model.socket_error", { message: event instanceof ErrorEvent ? event.message : "error" });
    };
    model.onclose = (event) => bridge.modelClosed(event.code, event.reason);
  }

  twilio.onmessage = (message) => {
    idle.seen();
    if (!started) {
      // Until `start`, the socket has proved nothing: a few small frames, or it is closed.
      const size = typeof message.data === "string" ? message.data.length : MAX_PRE_START_MESSAGE_CHARS + 1;
      if (size > MAX_PRE_START_MESSAGE_CHARS) return refuse("oversized frame before start");
      if (++preStartMessages > MAX_PRE_START_MESSAGES) return refuse("too many frames before start");
    }
    const decoded = decodeTwilioFrame(message.data);
    if (!decoded.ok) return count("twilio", decoded.reason, decoded.event);
    const frame = decoded.frame;
    if (frame.event === "start") {
      onStart(frame).catch((error) => {
        log.error("stream.start_failed", { message: errorMessage(error) });
        bridge.fail("start_failed");
      });
    } else {
      if (frame.event === "media" && frame.track === "inbound") callerFrames?.inc();
      bridge.onTwilioFrame(frame);
    }
  };
  twilio.onclose = () => {
    idle.forget();
    bridge.twilioClosed();
    // A stream that closes before `start` never began a call: nothing else will resolve it.
    if (ending === null) resolveDone();
  };
  twilio.onerror = () => log.warn("twilio.socket_error", {});

  return {
    done,
    get proven() {
      return proven;
    },
    shutdown: async (reason) => {
      if (bridge.phase === "connecting" || bridge.phase === "live") {
        log.info("call.handoff_on_shutdown", { reason });
        if (reason === DRAIN_REASON) {
          // A self-hosted worker's SIGTERM drain has time: move at a moment nobody speaks (a
          // sentence spoken while the stream moves is lost), forced after DRAIN_QUIET_WAIT_MS.
          bridge.handOffWhenQuiet("drain");
          const forced = setTimeout(() => {
            log.warn("call.drain_forced", { waited_ms: DRAIN_QUIET_WAIT_MS });
            bridge.handOff("drain");
          }, DRAIN_QUIET_WAIT_MS);
          await done;
          clearTimeout(forced);
        } else {
          // The Edge runtime's beforeunload: the worker is ending now.
          bridge.handOff("beforeunload");
        }
      } else {
        bridge.fail(`worker_shutdown:${reason}`);
      }
      if (ending) await ending;
    },
  };
}

const CLOSE_REASONS: Record<CallOutcome["status"], string> = {
  completed: "call ended",
  failed: "call failed",
  handed_off: "call handed off",
};

function snakeCase(stats: object): Record<string, number> {
  return Object.fromEntries(
    Object.entries(stats).map((
      [name, value],
    ) => [name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase()), value]),
  );
}

function closeQuietly(socket: WebSocket | null, code: number, reason: string): void {
  if (socket === null) return;
  if (socket.readyState === WebSocket.CLOSING || socket.readyState === WebSocket.CLOSED) return;
  try {
    socket.close(code, reason);
  } catch {
    // A socket still connecting may refuse close() on some runtimes; its onclose ends things.
  }
}

/** Item ids must be unique within the model session and, because a resumed call keeps its
 * CallSid, across sessions too: a random part per session, a counter per item (max 32 chars). */
function itemIdFactory(): (kind: ItemKind) => string {
  const session = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  let counter = 0;
  return (kind) => `${kind}_${session}_${++counter}`;
}
