import assert from "node:assert/strict";
import { FIRST_MARK_MS, MARK_EVERY_MS, Playback } from "./playback.ts";

/** µ-law audio of `ms` milliseconds, base64 as the model sends it. */
function audio(ms: number): string {
  return btoa(String.fromCharCode(...new Uint8Array(ms * 8).fill(0xff)));
}

Deno.test("an item's first mark comes after FIRST_MARK_MS of audio, then one per MARK_EVERY_MS, named by item and ms", () => {
  const playback = new Playback();
  const item = playback.item("a1");
  const marks = [];
  for (let i = 0; i < 560; i++) marks.push(playback.sent(item, audio(20), i * 20));
  assert.equal(FIRST_MARK_MS, 100);
  assert.equal(MARK_EVERY_MS, 5000);
  assert.deepEqual(marks.filter((mark) => mark !== null), ["a1:100", "a1:5100", "a1:10100"]);
  assert.equal(item.sentMs, 11200);
  assert.equal(playback.marksOutstanding, 3);
  assert.equal(playback.queued, true);
  assert.deepEqual(playback.markRemaining(), ["a1:11200"], "the audio after the last mark is still tracked");
});

Deno.test("audio after the last mark is queued too, and gets its mark when the response ends", () => {
  const playback = new Playback();
  const first = playback.item("a1");
  const second = playback.item("a2");
  assert.equal(playback.sent(first, audio(40), 0), null);
  assert.equal(playback.sent(second, audio(60), 0), null);
  assert.equal(playback.marksOutstanding, 0);
  assert.equal(playback.queued, true, "sent but unmarked is still on its way to the caller");
  assert.deepEqual(playback.markRemaining(), ["a1:40", "a2:60"]);
  assert.deepEqual(playback.markRemaining(), [], "each tail is marked once");
});

Deno.test("an echoed mark is what the caller has heard; the line is fully played at its last mark", () => {
  const playback = new Playback();
  const item = playback.item("a1");
  playback.sent(item, audio(100), 0);
  playback.sent(item, audio(50), 0);
  const [tail] = playback.markRemaining();
  assert.equal(item.fullyPlayed, false);
  assert.equal(playback.echoed("a1:100", 100), "played");
  assert.equal(item.heardMs, 100);
  assert.equal(item.fullyPlayed, false);
  assert.equal(playback.echoed(tail, 150), "played");
  assert.equal(item.heardMs, 150);
  assert.equal(item.fullyPlayed, true);
  assert.equal(playback.queued, false);
  assert.equal(playback.echoed("a1:150", 150), "unknown", "a mark echoes once");
});

Deno.test("an item with no audio is fully played and never cut", () => {
  const playback = new Playback();
  const item = playback.item("a1");
  assert.equal(item.fullyPlayed, true);
  assert.equal(playback.heardAt(item, 1000), 0);
  assert.deepEqual(playback.clear(1000), []);
  assert.equal(item.cut, false);
});

Deno.test("a clear cuts every item at what was heard by then, later items at 0, and turns outstanding marks into cleared ones", () => {
  const playback = new Playback();
  const heard = playback.item("a0");
  const partly = playback.item("a1");
  const never = playback.item("a2");
  playback.sent(heard, audio(100), 0);
  playback.echoed("a0:100", 100);
  // 230 ms of a1 arrive at once at 100 ms: Twilio queues them and plays them from then on.
  playback.sent(partly, audio(100), 100);
  playback.sent(partly, audio(100), 100);
  playback.sent(partly, audio(30), 100);
  playback.echoed("a1:100", 200);
  playback.sent(never, audio(20), 200);
  assert.deepEqual(playback.markRemaining(), ["a1:230", "a2:20"]);
  const cuts = playback.clear(250);
  assert.deepEqual(cuts.map((cut) => [cut.item.id, cut.audioEndMs]), [["a1", 150], ["a2", 0]]);
  assert.equal(partly.cut, true);
  assert.equal(never.cut, true);
  assert.equal(heard.cut, false, "fully played: nothing to cut");
  assert.equal(playback.queued, false, "Twilio's queue is empty after a clear");
  assert.equal(playback.marksOutstanding, 0);
  assert.deepEqual(playback.markRemaining(), [], "audio cut needs no mark");
  assert.equal(playback.echoed("a1:230", 260), "cleared");
  assert.equal(partly.heardMs, 100, "a cleared mark's echo says nothing about what was heard");
  assert.equal(playback.echoed("a1:230", 260), "unknown");
  assert.deepEqual(playback.clear(300), [], "an item is cut once");
});

