import assert from "node:assert/strict";
import { MARK_EVERY_MS, Playback } from "./playback.ts";

/** µ-law audio of `ms` milliseconds, base64 as the model sends it. */
function audio(ms: number): string {
  return btoa(String.fromCharCode(...new Uint8Array(ms * 8).fill(0xff)));
}

Deno.test("a mark goes out once per MARK_EVERY_MS of an item's audio, named by item and ms", () => {
  const playback = new Playback();
  const item = playback.item("a1");
  const marks = [];
  for (let i = 0; i < 10; i++) marks.push(playback.sent(item, audio(20)));
  assert.equal(MARK_EVERY_MS, 100);
  assert.deepEqual(marks.filter((mark) => mark !== null), ["a1:100", "a1:200"]);
  assert.equal(item.sentMs, 200);
  assert.equal(playback.marksOutstanding, 2);
  assert.equal(playback.queued, true);
});

Deno.test("audio after the last mark is queued too, and gets its mark when the response ends", () => {
  const playback = new Playback();
  const first = playback.item("a1");
  const second = playback.item("a2");
  assert.equal(playback.sent(first, audio(40)), null);
  assert.equal(playback.sent(second, audio(60)), null);
  assert.equal(playback.marksOutstanding, 0);
  assert.equal(playback.queued, true, "sent but unmarked is still on its way to the caller");
  assert.deepEqual(playback.markRemaining(), ["a1:40", "a2:60"]);
  assert.deepEqual(playback.markRemaining(), [], "each tail is marked once");
});

Deno.test("an echoed mark is what the caller has heard; the line is fully played at its last mark", () => {
  const playback = new Playback();
  const item = playback.item("a1");
  playback.sent(item, audio(100));
  playback.sent(item, audio(50));
  const [tail] = playback.markRemaining();
  assert.equal(item.fullyPlayed, false);
  assert.equal(playback.echoed("a1:100"), "played");
  assert.equal(item.heardMs, 100);
  assert.equal(item.fullyPlayed, false);
  assert.equal(playback.echoed(tail), "played");
  assert.equal(item.heardMs, 150);
  assert.equal(item.fullyPlayed, true);
  assert.equal(playback.queued, false);
  assert.equal(playback.echoed("a1:150"), "unknown", "a mark echoes once");
});

Deno.test("an item with no audio is fully played and never cut", () => {
  const playback = new Playback();
  const item = playback.item("a1");
  assert.equal(item.fullyPlayed, true);
  assert.deepEqual(playback.clear(), []);
  assert.equal(item.cut, false);
});

Deno.test("a clear cuts every item at what was heard, later items at 0, and turns outstanding marks into cleared ones", () => {
  const playback = new Playback();
  const heard = playback.item("a0");
  const partly = playback.item("a1");
  const never = playback.item("a2");
  playback.sent(heard, audio(100));
  playback.echoed("a0:100");
  playback.sent(partly, audio(100));
  playback.sent(partly, audio(100));
  playback.sent(partly, audio(30));
  playback.echoed("a1:100");
  playback.sent(never, audio(20));
  const cuts = playback.clear();
  assert.deepEqual(cuts.map((cut) => [cut.item.id, cut.audioEndMs]), [["a1", 100], ["a2", 0]]);
  assert.equal(partly.cut, true);
  assert.equal(never.cut, true);
  assert.equal(heard.cut, false, "fully played: nothing to cut");
  assert.equal(playback.queued, false, "Twilio's queue is empty after a clear");
  assert.equal(playback.marksOutstanding, 0);
  assert.deepEqual(playback.markRemaining(), [], "audio cut needs no mark");
  assert.equal(playback.echoed("a1:200"), "cleared");
  assert.equal(partly.heardMs, 100, "a cleared mark's echo says nothing about what was heard");
  assert.equal(playback.echoed("a1:200"), "unknown");
  assert.deepEqual(playback.clear(), [], "an item is cut once");
});
