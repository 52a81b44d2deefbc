// One call's sockets wired to its CallBridge: Twilio's Media Stream on one side, the Realtime model
// on the other, the turn writer behind. The only awaits are in setup (token check, tenant lookup)
// and at the end (finalize, flush); per frame it is decode, one bridge call, one send.

import { CallBridge, type CallOutcome, type ItemKind } from "./bridge.ts";
import { planCall, type StoreFindings } from "./call_planner.ts";
import { realtimeModelUrl } from "./config.ts";
import { handoffSchedule } from "./handoff.ts";
import { errorMessage, type Logger } from "./log.ts";
import { decodeServerEvent } from "./realtime_events.ts";
import type { CallEnd, NumberOwner, StoreBackend, TurnRow } from "./store.ts";
import { verifyStreamStart } from "./stream_contract.ts";
import { decodeTwilioFrame, type TwilioEncoder, twilioEncoder, type TwilioFrame } from "./twilio_frames.ts";
import type { RejectReason } from "./wire.ts";

/** The per-call face of the turn store: record is synchronous (queued), the rest is the end. */
export interface CallWriter {
  record(row: TurnRow): void;
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
  onOutcome(outcome: CallOutcome): void;
  /** WALL_CLOCK_LIMIT_S, counted from workerStartedAt (Supabase) or, when that is null, from each
   * stream's start (plain Deno): see handoff.ts. */
  wallClockLimitS: number;
  workerStartedAt: number | null;
  /** The clock of workerStartedAt, in ms (performance.now). */
  now(): number;
}

