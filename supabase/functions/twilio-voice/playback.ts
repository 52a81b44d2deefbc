// What the caller has heard of the assistant's audio: how much of each item was sent to Twilio,
// which marks announce it, which of them Twilio echoed (played), and what a `clear` on barge-in
// cancelled. Twilio echoes a mark once the audio queued before it has played, and echoes every
// mark still queued when it is cleared, so an echo after a clear says nothing about what was heard.
// https://www.twilio.com/docs/voice/media-streams/websocket-messages#mark-message
// No I/O and no clock: the bridge sends what this returns.

import { base64ByteLength } from "./wire.ts";

// µ-law at 8 kHz is 8 bytes per millisecond.
// https://www.twilio.com/docs/voice/media-streams/websocket-messages#media-message
const MULAW_BYTES_PER_MS = 8;
// A mark after every model delta made marks a third of the bridge's socket traffic (bench/: 6
// messages per caller frame against the relay's 4, with 20 ms deltas). One mark per 100 ms of
// audio, plus one where a response ends, keeps barge-in's truncate within 100 ms of what the
// caller heard.
export const MARK_EVERY_MS = 100;

/** One assistant item's audio on its way to the caller. */
export class PlayedItem {
  sentBytes = 0;
  /** Highest ms announced by a mark so far (marks are only sent when it grows, so names are unique). */
  markedMs = 0;
  /** Highest ms Twilio has confirmed played. */
  heardMs = 0;
  /** Cut by a barge-in: the rest of its audio must not reach the caller. */
  cut = false;

  constructor(readonly id: string) {}

  get sentMs(): number {
    return Math.floor(this.sentBytes / MULAW_BYTES_PER_MS);
  }

  /** Everything sent of it has played (true for an item with no audio). */
  get fullyPlayed(): boolean {
    return this.sentMs <= this.heardMs;
  }
}

/** A barge-in's cut of one item: the model keeps its audio up to what the caller heard. */
export interface Cut {
  item: PlayedItem;
  audioEndMs: number;
}

export type MarkEcho = "played" | "cleared" | "unknown";

export class Playback {
  readonly #items: PlayedItem[] = [];
  /** Marks sent and not yet echoed, by name. */
  readonly #outstanding = new Map<string, PlayedItem>();
  /** Items with audio sent to Twilio after their last mark. */
  readonly #unmarked = new Set<PlayedItem>();
  /** Marks Twilio will echo because of a clear: they say nothing about what was heard. */
  readonly #cleared = new Set<string>();

  /** A new item, in the order the model announced it (a barge-in cuts in that order). */
  item(id: string): PlayedItem {
    const item = new PlayedItem(id);
    this.#items.push(item);
    return item;
  }

  /** `delta` (base64 µ-law) of `item` went to Twilio: the mark to send after it, if one is due. */
  sent(item: PlayedItem, delta: string): string | null {
    item.sentBytes += base64ByteLength(delta);
    const sent = item.sentMs;
    if (sent - item.markedMs >= MARK_EVERY_MS) return this.#mark(item, sent);
    if (sent > item.markedMs) this.#unmarked.add(item);
    return null;
  }

  /** Marks for all audio sent and not yet marked (a response has ended: its tail gets one). */
  markRemaining(): string[] {
    const names: string[] = [];
    for (const item of this.#unmarked) names.push(this.#mark(item, item.sentMs));
    return names;
  }

  /** Twilio echoed the mark `name`. */
  echoed(name: string): MarkEcho {
    const item = this.#outstanding.get(name);
    if (item) {
      this.#outstanding.delete(name);
      const ms = Number(name.slice(name.lastIndexOf(":") + 1));
      if (ms > item.heardMs) item.heardMs = ms;
      return "played";
    }
    return this.#cleared.delete(name) ? "cleared" : "unknown";
  }

  /** Marks sent that Twilio has not echoed yet. */
  get marksOutstanding(): number {
    return this.#outstanding.size;
  }

  /** Assistant audio sent to Twilio that it has not reported played. */
  get queued(): boolean {
    return this.#outstanding.size > 0 || this.#unmarked.size > 0;
  }

  /**
   * Twilio's queue is cleared (barge-in): every item with audio the caller has not heard is cut at
   * what the marks say was played (later items never played and get 0), and the marks still
   * outstanding will come back as "cleared".
   */
  clear(): Cut[] {
    const cuts: Cut[] = [];
    for (const item of this.#items) {
      if (item.cut || item.fullyPlayed) continue;
      item.cut = true;
      cuts.push({ item, audioEndMs: Math.min(item.heardMs, item.sentMs) });
    }
    for (const name of this.#outstanding.keys()) this.#cleared.add(name);
    this.#outstanding.clear();
    this.#unmarked.clear();
    return cuts;
  }

  /** Ask Twilio to echo `item:ms` once the audio up to it has played. */
  #mark(item: PlayedItem, ms: number): string {
    item.markedMs = ms;
    const name = `${item.id}:${ms}`;
    this.#outstanding.set(name, item);
    this.#unmarked.delete(item);
    return name;
  }
}
