// HTTP routing for the function: Twilio's voice webhook, the <Connect action> request, and the
// Media Stream upgrade, all at the function's own URL. Every Twilio request is signature-checked
// against the public URL Twilio was given, since inside the runtime req.url lacks /functions/v1.
// A long call is several streams: each is handed off before the worker's wall clock (handoff.ts)
// and the connect action answers the next one.

import {
  type CallSession,
  type CallSessionDeps,
  HEARTBEAT_INTERVAL_MS,
  startCallSession,
  type StreamOutcome,
} from "./call_session.ts";
import type { Config } from "./config.ts";
import { errorMessage, type Logger } from "./log.ts";
import type { CallRecord, StoreBackend } from "./store.ts";
import {
  afterStream,
  currentLocalOutcome,
  type LocalOutcome,
  nextStream,
  signedStreamTwiml,
  type StreamCall,
  transferOutcomeOf,
  transferTarget,
} from "./stream_contract.ts";
import { DRAIN_REASON, TRANSFER_UNANSWERED_REASON } from "./handoff.ts";
import { createVoiceMetrics, handoffMetricTrigger, type VoiceMetrics } from "./metrics.ts";
import { createOpsEndpoints } from "./ops_endpoints.ts";
import { readCappedText } from "./request_body.ts";
import { createDialEndpoint, DIAL_QUERY } from "./dial_api.ts";
import { answeredByMachine, contextFromUrl, isOutbound, machineTwiml, tenantNumber } from "./outbound.ts";
import {
  CALL_STATUS_QUERY,
  parseCallStatus,
  type Parsed,
  parseRecordingStatus,
  RECORDING_STATUS_QUERY,
} from "./call_status.ts";
import type { TurnStore } from "./turn_store.ts";
import { isValidSignature, type Param } from "./twilio_signature.ts";
import {
  apologyTwiml,
  dialTwiml,
  hangUpTwiml,
  notInServiceTwiml,
  startingRecording,
  twimlResponse,
} from "./twiml.ts";

// Supabase hands the function `/twilio-voice...`; `supabase functions serve` and plain Deno behind
// the local gateway see `/functions/v1/twilio-voice...`.
const ROUTE = /^(?:\/functions\/v1)?\/twilio-voice\/?$/;
/** Marks the connect action's request apart from the voice webhook; both are Twilio POSTs. */
export const AFTER_STREAM_QUERY = "event=stream-ended";
/** Marks the transfer's <Dial action> request (how the dial to a person ended). */
export const DIAL_STATUS_QUERY = "event=dial-status";
const CALL_SID = /^CA[0-9A-Za-z]{32}$/;
// Twilio's webhook and connect-action forms are a few KB (about 30 short parameters).
const MAX_FORM_BYTES = 64 * 1024;
// Twilio posts the whole form at once; a body still arriving after this is not Twilio's.
const BODY_TIMEOUT_MS = 10_000;
// Twilio sends `connected` and `start` the moment the stream's socket opens (milliseconds); a
// socket that has not proved its call within this is closed.
const PRE_START_DEADLINE_MS = 5_000;
// The upgrade's signature covers only the fixed stream URL, so one observed value opens any
// number of sockets: cap those that have not yet proved their call with a valid `start`. A worker
// holds ~50 calls (Supabase's guidance), and each real call spends milliseconds unproven.
const MAX_UNPROVEN_STREAMS = 32;
const RECENT_OUTCOMES = 1000;
// finalize_stale_calls is one indexed UPDATE over the live rows of every tenant: once a minute per
// worker is plenty against a 2-minute staleness bound, and costs no call anything.
const SWEEP_INTERVAL_MS = 60_000;

/** Each call writes through the one TurnStore of the worker, so a shutdown flushes them all. */
export function turnStoreWriters(turnStore: TurnStore): CallSessionDeps["openWriter"] {
  return (callSid) => ({
    record: (row) => turnStore.record(row),
    recordToolCall: (row) => turnStore.recordToolCall(row),
    finish: (end) => void turnStore.finish({ callSid, ...end }),
    flush: async (timeoutMs) => void await turnStore.flush(timeoutMs),
  });
}

