import assert from "node:assert/strict";
import {
  MAX_MEASURED_TURNS,
  median,
  metricsFromRow,
  TurnLatency,
  type TurnMeasurement,
} from "./turn_latency.ts";

function clocked() {
  let now = 0;
  const seen: TurnMeasurement[] = [];
  const latency = new TurnLatency(() => now, (turn) => seen.push(turn));
  return { latency, seen, at: (ms: number) => (now = ms) };
}

Deno.test("a turn runs from speech_stopped to the first audio sent and to its first mark played", () => {
  const { latency, seen, at } = clocked();
  at(1000);
  latency.speechStopped();
  at(1420);
  latency.audioSent();
  at(1440);
  latency.audioSent();
  latency.markSent("m1");
  at(1500);
  latency.markSent("m2");
  at(1700);
  latency.markPlayed("m2"); // not the first mark: ignored
  assert.deepEqual(seen.length, 0);
  at(1650 + 100);
  latency.markPlayed("m1");
  assert.deepEqual(seen, [{ turn: 0, firstAudioSentMs: 420, firstAudioPlayedMs: 750, toolMs: 0 }]);
});

Deno.test("tool time counts only before the first audio", () => {
  const { latency, seen, at } = clocked();
  latency.speechStopped();
  latency.toolRan(300);
  at(900);
  latency.audioSent();
  latency.toolRan(5000);
  latency.finish();
  assert.deepEqual(seen, [{ turn: 0, firstAudioSentMs: 900, firstAudioPlayedMs: null, toolMs: 300 }]);
});

Deno.test("an unanswered turn is not measured; audio with no open turn (a greeting) is not a turn", () => {
  const { latency, seen, at } = clocked();
  latency.audioSent(); // greeting
  latency.markSent("g");
  latency.markPlayed("g");
  latency.speechStopped();
  at(200);
  latency.speechStopped(); // the caller went on talking: the first turn got no reply
  at(450);
  latency.audioSent();
  latency.markSent("a");
  latency.speechStopped(); // barge-in before the mark played: kept, without played
  latency.finish();
  assert.deepEqual(seen, [{ turn: 0, firstAudioSentMs: 250, firstAudioPlayedMs: null, toolMs: 0 }]);
  const metrics = latency.metrics(1234.4, 560);
  assert.deepEqual(metrics.first_audio_sent_p50_ms, 250);
  assert.deepEqual(metrics.first_audio_played_p50_ms, null);
  assert.deepEqual([metrics.audio_in_ms, metrics.audio_out_ms], [1234, 560]);
});

Deno.test("metrics: p50 and max per kind; the kept turns are bounded", () => {
  const { latency, at } = clocked();
  for (let i = 0; i < MAX_MEASURED_TURNS + 3; i++) {
    at(i * 10_000);
    latency.speechStopped();
    at(i * 10_000 + 100 * ((i % 4) + 1));
    latency.audioSent();
    latency.markSent(`m${i}`);
    at(i * 10_000 + 1000);
    latency.markPlayed(`m${i}`);
  }
  const metrics = latency.metrics(0, 0);
  assert.deepEqual(metrics.turns.length, MAX_MEASURED_TURNS);
  assert.deepEqual(metrics.first_audio_sent_max_ms, 400);
  assert.deepEqual(metrics.first_audio_sent_p50_ms, 250);
  assert.deepEqual(metrics.first_audio_played_max_ms, 1000);
});

Deno.test("median of odd, even and empty lists", () => {
  assert.deepEqual(median([]), null);
  assert.deepEqual(median([3, 1, 2]), 2);
  assert.deepEqual(median([4, 1, 3, 2]), 2.5);
});

Deno.test("a resumed stream continues the call's turns and audio; the cap holds over all streams", () => {
  const earlier = (count: number) =>
    Array.from(
      { length: count },
      (_, turn) => ({ turn, firstAudioSentMs: 200, firstAudioPlayedMs: 400, toolMs: 0 }),
    );
  const { latency, seen, at } = clocked();
  latency.continueFrom({ turns: earlier(2), audio_in_ms: 1000, audio_out_ms: 300 });
  latency.speechStopped();
  at(600);
  latency.audioSent();
  latency.finish();
  assert.deepEqual(seen, [{ turn: 2, firstAudioSentMs: 600, firstAudioPlayedMs: null, toolMs: 0 }]);
  const metrics = latency.metrics(500, 100);
  assert.deepEqual([metrics.audio_in_ms, metrics.audio_out_ms], [1500, 400]);
  assert.deepEqual([metrics.first_audio_sent_p50_ms, metrics.first_audio_sent_max_ms], [200, 600]);

  const full = clocked();
  full.latency.continueFrom({ turns: earlier(MAX_MEASURED_TURNS), audio_in_ms: 0, audio_out_ms: 0 });
  full.latency.speechStopped();
  full.latency.audioSent();
  full.latency.finish();
  assert.deepEqual(full.seen, [], "no room left: the stream's turn is not kept");
  assert.deepEqual(full.latency.metrics(20, 0).turns.length, MAX_MEASURED_TURNS);
});

Deno.test("metricsFromRow: {} carries nothing; malformed turns and negative audio are left out", () => {
  assert.deepEqual(metricsFromRow({}), null);
  assert.deepEqual(metricsFromRow(null), null);
  assert.deepEqual(metricsFromRow([1]), null);
  const good = { turn: 7, firstAudioSentMs: 300, firstAudioPlayedMs: null, toolMs: 40 };
  assert.deepEqual(
    metricsFromRow({
      turns: [{ firstAudioSentMs: -1, firstAudioPlayedMs: null, toolMs: 0 }, "x", good],
      audio_in_ms: 800,
      audio_out_ms: -5,
    }),
    { turns: [{ ...good, turn: 0 }], audio_in_ms: 800, audio_out_ms: 0 },
  );
  assert.deepEqual(
    metricsFromRow({ turns: Array.from({ length: MAX_MEASURED_TURNS + 2 }, () => good) })?.turns.length,
    MAX_MEASURED_TURNS,
  );
});
