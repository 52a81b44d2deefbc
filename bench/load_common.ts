// What both processes of the bridge benchmark's load side share: one clock, the bytes helpers of a
// per-frame path that neither encodes nor decodes text, the latency samples, and the output lines.

import { monotonicMicros } from "./libc_net.ts";

// Frames are stamped by one process (the callers or the model peer) and timed by the other, so
// both read CLOCK_MONOTONIC: performance.now() (the same clock, cheaper to read) plus this
// process's offset to it, taken where two readings of performance.now() lie closest.
const clockOffsetUs = (() => {
  let best = { gap: Infinity, offset: 0 };
  for (let i = 0; i < 50; i++) {
    const before = performance.now() * 1000;
    const monotonic = monotonicMicros();
    const after = performance.now() * 1000;
    if (after - before < best.gap) best = { gap: after - before, offset: monotonic - (before + after) / 2 };
  }
  return best.offset;
})();

/** Microseconds on the machine's monotonic clock. */
export const nowUs = (): number => Math.round(performance.now() * 1000 + clockOffsetUs);

export const emit = (line: Record<string, unknown>) => console.log(JSON.stringify(line));
export const round = (value: number) => Math.round(value * 1000) / 1000;

// Twilio Media Streams: 20 ms of 8 kHz µ-law = 160 bytes = 216 base64 characters per frame; the
// caller's send time is in its first 16 characters, the peer's in the next 16.
// https://www.twilio.com/docs/voice/media-streams/websocket-messages#media-message
export const STAMP_CHARS = 16;

const encoder = new TextEncoder();
export const ascii = (text: string) => encoder.encode(text);

export const digitCount = (value: number): number => {
  let count = 1;
  while (value >= 10) {
    value = Math.floor(value / 10);
    count++;
  }
  return count;
};

/** Writes `value` as exactly `width` decimal digits ending at `at + width` (zero-padded). */
export function writeDigits(out: Uint8Array, at: number, value: number, width: number): void {
  for (let i = at + width - 1; i >= at; i--) {
    out[i] = 48 + (value % 10);
    value = Math.floor(value / 10);
  }
}

/** The number in `width` digits at `at`; NaN if any is not a digit (as Number() of the text). */
export function readDigits(bytes: Uint8Array, at: number, width: number): number {
  let value = 0;
  for (let i = at; i < at + width; i++) {
    const digit = bytes[i] - 48;
    if (digit < 0 || digit > 9) return NaN;
    value = value * 10 + digit;
  }
  return value;
}

/** A few hundred bytes are copied faster by a loop than through a subarray view made for `set`. */
export function copyBytes(out: Uint8Array, at: number, bytes: Uint8Array, from: number, to: number): void {
  for (let i = from; i < to; i++) out[at++] = bytes[i];
}

export function startsWith(bytes: Uint8Array, start: number, end: number, prefix: Uint8Array): boolean {
  if (end - start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (bytes[start + i] !== prefix[i]) return false;
  }
  return true;
}

export function indexOfBytes(bytes: Uint8Array, pattern: Uint8Array, from: number, end: number): number {
  for (
    let at = bytes.indexOf(pattern[0], from);
    at >= 0 && at + pattern.length <= end;
  ) {
    if (startsWith(bytes, at, end, pattern)) return at;
    at = bytes.indexOf(pattern[0], at + 1);
  }
  return -1;
}

/** Latency samples, each kept with the send time of its frame, so the window they are counted in
 * can be chosen after the fact (the peer learns it only at the end). */
export class Samples {
  #sent: Float64Array = new Float64Array(1 << 16);
  #values: Float64Array = new Float64Array(1 << 16);
  length = 0;

  push(sentUs: number, value: number): void {
    if (this.length === this.#values.length) {
      this.#sent = grown(this.#sent);
      this.#values = grown(this.#values);
    }
    this.#sent[this.length] = sentUs;
    this.#values[this.length++] = value;
  }

  /** Count and quantiles of the samples whose frame was sent in [startUs, endUs). */
  summary(startUs = -Infinity, endUs = Infinity): Record<string, number | null> {
    const kept: number[] = [];
    for (let i = 0; i < this.length; i++) {
      if (this.#sent[i] >= startUs && this.#sent[i] < endUs) kept.push(this.#values[i]);
    }
    const sorted = Float64Array.from(kept).sort();
    const at = (q: number) =>
      sorted.length ? round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]) : null;
    return {
      count: sorted.length,
      p50_ms: at(0.5),
      p90_ms: at(0.9),
      p99_ms: at(0.99),
      p999_ms: at(0.999),
      max_ms: sorted.length ? round(sorted[sorted.length - 1]) : null,
    };
  }
}

function grown(values: Float64Array): Float64Array {
  const bigger = new Float64Array(values.length * 2);
  bigger.set(values);
  return bigger;
}

/** Failures by reason, as the result line reports them. */
export class Failures {
  readonly counts: Record<string, number> = {};
  add(reason: string): void {
    this.counts[reason] = (this.counts[reason] ?? 0) + 1;
  }
}
