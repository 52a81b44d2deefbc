// Silent sockets closed by one clock for the whole worker, instead of a timer per socket re-armed on
// every message. Deno.upgradeWebSocket's own idle timeout (default 30 s) clears and sets a timer on
// each frame it receives: two timer ops per 20 ms media frame and per mark echo, on every call. Here a
// frame costs one field write, and one interval (running only while a socket is watched) sweeps them.
// https://docs.deno.com/api/deno/~/Deno.UpgradeWebSocketOptions.idleTimeout

/** How long a Twilio stream may send nothing before it is closed (Deno's default idle timeout):
 * Twilio sends a media frame every 20 ms for the whole call, silence included. */
export const STREAM_IDLE_LIMIT_MS = 30_000;
/** The sweep's period: a silent socket is closed between LIMIT - SWEEP and LIMIT after its last frame. */
export const IDLE_SWEEP_MS = 5_000;

/** One watched socket: `seen()` on every frame it delivers. */
export interface Watched {
  seen(): void;
  /** Stop watching (the call ended). Idempotent. */
  forget(): void;
}

class WatchedSocket implements Watched {
  quietSweeps = 0;
  constructor(readonly watch: IdleWatch, readonly onIdle: () => void) {}
  seen(): void {
    this.quietSweeps = 0;
  }
  forget(): void {
    this.watch.forget(this);
  }
}

export class IdleWatch {
  readonly #watched = new Set<WatchedSocket>();
  #timer: number | undefined;

  constructor(readonly limitMs = STREAM_IDLE_LIMIT_MS, readonly sweepMs = IDLE_SWEEP_MS) {}

  /** Watch a socket; `onIdle` runs once when it has been silent for the limit. */
  watch(onIdle: () => void): Watched {
    const entry = new WatchedSocket(this, onIdle);
    this.#watched.add(entry);
    this.#timer ??= setInterval(() => this.sweep(), this.sweepMs);
    return entry;
  }

  forget(entry: WatchedSocket): void {
    this.#watched.delete(entry);
    if (this.#watched.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** One period has passed: every socket silent for the whole limit is handed to its `onIdle`. */
  sweep(): void {
    const sweepsAllowed = Math.ceil(this.limitMs / this.sweepMs);
    for (const entry of [...this.#watched]) {
      if (++entry.quietSweeps < sweepsAllowed) continue;
      this.forget(entry);
      entry.onIdle();
    }
  }

  get size(): number {
    return this.#watched.size;
  }
}

/** The worker's one watch over its Twilio streams. */
export const streamIdleWatch = new IdleWatch();
