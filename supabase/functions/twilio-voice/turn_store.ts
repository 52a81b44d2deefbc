// Turns and call ends, written off the audio path. record() only puts the turn in a map keyed by
// (call_sid, item_id) — a later version of the same turn replaces the queued one, so the latest
// wins — and a single background writer drains the map in small batches. A batch that fails for
// a transient reason is put back (unless a newer version arrived meanwhile) and retried with
// exponential backoff and jitter, a bounded number of times; one that fails for a permanent reason
// is retried row by row so one bad row cannot sink its neighbours, then that row is dropped and
// logged. Every write is an upsert on (call_sid, item_id), so a retry after a lost reply stores
// nothing twice. flush() waits, up to a deadline, until everything queued is stored: when a call
// ends and on the runtime's `beforeunload`.
//
// One writer at a time keeps versions in order: an older version of a turn can never be written
// after a newer one, except when an attempt times out and still lands later (see attemptTimeoutMs).

import { createLogger, errorMessage, type Logger } from "./log.ts";
import type { CallEnd, StoreBackend, ToolCallRow, TurnRow } from "./store.ts";
import { asStoreError, StoreError } from "./store_errors.ts";
import { turnKey } from "./store_rows.ts";

export interface TurnStoreOptions {
  /** Rows per write. Turns come every few seconds; small batches keep each write short. */
  batchSize?: number;
  /** Wait this long after the first queued turn before writing, so an assistant turn and its
   * "interrupted" update that follows a few ms later go out as one write. */
  lingerMs?: number;
  /** Tries per row (and per call end) before it is dropped and logged. */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** An attempt that has not answered by then counts as failed (a hung socket must not stall the
   * queue). The abandoned request may still land later; keep this well above normal latency. */
  attemptTimeoutMs?: number;
  logger?: Logger;
  /** For tests: the jitter source. */
  random?: () => number;
}

export interface FlushResult {
  /** Rows and call ends written since the store was created. */
  stored: number;
  /** Rows and call ends still queued or in flight when flush returned. */
  pending: number;
  /** Rows and call ends given up on (permanent error, or out of attempts). */
  dropped: number;
  elapsedMs: number;
}

interface QueuedEnd {
  end: CallEnd;
  settle: ((stored: boolean) => void)[];
}

// With the defaults a row survives about 30 s of outage: 0.1+0.2+0.4+0.8+1.6+3.2 s, then 5 s
// steps, halved at worst by the jitter. A call's own deadline (flush at its end) comes first.
const DEFAULTS = {
  batchSize: 20,
  lingerMs: 10,
  maxAttempts: 12,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  attemptTimeoutMs: 10_000,
};

function isValidTurn(turn: TurnRow): boolean {
  return typeof turn === "object" && turn !== null &&
    typeof turn.callSid === "string" && turn.callSid !== "" &&
    typeof turn.itemId === "string" && turn.itemId !== "" &&
    typeof turn.tenantId === "string" && typeof turn.text === "string" &&
    (turn.role === "user" || turn.role === "assistant") &&
    Number.isInteger(turn.seq) && typeof turn.interrupted === "boolean";
}

export class TurnStore {
  readonly #backend: StoreBackend;
  readonly #options: typeof DEFAULTS;
  readonly #log: Logger;
  readonly #random: () => number;

  readonly #pending = new Map<string, TurnRow>();
  readonly #inFlight = new Map<string, TurnRow>();
  readonly #attempts = new Map<string, number>();
  readonly #ends = new Map<string, QueuedEnd & { attempts: number }>();
  /** Tool calls to store, by (call_sid, call_id); each is written once (insert, never updated). */
  readonly #toolCalls = new Map<string, { row: ToolCallRow; attempts: number }>();
  /** Rows left to write one at a time after a batch failed permanently. */
  #isolate = 0;
  #failureStreak = 0;
  #stored = 0;
  #dropped = 0;

  #lingerTimer: number | undefined;
  #sleepTimer: number | undefined;
  #wakeSleep: (() => void) | undefined;
  #writer: Promise<void> | undefined;
  #stopped = false;
  readonly #idleWaiters = new Set<() => void>();

