// How fast the agent answers, measured per assistant turn by the bridge: from the caller's end of
// speech (speech_stopped) to the first assistant audio sent to Twilio, and to the first audio Twilio
// confirms played (the echo of the first mark sent after that audio). Tool time is the time tools
// ran between the end of speech and the first audio (a reply that waited on a tool). Time enters
// only through the clock given, so tests drive it by hand.

export interface TurnMeasurement {
  /** Position of the turn in the call's measurements (0, 1, ...; a resumed stream continues). */
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

/** What a resumed stream carries over from the streams before it (the rest is derived again). */
export type CarriedMetrics = Pick<CallMetrics, "turns" | "audio_in_ms" | "audio_out_ms">;

/** At most this many turns are kept per call, over all its streams: a long call must not grow the
 * row without bound. */
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
  /** Audio of the call's earlier streams (a handoff): the row holds the whole call's. */
  #priorAudioInMs = 0;
  #priorAudioOutMs = 0;

  constructor(
    private readonly now: () => number,
    private readonly onTurnMeasured: (turn: TurnMeasurement) => void = () => {},
  ) {}

  /** This stream resumes a handed-off call: its earlier streams' turns and audio count too, so
   * the row's figures cover the whole call and not only the last stream. */
  continueFrom(prior: CarriedMetrics): void {
    this.turns.push(...prior.turns.slice(0, MAX_MEASURED_TURNS - this.turns.length));
    this.#priorAudioInMs += prior.audio_in_ms;
    this.#priorAudioOutMs += prior.audio_out_ms;
  }

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

  /** The row's metrics: this stream's, after those of the streams it continues; audio counts
   * from the bridge's stats. */
  metrics(audioInMs: number, audioOutMs: number): CallMetrics {
    const sent = this.turns.map((t) => t.firstAudioSentMs);
    const played = this.turns.flatMap((t) => t.firstAudioPlayedMs === null ? [] : [t.firstAudioPlayedMs]);
    return {
      turns: [...this.turns],
      first_audio_sent_p50_ms: median(sent),
      first_audio_sent_max_ms: sent.length ? Math.max(...sent) : null,
      first_audio_played_p50_ms: median(played),
      first_audio_played_max_ms: played.length ? Math.max(...played) : null,
      audio_in_ms: Math.round(this.#priorAudioInMs + audioInMs),
      audio_out_ms: Math.round(this.#priorAudioOutMs + audioOutMs),
    };
  }
}

/** The metrics an earlier stream left on the call row (jsonb), checked field by field: a row
 * written before the bridge measured holds {}, and a turn that is not well formed is left out
 * rather than trusted into a median. Null when there is nothing to carry. */
export function metricsFromRow(raw: unknown): CarriedMetrics | null {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return null;
  const row = raw as Record<string, unknown>;
  const turns = (Array.isArray(row.turns) ? row.turns : []).filter(isTurn).slice(0, MAX_MEASURED_TURNS);
  const audioIn = msOrZero(row.audio_in_ms);
  const audioOut = msOrZero(row.audio_out_ms);
  if (turns.length === 0 && audioIn === 0 && audioOut === 0) return null;
  return { turns: turns.map((t, turn) => ({ ...t, turn })), audio_in_ms: audioIn, audio_out_ms: audioOut };
}

function msOrZero(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : 0;
}

function isTurn(value: unknown): value is TurnMeasurement {
  if (typeof value !== "object" || value === null) return false;
  const t = value as Record<string, unknown>;
  const isMs = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v >= 0;
  return isMs(t.firstAudioSentMs) && (t.firstAudioPlayedMs === null || isMs(t.firstAudioPlayedMs)) &&
    isMs(t.toolMs);
}

/** The median (mean of the middle two for an even count); null for none. */
export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