Deno.test("what was heard is never more than was sent, and never less than the echoes say", () => {
  const playback = new Playback();
  const item = playback.item("a1");
  playback.sent(item, audio(100), 0);
  assert.equal(playback.heardAt(item, 50), 50);
  assert.equal(playback.heardAt(item, 10_000), 100, "capped at what was sent");
  // Twilio took longer than the model thought: the echo moves the model back to it.
  playback.sent(item, audio(400), 100);
  playback.echoed("a1:100", 400);
  assert.equal(playback.heardAt(item, 400), 100);
  assert.equal(playback.heardAt(item, 450), 150);
});

Deno.test("audio that arrives slower than real time leaves gaps: the model plays only what it has", () => {
  const playback = new Playback();
  const item = playback.item("a1");
  playback.sent(item, audio(20), 0);
  playback.sent(item, audio(20), 100);
  assert.equal(playback.heardAt(item, 100), 20, "the first 20 ms ended at 20 ms; then silence");
  assert.equal(playback.heardAt(item, 110), 30);
});

Deno.test("Twilio's delay is learned from an echo and applied to the next reply, before its first echo", () => {
  const playback = new Playback();
  const first = playback.item("a1");
  const mark = playback.sent(first, audio(100), 0);
  // Played from 80 ms, so its mark echoes at 180 ms.
  assert.equal(playback.echoed(mark!, 180), "played");
  const second = playback.item("a2");
  playback.sent(second, audio(400), 1000);
  assert.equal(playback.heardAt(second, 1050), 0, "not playing yet: 80 ms behind");
  assert.equal(playback.heardAt(second, 1130), 50);
});

// ---- the cadence, chosen by measurement ----

/** mulberry32: a small seeded generator, so the measurement is the same on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Outcome {
  maxError: number;
  marksPerSecond: number;
}

/** How the simulated Twilio's world behaves. */
interface Conditions {
  /** Each delta's trip to Twilio moves by up to this much from the last one (ms), within 40–200 ms. */
  driftMs: number;
  /** The slowest the model streams, as a multiple of real time (below 1, Twilio's queue runs dry). */
  minSpeed: number;
}

const STEADY: Conditions = { driftMs: 0, minSpeed: 2 };
const CONDITIONS: Conditions[] = [STEADY, { driftMs: 0, minSpeed: 0.7 }, { driftMs: 5, minSpeed: 0.7 }, {
  driftMs: 10,
  minSpeed: 0.7,
}];

/**
 * A simulated Twilio against Playback: replies of 1–6 s whose audio the model streams in 100 ms
 * deltas at `minSpeed`–6× real time, each delta reaching Twilio after a trip of 60 ms that drifts by
 * up to `driftMs` per delta, plus 0–20 ms of jitter; Twilio plays at real time in arrival order and
 * echoes a mark `backMs` after the audio before it has played. Each reply is barged in at a random
 * point; the error is the truncate's distance from what had actually played. `marksOnly` is the
 * estimate without the playout model (the last echoed mark).
 */
