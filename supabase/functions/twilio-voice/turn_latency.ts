// How fast the agent answers, measured per assistant turn by the bridge: from the caller's end of
// speech (speech_stopped) to the first assistant audio sent to Twilio, and to the first audio Twilio
// confirms played (the echo of the first mark sent after that audio). Tool time is the time tools
// ran between the end of speech and the first audio (a reply that waited on a tool). Time enters
// only through the clock given, so tests drive it by hand.

export interface TurnMeasurement {
  /** Position of the turn in this stream's measurements (0, 1, ...). */
  turn: number;
  /** speech_stopped → first assistant audio sent to Twilio. */
  firstAudioSentMs: number;
  /** speech_stopped → first mark of that audio echoed as played; null when it never played
   * (a barge-in cleared it, or the call ended first). */
  firstAudioPlayedMs: number | null;
  /** Tool time spent before the first audio (0 when no tool ran). */
  toolMs: number;
}

/** What the call row keeps (calls.metrics): the turns and the figures derived from them. */
export interface CallMetrics {
  turns: TurnMeasurement[];
  first_audio_sent_p50_ms: number | null;
  first_audio_sent_max_ms: number | null;
  first_audio_played_p50_ms: number | null;
  first_audio_played_max_ms: number | null;
  /** Caller audio received (µ-law 8 kHz, 20 ms a frame) and assistant audio sent, in ms. */
  audio_in_ms: number;
  audio_out_ms: number;
  /** The Realtime model the call ran on (set by call_session.ts; null before one was chosen). */
  model?: string | null;
}

/** At most this many turns are kept per stream: a long call must not grow the row without bound. */
export const MAX_MEASURED_TURNS = 500;

interface OpenTurn {
  stoppedAt: number;
  sentAt: number | null;
  /** The first mark sent at or after the first audio: its echo is "played". */
  mark: string | null;
  toolMs: number;
}

export class TurnLatency {
  readonly turns: TurnMeasurement[] = [];
  #open: OpenTurn | null = null;

  constructor(
    private readonly now: () => number,
    private readonly onTurnMeasured: (turn: TurnMeasurement) => void = () => {},
  ) {}

  /** The caller stopped talking: a new turn starts (an earlier one still open is closed). */
  speechStopped(): void {
    this.#close();
    this.#open = { stoppedAt: this.now(), sentAt: null, mark: null, toolMs: 0 };
  }

  /** A tool finished; it counts while the turn still waits for its first audio. */
  toolRan(durationMs: number): void {
    if (this.#open !== null && this.#open.sentAt === null) this.#open.toolMs += Math.max(0, durationMs);
  }

  /** Assistant audio went to Twilio. */
  audioSent(): void {
    if (this.#open !== null && this.#open.sentAt === null) this.#open.sentAt = this.now();
  }

  /** A mark went to Twilio after the audio it follows. */
  markSent(name: string): void {
    if (this.#open !== null && this.#open.sentAt !== null && this.#open.mark === null) this.#open.mark = name;
  }

  /** Twilio echoed a mark as played. */
  markPlayed(name: string): void {
    if (this.#open === null || this.#open.mark !== name) return;
    this.#close(this.now());
  }

  /** The call (or this stream) ends: a turn that got audio is kept, without "played". */
  finish(): void {
    this.#close();
  }

  #close(playedAt: number | null = null): void {
    const open = this.#open;
    this.#open = null;
    // A turn the agent never answered (the caller spoke again, or hung up) has no latency.
    if (open === null || open.sentAt === null || this.turns.length >= MAX_MEASURED_TURNS) return;
    const turn: TurnMeasurement = {
      turn: this.turns.length,
      firstAudioSentMs: Math.round(open.sentAt - open.stoppedAt),
      firstAudioPlayedMs: playedAt === null ? null : Math.round(playedAt - open.stoppedAt),
      toolMs: Math.round(open.toolMs),
    };
    this.turns.push(turn);
    this.onTurnMeasured(turn);
  }

  /** The row's metrics for this stream, audio counts from the bridge's stats. */
  metrics(audioInMs: number, audioOutMs: number): CallMetrics {
    const sent = this.turns.map((t) => t.firstAudioSentMs);
    const played = this.turns.flatMap((t) => t.firstAudioPlayedMs === null ? [] : [t.firstAudioPlayedMs]);
    return {
      turns: [...this.turns],
      first_audio_sent_p50_ms: median(sent),
      first_audio_sent_max_ms: sent.length ? Math.max(...sent) : null,
      first_audio_played_p50_ms: median(played),
      first_audio_played_max_ms: played.length ? Math.max(...played) : null,
      audio_in_ms: Math.round(audioInMs),
      audio_out_ms: Math.round(audioOutMs),
    };
  }
}

/** The median (mean of the middle two for an even count); null for none. */
export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
