// A worker killed without draining (kill -9, OOM, a lost node) leaves its calls in_progress; their
// connect actions land on a live worker, which resumes each one from its stored turns once the dead
// worker's lease has lapsed (migration 20261204090200_worker_leases.sql).
//
// The connect action is signed but carries no time: a captured one replayed during a live call
// looks like a crash's. What tells them apart is the owner's lease, renewed every LEASE_RENEW_MS:
// a live owner keeps it fresh, so the replay waits out CRASH_RESUME_WAIT_MS, changes nothing and is
// refused. The take-over is a compare-and-set on the row (in_progress at its handoff_count), so a
// crash is resumed once however many connect actions arrive; the stream it mints then claims the
// call like any handoff's (claim_call_stream, once).

import { handoffReason } from "./handoff.ts";
import type { Logger } from "./log.ts";
import { errorMessage } from "./log.ts";
import type { CallRecord, StoreBackend } from "./store.ts";

/** How often a worker with a lease renews it (one write per worker, not per call). */
export const LEASE_RENEW_MS = 1_000;
/** A lease not renewed for this long is a dead worker's: three missed renewals, so a busy event
 * loop or one slow write does not make a live worker's calls look crashed. */
export const LEASE_LAPSE_MS = 3_000;
/** How long a connect action waits for a fresh lease to lapse: the lapse, plus a renewal's worth
 * of slack, well inside Twilio's 15 s webhook timeout. */
export const CRASH_RESUME_WAIT_MS = LEASE_LAPSE_MS + 2 * LEASE_RENEW_MS;
/** How often a waiting connect action asks again (one UPDATE that matches nothing while the owner
 * lives). */
const CRASH_RESUME_POLL_MS = 250;
/** Connect actions one worker lets wait at once: a flood of replays is refused at once past it. */
const MAX_CRASH_RESUME_WAITS = 256;

/** The calls row's end_reason after a take-over; the next stream's model speaks first (the caller
 * has heard a few seconds of silence). */
export const CRASH_RESUME_REASON = handoffReason("crash", "reply");

export interface WorkerLease {
  readonly workerId: string;
  /** Stop renewing and delete the row (after a drain has handed every call off). */
  release(): Promise<void>;
}

/** Renew this worker's lease every LEASE_RENEW_MS from now on; a failed renewal is logged and the
 * next one tries again (lapsing is the safe failure: calls are then resumable, never stolen while
 * the lease is fresh). */
export function startWorkerLease(store: StoreBackend, log: Logger, renewMs = LEASE_RENEW_MS): WorkerLease {
  const workerId = crypto.randomUUID();
  let failing = false;
  const renew = () =>
    store.renewWorkerLease(workerId).then(() => {
      if (failing) log.info("worker.lease_renewed", {});
      failing = false;
    }, (error) => {
      if (!failing) log.warn("worker.lease_renew_failed", { message: errorMessage(error) });
      failing = true;
    });
  renew();
  const timer = setInterval(renew, renewMs);
  // The lease must not keep an otherwise finished process alive.
  Deno.unrefTimer(timer);
  return {
    workerId,
    release: async () => {
      clearInterval(timer);
      await store.releaseWorkerLease(workerId);
    },
  };
}

/** A store whose stream claims name this worker (claim_call_stream's p_worker_id). */
export function claimingAs(store: StoreBackend, workerId: string): StoreBackend {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === "claimCallStream") {
        return (callSid: string, tenantId: string, stream: number) =>
          target.claimCallStream(callSid, tenantId, stream, workerId);
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

export interface CrashResumeOptions {
  waitMs?: number;
  pollMs?: number;
  lapseMs?: number;
}

/**
 * The connect action of a call still in_progress with a claimed stream, on a worker that did not
 * serve it: the row taken over (handed_off, CRASH_RESUME_REASON) once its worker's lease lapsed
 * within the wait, else null (the owner is alive: a replay; or the call moved on meanwhile).
 */
export function createCrashResumer(store: StoreBackend, options: CrashResumeOptions = {}) {
  const waitMs = options.waitMs ?? CRASH_RESUME_WAIT_MS;
  const pollMs = options.pollMs ?? CRASH_RESUME_POLL_MS;
  const lapseMs = options.lapseMs ?? LEASE_LAPSE_MS;
  let waiting = 0;
  return async function resumeCrashed(call: CallRecord, log: Logger): Promise<CallRecord | null> {
    if (waiting >= MAX_CRASH_RESUME_WAITS) {
      log.warn("call.crash_resume_refused", { reason: "too many waiting" });
      return null;
    }
    waiting++;
    const started = performance.now();
    try {
      while (true) {
        const taken = await store.resumeCrashedCall(call, lapseMs, CRASH_RESUME_REASON);
        const waitedMs = Math.round(performance.now() - started);
        if (taken !== null) {
          log.warn("call.crash_resumed", { handoff: taken.handoffCount + 1, waited_ms: waitedMs });
          return taken;
        }
        if (waitedMs + pollMs > waitMs) {
          log.warn("call.crash_resume_refused", { reason: "owner alive", waited_ms: waitedMs });
          return null;
        }
        await new Promise((resolve) => setTimeout(resolve, pollMs));
      }
    } catch (error) {
      log.error("store.crash_resume_failed", { message: errorMessage(error) });
      return null;
    } finally {
      waiting--;
    }
  };
}
