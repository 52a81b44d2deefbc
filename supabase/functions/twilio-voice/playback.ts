// What the caller has heard of the assistant's audio: how much of each item was sent to Twilio,
// which marks announce it, which of them Twilio echoed (played), and what a `clear` on barge-in
// cancelled. Twilio echoes a mark once the audio queued before it has played, and echoes every
// mark still queued when it is cleared, so an echo after a clear says nothing about what was heard.
// https://www.twilio.com/docs/voice/media-streams/websocket-messages#mark-message
//
// Between echoes, what was heard comes from a model of Twilio's playout: audio plays at real time,
// starting when it is sent plus Twilio's delay (learned from the echoes) or when the audio queued
// before it ends. Each echo re-anchors the model to what Twilio says it has played, so marks can be
// sparse (MARK_EVERY_MS) while a barge-in's truncate stays within a frame or two of what the caller
// heard, not within a mark period of it.
// No I/O and no clock of its own: the bridge passes the time in and sends what this returns.

import { base64ByteLength } from "./wire.ts";

// µ-law at 8 kHz is 8 bytes per millisecond.
// https://www.twilio.com/docs/voice/media-streams/websocket-messages#media-message
const MULAW_BYTES_PER_MS = 8;
// Marks are a bridge's only extra socket traffic over a bare relay, and each costs a message each
// way: at one per 500 ms they were 7 % of the bridge's CPU at 100 calls (bench/, Deno 2.8.3). The
// first mark of an item comes after FIRST_MARK_MS of its audio, so the reply latency "to played"
// (turn_latency.ts) includes at most that much playback; then one per MARK_EVERY_MS, plus one where a
// response ends (the end of playback is known from it). Between them the playout model answers,
// and playback_test.ts measures against a simulated Twilio (steady or drifting delay, audio faster
// or slower than real time) that its truncate is as close at any cadence from 100 ms to the first
// mark alone: the echoes only re-anchor it. One per 5 s bounds how long a drift the simulation
// does not know (Twilio's playout stalling) can go unseen.
export const FIRST_MARK_MS = 100;
export const MARK_EVERY_MS = 5000;

/** One assistant item's audio on its way to the caller. */
export class PlayedItem {
  sentBytes = 0;
  /** Highest ms announced by a mark so far (marks are only sent when it grows, so names are unique). */
  markedMs = 0;
  /** Highest ms Twilio has confirmed played. */
  heardMs = 0;
  /** Cut by a barge-in: the rest of its audio must not reach the caller. */
  cut = false;
  /** Where its audio starts on the call's playout timeline (ms); null until it has audio. */
  timelineStartMs: number | null = null;
  /** In Playback's set of items with audio after their last mark (kept here: one test per delta
   * instead of a set insertion). */
  awaitingMark = false;

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
  // The playout model: all audio sent and not cleared, end to end (ms); the clock time at which the
  // last of it will have played; the same if Twilio played audio the moment it was sent; and
  // Twilio's delay between the two, as the last echo showed it.
  #timelineMs = 0;
  #playoutEndsAt = 0;
  #onArrivalEndsAt = 0;
  #delayMs = 0;
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

  constructor(readonly markEveryMs = MARK_EVERY_MS) {}

  /** `delta` (base64 µ-law) of `item` went to Twilio at `now` (ms): the mark to send after it, if
   * one is due. */
  sent(item: PlayedItem, delta: string, now: number): string | null {
    const bytes = base64ByteLength(delta);
    item.sentBytes += bytes;
    item.timelineStartMs ??= this.#timelineMs;
    this.#timelineMs += bytes / MULAW_BYTES_PER_MS;
    this.#playoutEndsAt = Math.max(now + this.#delayMs, this.#playoutEndsAt) + bytes / MULAW_BYTES_PER_MS;
    this.#onArrivalEndsAt = Math.max(now, this.#onArrivalEndsAt) + bytes / MULAW_BYTES_PER_MS;
    const sent = item.sentMs;
    if (sent - item.markedMs >= (item.markedMs === 0 ? FIRST_MARK_MS : this.markEveryMs)) {
      return this.#mark(item, sent);
    }
    if (sent > item.markedMs && !item.awaitingMark) {
      item.awaitingMark = true;
      this.#unmarked.add(item);
    }
    return null;
  }

  /** Marks for all audio sent and not yet marked (a response has ended: its tail gets one). */
  markRemaining(): string[] {
    const names: string[] = [];
    for (const item of this.#unmarked) names.push(this.#mark(item, item.sentMs));
    return names;
  }

  /** Twilio echoed the mark `name` at `now`. */
  echoed(name: string, now: number): MarkEcho {
    const item = this.#outstanding.get(name);
    if (item) {
      this.#outstanding.delete(name);
      const ms = Number(name.slice(name.lastIndexOf(":") + 1));
      if (ms > item.heardMs) item.heardMs = ms;
      this.#anchor((item.timelineStartMs ?? 0) + ms, now);
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

  /** How much of `item` the caller has heard by `now`: the playout model's estimate, never less
   * than its echoed marks say nor more than was sent. */
  heardAt(item: PlayedItem, now: number): number {
    if (item.timelineStartMs === null) return 0;
    const timelineHeard = this.#timelineMs - Math.max(0, this.#playoutEndsAt - now);
    const estimate = Math.floor(timelineHeard - item.timelineStartMs);
    return Math.min(item.sentMs, Math.max(item.heardMs, estimate));
  }

  /**
   * Twilio's queue is cleared at `now` (barge-in): every item with audio the marks do not report
   * fully played is cut at what the caller heard (later items never played and get 0), and the
   * marks still outstanding will come back as "cleared".
   */
  clear(now: number): Cut[] {
    const cuts: Cut[] = [];
    for (const item of this.#items) {
      if (item.cut || item.fullyPlayed) continue;
      item.cut = true;
      cuts.push({ item, audioEndMs: this.heardAt(item, now) });
    }
    // What was queued is gone: the timeline ends at what has played.
    this.#timelineMs -= Math.max(0, this.#playoutEndsAt - now);
    this.#playoutEndsAt = this.#onArrivalEndsAt = now;
    for (const name of this.#outstanding.keys()) this.#cleared.add(name);
    this.#outstanding.clear();
    for (const item of this.#unmarked) item.awaitingMark = false;
    this.#unmarked.clear();
    return cuts;
  }

  /** Twilio says the timeline has played up to `heardMs` at `now`: the rest of what was sent is
   * queued and plays from now on; how much later than on arrival is Twilio's delay. The echo's own
   * trip back is in it, so the model errs towards less heard. */
  #anchor(heardMs: number, now: number): void {
    const queuedMs = Math.max(0, this.#timelineMs - heardMs);
    this.#playoutEndsAt = now + queuedMs;
    this.#delayMs = Math.max(0, now - (this.#onArrivalEndsAt - queuedMs));
  }

  /** Ask Twilio to echo `item:ms` once the audio up to it has played. */
  #mark(item: PlayedItem, ms: number): string {
    item.markedMs = ms;
    const name = `${item.id}:${ms}`;
    this.#outstanding.set(name, item);
    item.awaitingMark = false;
    this.#unmarked.delete(item);
    return name;
  }
}