  constructor(backend: StoreBackend, options: TurnStoreOptions = {}) {
    this.#backend = backend;
    const { logger, random, ...numbers } = options;
    this.#options = { ...DEFAULTS, ...numbers };
    this.#log = logger ?? createLogger();
    this.#random = random ?? Math.random;
  }

  /** Queue a turn, or a newer version of one. Synchronous and cheap: called from the audio path. */
  record(turn: TurnRow): void {
    try {
      if (this.#stopped) return;
      if (!isValidTurn(turn)) {
        this.#log.warn("turn_store.turn_refused", { call_sid: String(turn?.callSid ?? "") });
        return;
      }
      const key = turnKey(turn);
      this.#pending.delete(key);
      this.#pending.set(key, { ...turn });
      this.#schedule();
    } catch (error) {
      this.#log.error("turn_store.record_failed", { error: errorMessage(error) });
    }
  }

  /** Queue a tool call (stored once per call_id, with the same retries as turns). Synchronous. */
  recordToolCall(row: ToolCallRow): void {
    try {
      if (this.#stopped) return;
      const key = turnKey({ callSid: row.callSid, itemId: `tool:${row.callId}` });
      if (!this.#toolCalls.has(key)) this.#toolCalls.set(key, { row: { ...row }, attempts: 0 });
      this.#schedule();
    } catch (error) {
      this.#log.error("turn_store.record_failed", { error: errorMessage(error) });
    }
  }

  /** Queue the call row's finalization. Resolves true once stored, false if given up on; never
   * rejects. A second finish for the same call before the first is written replaces it. */
  finish(end: CallEnd): Promise<boolean> {
    try {
      if (this.#stopped) return Promise.resolve(false);
      const stamped = { ...end, endedAt: end.endedAt ?? new Date() };
      return new Promise((resolve) => {
        const queued = this.#ends.get(end.callSid);
        if (queued) {
          queued.end = stamped;
          queued.settle.push(resolve);
        } else {
          this.#ends.set(end.callSid, { end: stamped, settle: [resolve], attempts: 0 });
        }
        this.#schedule();
      });
    } catch (error) {
      this.#log.error("turn_store.finish_failed", { call_sid: end?.callSid, error: errorMessage(error) });
      return Promise.resolve(false);
    }
  }

  /** Rows and call ends not yet stored. */
  /** Rows and call ends given up on after their retries, since the store was created. */
  get dropped(): number {
    return this.#dropped;
  }

  get pending(): number {
    return this.#pending.size + this.#inFlight.size + this.#ends.size + this.#toolCalls.size;
  }

  /** Resolves when everything queued is stored (or dropped), or when timeoutMs has passed. */
  async flush(timeoutMs: number): Promise<FlushResult> {
    const started = performance.now();
    try {
      // The contract is "all stored, or the time is up": a writer that goes idle while rows are
      // still queued (one recorded as it finished) is started again rather than trusted.
      while (this.pending > 0 && !this.#stopped) {
        const left = timeoutMs - (performance.now() - started);
        if (left <= 0) break;
        // Write now: no linger, no waiting out a backoff delay.
        clearTimeout(this.#lingerTimer);
        this.#lingerTimer = undefined;
        this.#wakeSleep?.();
        this.#startWriter();
        let timer: number | undefined;
        let done!: () => void;
        await new Promise<void>((resolve) => {
          done = resolve;
          this.#idleWaiters.add(done);
          timer = setTimeout(done, left);
        });
        clearTimeout(timer);
        this.#idleWaiters.delete(done);
      }
    } catch (error) {
      this.#log.error("turn_store.flush_failed", { error: errorMessage(error) });
    }
    const result = {
      stored: this.#stored,
      pending: this.pending,
      dropped: this.#dropped,
      elapsedMs: Math.round(performance.now() - started),
    };
    this.#log.info("turn_store.flushed", {
      stored: result.stored,
      pending: result.pending,
      dropped: result.dropped,
      elapsed_ms: result.elapsedMs,
    });
    return result;
  }

  /** Stop writing (after the attempt in flight) and cancel every timer. Queued work stays queued. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
    this.#wakeSleep?.();
    await this.#writer;
    for (const queued of this.#ends.values()) queued.settle.forEach((settle) => settle(false));
    this.#notifyIdle();
  }

  #schedule(): void {
    if (this.#writer || this.#lingerTimer !== undefined) return;
    this.#lingerTimer = setTimeout(() => {
      this.#lingerTimer = undefined;
      this.#startWriter();
    }, this.#options.lingerMs);
  }

  #startWriter(): void {
    if (this.#writer || this.#stopped) return;
    this.#writer = this.#drain().catch((error) => {
      this.#log.error("turn_store.writer_failed", { error: errorMessage(error) });
    }).finally(() => {
      this.#writer = undefined;
      // A turn recorded between the writer's last look and now would otherwise wait for the next.
      if (this.pending > 0 && !this.#stopped) this.#schedule();
      else this.#notifyIdle();
    });
  }

  #notifyIdle(): void {
    for (const waiter of [...this.#idleWaiters]) waiter();
  }

  async #drain(): Promise<void> {
    while (!this.#stopped) {
      let succeeded: boolean;
      if (this.#pending.size > 0) succeeded = await this.#writeTurns(this.#takeBatch());
      else if (this.#toolCalls.size > 0) succeeded = await this.#writeToolCalls();
      else if (this.#ends.size > 0) succeeded = await this.#writeEnd();
      else return;
      if (succeeded) this.#failureStreak = 0;
      else await this.#backoff();
    }
  }

  #takeBatch(): TurnRow[] {
    const size = this.#isolate > 0 ? 1 : this.#options.batchSize;
    if (this.#isolate > 0) this.#isolate--;
    const batch: TurnRow[] = [];
    for (const [key, row] of this.#pending) {
      if (batch.length >= size) break;
      this.#pending.delete(key);
      this.#inFlight.set(key, row);
      batch.push(row);
    }
    return batch;
  }

  /** Back in the queue, unless record() brought a newer version while this one was in flight. */
  #requeue(row: TurnRow): void {
    const key = turnKey(row);
    this.#inFlight.delete(key);
    if (!this.#pending.has(key)) this.#pending.set(key, row);
  }

  #drop(row: TurnRow, error: StoreError, reason: string): void {
    const key = turnKey(row);
    this.#inFlight.delete(key);
    this.#attempts.delete(key);
    this.#dropped++;
    this.#log.error("turn_store.turn_dropped", {
      call_sid: row.callSid,
      item_id: row.itemId,
      reason,
      code: error.code,
      error: error.message,
    });
  }