export interface AppDeps {
  config: Config;
  store: StoreBackend;
  log: Logger;
  openWriter: CallSessionDeps["openWriter"];
  openModelSocket?: CallSessionDeps["openModelSocket"];
  /** Keeps the worker alive until a call's promise settles (EdgeRuntime.waitUntil on Supabase). */
  waitUntil?: (promise: Promise<unknown>) => void;
  setupTimeoutMs?: number;
  flushTimeoutMs?: number;
  preStartDeadlineMs?: number;
  maxUnprovenStreams?: number;
  /** When this worker started, on the `now` clock: the wall-clock budget runs from there. Null or
   * absent: per stream (plain Deno, where one process serves every call; see handoff.ts). */
  workerStartedAt?: number | null;
  now?: () => number;
  /** The wall clock in unix seconds (stream tokens' issue time and window). */
  unixNow?: () => number;
  heartbeatIntervalMs?: number;
  sweepIntervalMs?: number;
  /** Runs tenants' http and sql tools (tool_runner.ts); absent: a tool call answers an error. */
  runTool?: CallSessionDeps["runTool"];
  /** The worker's turn store, for /metrics (queue depth, writes given up on). */
  turnStoreCounts?: () => { pending: number; dropped: number };
  /** True on Supabase's Edge Runtime (/metrics only with METRICS_TOKEN there). */
  onEdge?: boolean;
  /** Reaches Twilio's REST API for the dial endpoint; absent: the global fetch. */
  fetch?: typeof fetch;
  /** A crashed worker's call taken over once its lease lapsed (crash_resume.ts); absent: such a
   * connect action apologises, as for any call cut off. */
  resumeCrashed?: (call: CallRecord, log: Logger) => Promise<CallRecord | null>;
}

export interface App {
  handle(request: Request): Promise<Response>;
  /** Hand every live call off to a fresh worker (or fail those not begun) and flush each. */
  shutdown(reason: string): Promise<void>;
  /** SIGTERM on a self-hosted worker: /readyz 503 and no new stream at once, then every live
   * call handed off (trigger "drain"); resolves when each has handed off. */
  drain(): Promise<void>;
  readonly draining: boolean;
  readonly activeCalls: number;
  readonly metrics: VoiceMetrics;
}

// A call sid of the right shape that no call has: /readyz's database check reads it (one indexed
// lookup, no row) through the same store the calls use.
const READY_PROBE_CALL_SID = "CA" + "0".repeat(32);