function measure(markEveryMs: number, marksOnly: boolean, seed: number, conditions = STEADY): Outcome {
  const next = random(seed);
  let forwardMs = 60;
  const backMs = 20;
  const playback = new Playback(markEveryMs);
  let now = 0;
  let maxError = 0;
  let marks = 0;
  let audioMs = 0;
  for (let reply = 0; reply < 200; reply++) {
    const item = playback.item(`a${reply}`);
    const lengthMs = 100 * (10 + Math.floor(next() * 50));
    const speed = conditions.minSpeed + next() * (6 - conditions.minSpeed);
    const bargeAtMs = next() * lengthMs;
    // What Twilio does with each delta: when it arrives, when it starts playing.
    let playEnd = 0;
    const plays: { startAt: number; fromMs: number }[] = [];
    const echoes: { at: number; name: string }[] = [];
    let sentMs = 0;
    const startedAt = now;
    let bargedIn = false;
    for (let t = startedAt;; t += 1) {
      // Deltas, at the reply's speed, until the reply is all sent.
      while (sentMs < lengthMs && startedAt + sentMs / speed <= t) {
        const mark = playback.sent(item, audio(100), t);
        forwardMs = Math.min(200, Math.max(40, forwardMs + (next() * 2 - 1) * conditions.driftMs));
        const startAt = Math.max(t + forwardMs + next() * 20, playEnd);
        plays.push({ startAt, fromMs: sentMs });
        playEnd = startAt + 100;
        sentMs += 100;
        if (mark) {
          marks++;
          echoes.push({ at: playEnd + backMs, name: mark });
        }
      }
      for (const echo of echoes.filter((echo) => echo.at <= t)) {
        playback.echoed(echo.name, t);
        echoes.splice(echoes.indexOf(echo), 1);
      }
      const first = plays[0]?.startAt ?? Infinity;
      if (t >= first + bargeAtMs) {
        const playing = plays.findLast((play) => play.startAt <= t)!;
        const actual = Math.min(playing.fromMs + (t - playing.startAt), playing.fromMs + 100);
        const estimate = marksOnly ? item.heardMs : playback.heardAt(item, t);
        maxError = Math.max(maxError, Math.abs(estimate - actual));
        playback.clear(t);
        audioMs += actual;
        now = t + 500 + next() * 2000;
        bargedIn = true;
        break;
      }
    }
    assert.ok(bargedIn);
  }
  return { maxError, marksPerSecond: (1000 * marks) / audioMs };
}

/** The worst error over three seeded runs. */
function worstError(markEveryMs: number, conditions: Conditions, marksOnly = false): number {
  return Math.max(...[7, 8, 9].map((seed) => measure(markEveryMs, marksOnly, seed, conditions).maxError));
}

Deno.test("the playout model's truncate is as close at one mark per 5 s as at one per 100 ms, steady or drifting", () => {
  // Measured (worst of three seeds, ms): steady 37 at every cadence from 100 ms to the first mark
  // alone; audio slower than real time 38; a trip drifting 5 ms a delta 65, 10 ms a delta 103, again
  // the same at every cadence. The echoes only re-anchor the model; what it cannot know at the
  // moment of the barge-in (this delta's trip and jitter) is the error.
  const steady = worstError(MARK_EVERY_MS, STEADY);
  assert.ok(steady <= 41, `steady, one mark per ${MARK_EVERY_MS} ms: ${steady} ms`);
  for (const conditions of CONDITIONS) {
    const chosen = worstError(MARK_EVERY_MS, conditions);
    const dense = worstError(100, conditions);
    assert.ok(
      chosen <= dense + 5,
      `${JSON.stringify(conditions)}: ${chosen} ms against ${dense} ms at 100 ms`,
    );
    assert.ok(chosen <= 20 + 20 + 7 * conditions.driftMs, `${JSON.stringify(conditions)}: ${chosen} ms`);
  }
  // The last echoed mark alone is off by up to a mark period plus Twilio's delays.
  const marksAlone = worstError(100, STEADY, true);
  assert.ok(marksAlone > 100, `marks alone at 100 ms: ${marksAlone} ms`);
  const chosenRate = measure(MARK_EVERY_MS, false, 7).marksPerSecond;
  assert.ok(chosenRate < measure(500, false, 7).marksPerSecond, "fewer marks than one per 500 ms");
});