// What Twilio sends before `start` is one `connected` frame (~70 bytes), and `start` itself is
// under 2 KB even with a handful of <Parameter>s: anything more is not Twilio. Twilio sends both
// as soon as the socket opens, so the deadline (PRE_START_DEADLINE_MS in app.ts) is generous.
export const MAX_PRE_START_MESSAGE_CHARS = 16 * 1024;
export const MAX_PRE_START_MESSAGES = 8;
/** Close code for a peer that broke the stream's rules (RFC 6455 §7.4.1: policy violation). */
const POLICY_VIOLATION = 1008;

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
  const streamStartedAt = deps.now();
  let started = false;
  /** Set once the start frame's token checks out: from then on the call row is ours to finalize,
   * even if the call ends before the bridge began (hang-up during setup, lookup failure). */
  let verified: { callSid: string; tenantId: string } | null = null;
  const rejected: Partial<Record<`${"twilio" | "model"}_${RejectReason}`, number>> = {};
  let sendsSkipped = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => resolveDone = resolve);
  let ending: Promise<void> | null = null;

  let preStartMessages = 0;
  const refuse = (why: string) => {
    log.warn("stream.refused", { reason: why });
    closeQuietly(twilio, POLICY_VIOLATION, why);
  };
  const preStartTimer = setTimeout(() => {
    if (verified === null && ending === null) refuse("no valid start in time");
  }, deps.preStartDeadlineMs);

  const count = (side: "twilio" | "model", reason: RejectReason, event?: string) => {
    const key = `${side}_${reason}` as const;
    rejected[key] = (rejected[key] ?? 0) + 1;
    // Only the first of each kind is logged: a misbehaving peer must not flood the log.
    if (rejected[key] === 1) log.warn(`${side}.frame_ignored`, { reason, frame_event: event });
  };

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
    twilioMedia: (payload) => sendTwilio(encoder!.media(payload)),
    twilioMark: (name) => sendTwilio(encoder!.mark(name)),
    twilioClear: () => sendTwilio(encoder!.clear()),
    turn: (row) => writer?.record(row),
    log: (level, event, fields) => log[level](event, fields),
    end: (outcome) => {
      ending = finishCall(outcome);
    },
  }, { newItemId: itemIdFactory() });

  async function finishCall(outcome: CallOutcome): Promise<void> {
    clearTimeout(preStartTimer);
    clearTimeout(setupTimer);
    handoffTimers.forEach((timer) => clearTimeout(timer));
    closeQuietly(model, 1000, "call ended");
    const call = verified;
    deps.onOutcome({ ...outcome, callSid: call?.callSid ?? null });
    if (call !== null) {
      writer ??= deps.openWriter(call.callSid, call.tenantId);
      writer.finish({ status: outcome.status, endReason: outcome.reason, usage: { ...outcome.usage } });
      try {
        await writer.flush(deps.flushTimeoutMs);
      } catch (error) {
        log.error("store.flush_failed", { message: errorMessage(error) });
      }
    }
    // After the row is final: closing the stream makes Twilio ask the connect action, which reads it.
    closeQuietly(twilio, 1000, CLOSE_REASONS[outcome.status]);
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
    const stream = await verifyStreamStart(deps.twilioAuthToken, frame.callSid, frame.customParameters);
    if (stream === null) {
      log.warn("stream.token_rejected", {});
      bridge.fail("bad_stream_token");
      return;
    }
    log = log.with({ tenant_id: stream.tenantId });
    verified = { callSid: stream.callSid, tenantId: stream.tenantId };
    clearTimeout(preStartTimer);

    // Started together: on a resumed call these three reads are most of the handoff's gap.
    const ownerLookup = deps.store.findNumberOwner(stream.toNumber);
    const resuming = stream.resume ? resumeCall(stream.callSid, stream.resume.handoff) : null;
    ownerLookup.catch(() => {});
    resuming?.catch(() => {});
    let owner: NumberOwner | null;
    try {
      owner = await ownerLookup;
    } catch (error) {
      // A tenant's agent with the wrong instructions is worse than an apology.
      log.error("store.agent_lookup_failed", { message: errorMessage(error) });
      bridge.fail("agent_lookup_failed");
      return;
    }
    let resumed: StoreFindings["resumed"];
    try {
      resumed = resuming ? await resuming : null;
    } catch (error) {
      // Without its history the model would start the conversation over: apologize instead.
      log.error("store.resume_failed", { message: errorMessage(error) });
      bridge.fail("resume_failed");
      return;
    }
    if (bridge.phase === "ended") return; // the caller hung up during the lookup

    const plan = planCall(stream, { owner, resumed }, deps.realtimeModel);
    for (const warning of plan.warnings) log.warn(warning.event, warning.fields);
    if (plan.kind === "refuse") {
      if (!plan.finalize) verified = null;
      bridge.fail(plan.reason);
      return;
    }
    writer = deps.openWriter(stream.callSid, stream.tenantId);
    const handoff = handoffSchedule(
      deps.wallClockLimitS,
      deps.workerStartedAt ?? streamStartedAt,
      streamStartedAt,
    );
    bridge.begin({
      ...plan.call,
      callSid: stream.callSid,
      streamSid: frame.streamSid,
      tenantId: stream.tenantId,
      handoff,
    });
    for (const at of [handoff.quietFromMs, handoff.forceAtMs]) {
      // A timer may fire a fraction of a millisecond before `at` by performance.now(): the time it
      // was set for has come all the same, or the window would never open.
      handoffTimers.push(
        setTimeout(() => bridge.tick(Math.max(deps.now(), at)), Math.max(0, at - deps.now())),
      );
    }
    log.info("call.handoff_planned", {
      handoff: stream.resume?.handoff ?? 0,
      quiet_from_s: Math.round((handoff.quietFromMs - deps.now()) / 100) / 10,
      force_at_s: Math.round((handoff.forceAtMs - deps.now()) / 100) / 10,
    });
    openModel(plan.model);
  }

  async function resumeCall(callSid: string, handoff: number) {
    const [call, turns] = await Promise.all([
      deps.store.resumeCall(callSid, handoff),
      deps.store.loadTurns(callSid),
    ]);
    return { call, turns };
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
    model.onopen = () => bridge.modelOpened();
    model.onmessage = (message) => {
      const decoded = decodeServerEvent(message.data);
      if (decoded.ok) bridge.onModelEvent(decoded.frame);
      else count("model", decoded.reason, decoded.event);
    };
    model.onerror = (event) => {
      log.warn("model.socket_error", { message: event instanceof ErrorEvent ? event.message : "error" });
    };
    model.onclose = (event) => bridge.modelClosed(event.code, event.reason);
  }

  twilio.onmessage = (message) => {
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
      bridge.onTwilioFrame(frame);
    }
  };
  twilio.onclose = () => {
    bridge.twilioClosed();
    // A stream that closes before `start` never began a call: nothing else will resolve it.
    if (ending === null) resolveDone();
  };
  twilio.onerror = () => log.warn("twilio.socket_error", {});

  return {
    done,
    get proven() {
      return verified !== null;
    },
    shutdown: async (reason) => {
      if (bridge.phase === "connecting" || bridge.phase === "live") {
        log.info("call.handoff_on_shutdown", { reason });
        bridge.handOff("beforeunload");
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