  async #writeTurns(batch: TurnRow[]): Promise<boolean> {
    try {
      await this.#attempt(() => this.#backend.upsertTurns(batch));
    } catch (thrown) {
      const error = asStoreError(thrown);
      if (error.permanent) {
        if (batch.length > 1) {
          // Find the bad row(s): write this batch's rows one at a time.
          this.#isolate += batch.length;
          batch.forEach((row) => this.#requeue(row));
          this.#log.warn("turn_store.batch_refused", {
            rows: batch.length,
            code: error.code,
            error: error.message,
          });
        } else {
          this.#drop(batch[0], error, "refused");
        }
        return true;
      }
      for (const row of batch) {
        const key = turnKey(row);
        const attempts = (this.#attempts.get(key) ?? 0) + 1;
        if (attempts >= this.#options.maxAttempts) {
          this.#drop(row, error, "out_of_attempts");
        } else {
          this.#attempts.set(key, attempts);
          this.#requeue(row);
        }
      }
      this.#log.warn("turn_store.write_failed", {
        rows: batch.length,
        attempt: this.#failureStreak + 1,
        code: error.code,
        error: error.message,
      });
      return false;
    }
    for (const row of batch) {
      const key = turnKey(row);
      this.#inFlight.delete(key);
      this.#attempts.delete(key);
    }
    this.#stored += batch.length;
    return true;
  }

  /** A batch of tool calls; after a permanent refusal, one at a time so one bad row sinks only
   * itself (a row stays queued until written or given up on: nothing else can replace it). */
  async #writeToolCalls(): Promise<boolean> {
    const size = this.#isolate > 0 ? 1 : this.#options.batchSize;
    if (this.#isolate > 0) this.#isolate--;
    const batch = [...this.#toolCalls].slice(0, size);
    try {
      await this.#attempt(() => this.#backend.upsertToolCalls(batch.map(([, queued]) => queued.row)));
    } catch (thrown) {
      const error = asStoreError(thrown);
      if (error.permanent && batch.length > 1) {
        this.#isolate += batch.length;
        return true;
      }
      let giveUp = false;
      for (const [key, queued] of batch) {
        queued.attempts++;
        if (!error.permanent && queued.attempts < this.#options.maxAttempts) continue;
        giveUp = true;
        this.#toolCalls.delete(key);
        this.#dropped++;
        this.#log.error("turn_store.tool_call_dropped", {
          call_sid: queued.row.callSid,
          call_id: queued.row.callId,
          code: error.code,
          error: error.message,
        });
      }
      if (!giveUp) {
        this.#log.warn("turn_store.write_failed", {
          tool_calls: batch.length,
          code: error.code,
          error: error.message,
        });
      }
      return error.permanent;
    }
    for (const [key] of batch) this.#toolCalls.delete(key);
    this.#stored += batch.length;
    return true;
  }

  async #writeEnd(): Promise<boolean> {
    const [callSid, queued] = this.#ends.entries().next().value!;
    const { end, settle } = queued;
    try {
      await this.#attempt(() => this.#backend.finishCall(end));
    } catch (thrown) {
      const error = asStoreError(thrown);
      queued.attempts++;
      const giveUp = error.permanent || queued.attempts >= this.#options.maxAttempts;
      this.#log[giveUp ? "error" : "warn"](
        giveUp ? "turn_store.call_end_dropped" : "turn_store.call_end_failed",
        {
          call_sid: callSid,
          attempt: queued.attempts,
          code: error.code,
          error: error.message,
        },
      );
      if (!giveUp) return false;
      this.#settleEnd(callSid, queued, settle.length, false);
      this.#dropped++;
      return true;
    }
    this.#stored++;
    this.#log.info("turn_store.call_finished", { call_sid: callSid, status: end.status });
    this.#settleEnd(callSid, queued, settle.length, true);
    return true;
  }

  /** Resolve the finish() promises the write covered; a finish() that came during it stays queued. */
  #settleEnd(callSid: string, queued: QueuedEnd, covered: number, stored: boolean): void {
    const settled = queued.settle.splice(0, covered);
    if (queued.settle.length === 0) this.#ends.delete(callSid);
    settled.forEach((settle) => settle(stored));
  }

  #attempt(write: () => Promise<void>): Promise<void> {
    let attempt: Promise<void>;
    try {
      attempt = write();
    } catch (error) {
      return Promise.reject(error);
    }
    // An abandoned attempt may still fail later; that is already accounted for.
    attempt.catch(() => {});
    let timer: number | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new StoreError(`no answer within ${this.#options.attemptTimeoutMs} ms`, {
              code: "ATTEMPT_TIMEOUT",
              permanent: false,
            }),
          ),
        this.#options.attemptTimeoutMs,
      );
    });
    return Promise.race([attempt, timeout]).finally(() => clearTimeout(timer));
  }

  async #backoff(): Promise<void> {
    this.#failureStreak++;
    const { baseDelayMs, maxDelayMs } = this.#options;
    const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (this.#failureStreak - 1));
    // "Equal jitter": at least half the delay, so retries from many workers spread out without
    // any of them hammering a database that is restarting.
    const delay = ceiling / 2 + this.#random() * ceiling / 2;
    if (this.#stopped) return;
    await new Promise<void>((resolve) => {
      this.#wakeSleep = resolve;
      this.#sleepTimer = setTimeout(resolve, delay);
    });
    clearTimeout(this.#sleepTimer);
    this.#wakeSleep = undefined;
  }
}