export function createApp(deps: AppDeps): App {
  const { config, store, log } = deps;
  const sessions = new Set<CallSession>();
  let draining = false;
  const metrics = createVoiceMetrics({
    liveCalls: () => sessions.size,
    turnStoreQueueDepth: () => deps.turnStoreCounts?.().pending ?? 0,
    turnStoreWriteFailures: () => deps.turnStoreCounts?.().dropped ?? 0,
    draining: () => draining,
  });
  const ops = createOpsEndpoints({
    registry: metrics.registry,
    draining: () => draining,
    pingDatabase: () => store.getCall(READY_PROBE_CALL_SID),
    metricsToken: config.metricsToken,
    onEdge: deps.onEdge ?? false,
    now: deps.now ?? (() => performance.now()),
  });
  // How calls served by this worker ended, for a connect action that beats the row's write.
  const recentOutcomes = new Map<string, LocalOutcome>();
  const streamTargets = {
    actionUrl: `${config.publicUrl}?${AFTER_STREAM_QUERY}`,
    streamUrl: config.streamUrl,
  };

  const unixNow = deps.unixNow ?? (() => Math.floor(Date.now() / 1000));
  // A tenant's backend placing a call (service-role bearer, not a Twilio signature): dial_api.ts.
  const dial = createDialEndpoint({
    publicUrl: config.publicUrl,
    serviceRoleKey: config.supabaseServiceRoleKey,
    twilioAccountSid: config.twilioAccountSid,
    twilioAuthToken: config.twilioAuthToken,
    twilioApiUrl: config.twilioApiUrl,
    store,
    log,
    fetch: deps.fetch,
  });

  const rememberOutcome = (outcome: StreamOutcome) => {
    if (outcome.status === "handed_off") {
      const trigger = handoffMetricTrigger(outcome.reason);
      if (trigger !== null) metrics.handoffs.inc(trigger);
    }
    if (outcome.callSid === null || outcome.stream === null) return;
    recentOutcomes.delete(outcome.callSid);
    const local: LocalOutcome = { status: outcome.status, reason: outcome.reason, stream: outcome.stream };
    if (outcome.transferTo !== undefined) local.transferTo = outcome.transferTo;
    recentOutcomes.set(outcome.callSid, local);
    if (recentOutcomes.size > RECENT_OUTCOMES) recentOutcomes.delete(recentOutcomes.keys().next().value!);
  };

  const sessionDeps: CallSessionDeps = {
    twilioAuthToken: config.twilioAuthToken,
    openaiApiKey: config.openaiApiKey,
    realtimeUrl: config.realtimeUrl,
    realtimeModel: config.realtimeModel,
    store,
    openWriter: deps.openWriter,
    openModelSocket: deps.openModelSocket ?? ((url, protocols) => new WebSocket(url, protocols)),
    log,
    setupTimeoutMs: deps.setupTimeoutMs ?? 15_000,
    flushTimeoutMs: deps.flushTimeoutMs ?? 5_000,
    preStartDeadlineMs: deps.preStartDeadlineMs ?? PRE_START_DEADLINE_MS,
    onOutcome: rememberOutcome,
    heartbeatIntervalMs: deps.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS,
    unixNow,
    wallClockLimitS: config.wallClockLimitS,
    workerStartedAt: deps.workerStartedAt ?? null,
    now: deps.now ?? (() => performance.now()),
    runTool: deps.runTool,
    metrics,
  };

  async function readSignedForm(request: Request): Promise<Param[] | Response> {
    const signature = request.headers.get("x-twilio-signature");
    if (!signature) return text(400, "missing X-Twilio-Signature");
    const body = await readCappedText(request, MAX_FORM_BYTES, BODY_TIMEOUT_MS);
    if (body.kind === "too_large") return text(413, "request body too large");
    if (body.kind === "timeout") return text(408, "request body too slow");
    const params: Param[] = [...new URLSearchParams(body.text)];
    const rawUrl = request.url;
    const query = rawUrl.includes("?") ? rawUrl.slice(rawUrl.indexOf("?")) : "";
    const signedUrls = [config.publicUrl + query, `${config.publicUrl}/${query}`];
    if (!await isValidSignature(config.twilioAuthToken, signature, signedUrls, params)) {
      log.warn("http.bad_signature", { path: new URL(rawUrl).pathname });
      return text(403, "invalid X-Twilio-Signature");
    }
    return params;
  }

  async function voiceWebhook(params: Map<string, string>, url: URL): Promise<Response> {
    const callSid = params.get("CallSid") ?? "";
    const to = params.get("To") ?? "";
    // The tenant's own number: To on an inbound call, From on one the tenant placed (outbound.ts).
    const ownNumber = tenantNumber(params);
    if (!CALL_SID.test(callSid) || !to || !ownNumber) return text(400, "CallSid, To and From are required");
    const callLog = log.with({ call_sid: callSid });
    const outbound = isOutbound(params);
    try {
      const owner = await store.findNumberOwner(ownNumber);
      if (owner === null) {
        callLog.warn("call.number_not_in_service", { to_number: ownNumber, outbound });
        return twimlResponse(outbound ? hangUpTwiml() : notInServiceTwiml());
      }
      await store.startCall({
        callSid,
        tenantId: owner.tenantId,
        fromNumber: params.get("From") ?? null,
        toNumber: to,
        direction: outbound ? "outbound" : "inbound",
        // Trusted: the URL is covered by the signature readSignedForm verified.
        outboundContext: outbound ? contextFromUrl(url) : null,
      });
      if (outbound && answeredByMachine(params)) {
        const settings = await store.outboundSettings(owner.tenantId);
        callLog.info("call.answered_by_machine", { voicemail_action: settings.voicemailAction });
        return twimlResponse(machineTwiml(settings));
      }
      // The insert above keeps an existing row as it is; a webhook for a call that has already
      // ended, moved on or had its stream connected is a replay (Twilio asks once per call, and
      // retries only while it has no answer, so before any stream), and gets nothing usable.
      const existing = await store.getCall(callSid);
      if (existing !== null && (existing.status !== "in_progress" || existing.streamClaimed)) {
        callLog.warn("call.webhook_replayed", {
          status: existing.status,
          stream_claimed: existing.streamClaimed,
        });
        return twimlResponse(hangUpTwiml());
      }
      // An outbound call was recorded from its creation (Record=true, dial_api.ts and supactl
      // dial); an inbound one starts recording here, once: a resumed stream's call goes on recording.
      const record = !outbound && (await store.outboundSettings(owner.tenantId)).recordCalls;
      callLog.info("call.answered", { tenant_id: owner.tenantId, outbound, record });
      // The stream finds its agent by the tenant's number, so an outbound call gets its tenant's.
      const call = { callSid, tenantId: owner.tenantId, toNumber: ownNumber, resume: null };
      if (!record) return await streamResponse(call);
      const twiml = await signedStreamTwiml(config.twilioAuthToken, streamTargets, call, unixNow());
      return twimlResponse(startingRecording(twiml, `${config.publicUrl}?${RECORDING_STATUS_QUERY}`));
    } catch (error) {
      callLog.error("call.answer_failed", { message: errorMessage(error) });
      return twimlResponse(apologyTwiml());
    }
  }

  async function connectAction(params: Map<string, string>): Promise<Response> {
    const callSid = params.get("CallSid") ?? "";
    const callLog = log.with({ call_sid: callSid });
    let call = null;
    try {
      call = CALL_SID.test(callSid) ? await store.getCall(callSid) : null;
    } catch (error) {
      callLog.error("store.get_call_failed", { message: errorMessage(error) });
    }
    const local = currentLocalOutcome(call, recentOutcomes.get(callSid) ?? null);
    if (call?.status === "in_progress" && call.streamClaimed && local === null && deps.resumeCrashed) {
      // The stream ended without its worker finalizing the row: a crash, or a replay (crash_resume.ts).
      call = await deps.resumeCrashed(call, callLog) ?? call;
    }
    const next = afterStream(call, local);
    callLog.info("call.after_stream", { next, status: call?.status });
    switch (next) {
      case "apologize":
        return twimlResponse(apologyTwiml());
      case "hang_up":
        return twimlResponse(hangUpTwiml());
      case "resume":
        return await continueCall(call!, local, tenantNumber(params), callLog);
      case "transfer":
        return transferCall(transferTarget(call, local)!, tenantNumber(params), callLog);
    }
  }

  // ---- the transfer tool: <Dial> a person, and back to the agent when nobody answers ----

  /** The stream ended for a transfer: dial the tenant's number, showing the number called. */
  function transferCall(number: string, to: string, callLog: Logger): Response {
    callLog.info("call.transfer_dialled", {});
    return twimlResponse(
      dialTwiml({ actionUrl: `${config.publicUrl}?${DIAL_STATUS_QUERY}`, callerId: to, number }),
    );
  }

  /** How the transfer's dial ended: taken (or the caller hung up) ends the call; nobody taking it
   * brings the call back to the agent on a new stream that resumes it (claimed once, like a
   * handoff's: the row becomes handed_off without moving handoff_count). */
  async function dialStatus(params: Map<string, string>): Promise<Response> {
    const callSid = params.get("CallSid") ?? "";
    const callLog = log.with({ call_sid: callSid });
    if (!CALL_SID.test(callSid)) return text(400, "CallSid is required");
    const { outcome, comesBack } = transferOutcomeOf(params.get("DialCallStatus") ?? "");
    try {
      const comeBack = comesBack ? { endReason: TRANSFER_UNANSWERED_REASON } : null;
      let call = await store.recordTransferOutcome(callSid, outcome, comeBack);
      // Twilio retries a request it got no answer to: the row already came back, so answer again
      // (the resume token it mints is single-use through claim_call_stream all the same).
      if (call === null && comesBack) {
        const current = await store.getCall(callSid);
        if (current?.status === "handed_off" && current.endReason === TRANSFER_UNANSWERED_REASON) {
          call = current;
        }
      }
      callLog.info("call.transfer_outcome", { outcome, comes_back: comesBack, recorded: call !== null });
      if (!comesBack || call === null) return twimlResponse(hangUpTwiml());
      return await continueCall(call, null, tenantNumber(params), callLog);
    } catch (error) {
      callLog.error("store.transfer_outcome_failed", { message: errorMessage(error) });
      return twimlResponse(comesBack ? apologyTwiml() : hangUpTwiml());
    }
  }

  // ---- Twilio's view of the call: status and recording callbacks (call_status.ts) ----

  /** One signed callback written as it comes; the database keeps only what moves the row forward,
   * so a retry or a late event answers 204 like the first (Twilio stops retrying on a 2xx). */
  async function statusCallback<T>(
    parsed: Parsed<T>,
    kind: string,
    write: (update: T) => Promise<boolean>,
  ): Promise<Response> {
    if (!parsed.ok) {
      log.warn("callback.malformed", { kind, problem: parsed.problem });
      return text(400, parsed.problem);
    }
    try {
      const moved = await write(parsed.value);
      log.info("callback.recorded", { kind, moved });
      return new Response(null, { status: 204 });
    } catch (error) {
      // A 5xx makes Twilio retry later, when the database may answer.
      log.error("store.callback_failed", { kind, message: errorMessage(error) });
      return text(503, "could not record the callback; retry");
    }
  }

  /** The next stream of a handed-off call, with a token of its own that signs the resume. */
  async function continueCall(
    call: CallRecord,
    local: LocalOutcome | null,
    to: string,
    callLog: Logger,
  ): Promise<Response> {
    if (!to) {
      // Twilio sends To with every request of the call; without it the agent cannot be found.
      callLog.error("call.resume_without_to", {});
      return twimlResponse(apologyTwiml());
    }
    const resume = nextStream(call, local);
    callLog.info("call.resume_answered", resume);
    return await streamResponse({ callSid: call.callSid, tenantId: call.tenantId, toNumber: to, resume });
  }

  async function streamResponse(call: StreamCall): Promise<Response> {
    return twimlResponse(await signedStreamTwiml(config.twilioAuthToken, streamTargets, call, unixNow()));
  }

  // The sweep rides on Twilio's signed requests once their answer is ready: no timer keeps an idle
  // worker awake, no call waits for it, and a frame never triggers it.
  let lastSweepAt = -Infinity;
  function sweepStaleCalls(): void {
    const now = sessionDeps.now();
    if (now - lastSweepAt < (deps.sweepIntervalMs ?? SWEEP_INTERVAL_MS)) return;
    lastSweepAt = now;
    const sweep = store.finalizeStaleCalls().then(
      (finalized) => {
        if (finalized > 0) log.info("calls.stale_finalized", { finalized });
      },
      (error) => log.warn("store.sweep_failed", { message: errorMessage(error) }),
    );
    deps.waitUntil?.(sweep);
  }

  async function upgrade(request: Request): Promise<Response> {
    const signature = request.headers.get("x-twilio-signature");
    const streamUrls = [config.streamUrl, config.streamUrl + "/"];
    if (!signature || !await isValidSignature(config.twilioAuthToken, signature, streamUrls)) {
      log.warn("stream.bad_signature", { signed: signature !== null });
      return text(403, "invalid X-Twilio-Signature");
    }
    // A draining worker takes no new stream: the caller's stream fails, and its connect action
    // (through the load balancer, to a ready worker) resumes the call. The balancer stops sending
    // here once /readyz says 503, so this is only the moment between the two.
    if (draining) {
      log.warn("stream.refused_draining", {});
      return text(503, "draining");
    }
    let unproven = 0;
    for (const session of sessions) if (!session.proven) unproven++;
    if (unproven >= (deps.maxUnprovenStreams ?? MAX_UNPROVEN_STREAMS)) {
      log.warn("stream.too_many_unproven", { unproven });
      return text(503, "too many streams starting");
    }
    // Logged in the same turn as the draining check: a fleet can tell a stream taken before a drain
    // from one taken during it.
    log.info("stream.accepted", {});
    // No per-socket idle timer (it re-arms on every frame): call_session's shared sweep bounds silence.
    const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
    const session = startCallSession(socket, sessionDeps);
    sessions.add(session);
    const finished = session.done.finally(() => sessions.delete(session));
    deps.waitUntil?.(finished);
    return response;
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const opsResponse = ops.handle(request);
    if (opsResponse !== null) return await opsResponse;
    if (!ROUTE.test(url.pathname)) return text(404, "not found");
    try {
      if (request.method === "GET") {
        if (request.headers.get("upgrade")?.toLowerCase() === "websocket") return await upgrade(request);
        return Response.json({ name: "twilio-voice", status: "ok" });
      }
      if (request.method !== "POST") return text(405, "method not allowed");
      if (url.search === `?${DIAL_QUERY}`) return await dial(request);
      const form = await readSignedForm(request);
      if (form instanceof Response) return form;
      const params = new Map(form);
      const response = url.search === `?${AFTER_STREAM_QUERY}`
        ? await connectAction(params)
        : url.search === `?${DIAL_STATUS_QUERY}`
        ? await dialStatus(params)
        : url.search === `?${CALL_STATUS_QUERY}`
        ? await statusCallback(parseCallStatus(params), "call", (update) => store.recordTwilioStatus(update))
        : url.search === `?${RECORDING_STATUS_QUERY}`
        ? await statusCallback(parseRecordingStatus(params), "recording", (update) =>
          store.recordRecording(update))
        : await voiceWebhook(params, url);
      sweepStaleCalls();
      return response;
    } catch (error) {
      log.error("http.unhandled", { message: errorMessage(error), method: request.method });
      return text(500, "internal error");
    }
  }

  return {
    handle,
    shutdown: async (reason) => {
      await Promise.all([...sessions].map((session) => session.shutdown(reason)));
    },
    drain: async () => {
      draining = true;
      log.warn("worker.draining", { active_calls: sessions.size });
      await Promise.all([...sessions].map((session) => session.shutdown(DRAIN_REASON)));
    },
    get draining() {
      return draining;
    },
    get activeCalls() {
      return sessions.size;
    },
    metrics,
  };
}

function text(status: number, body: string): Response {
  return new Response(body + "\n", { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}
