import assert from "node:assert/strict";
import { Counter, createVoiceMetrics, handoffMetricTrigger, Histogram, Registry } from "./metrics.ts";

interface Family {
  help: string;
  type: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** A strict reader of the text exposition format: every sample belongs to the family whose HELP
 * and TYPE came just before it (a histogram's _bucket/_sum/_count to its base name). */
function parseExposition(text: string): Map<string, Family> {
  assert.ok(text.endsWith("\n"), "exposition ends with a newline");
  const families = new Map<string, Family>();
  let current: string | null = null;
  for (const line of text.slice(0, -1).split("\n")) {
    const help = line.match(/^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/);
    if (help) {
      assert.ok(!families.has(help[1]), `${help[1]} described twice`);
      families.set(help[1], { help: help[2], type: "", samples: [] });
      current = help[1];
      continue;
    }
    const type = line.match(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/);
    if (type) {
      assert.equal(type[1], current, `TYPE ${type[1]} right after its HELP`);
      families.get(current!)!.type = type[2];
      continue;
    }
    const sample = line.match(SAMPLE);
    assert.ok(sample, `not a sample line: ${line}`);
    const family = families.get(current!)!;
    const base = family.type === "histogram" ? sample[1].replace(/_(bucket|sum|count)$/, "") : sample[1];
    assert.equal(base, current, `${sample[1]} outside its family`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (sample[2] ?? "").matchAll(LABEL)) labels[key] = value;
    const value = sample[3] === "+Inf" ? Infinity : Number(sample[3]);
    assert.ok(!Number.isNaN(value), `value of ${line}`);
    family.samples.push({ name: sample[1], labels, value });
  }
  return families;
}

function voiceMetrics() {
  let live = 3;
  const metrics = createVoiceMetrics({
    liveCalls: () => live,
    turnStoreQueueDepth: () => 7,
    turnStoreWriteFailures: () => 2,
    draining: () => false,
  });
  return { metrics, setLive: (value: number) => live = value };
}

Deno.test("the worker's metrics parse as Prometheus text, with conventional names, types and units", () => {
  const { metrics, setLive } = voiceMetrics();
  metrics.frames.inc("caller_to_model");
  // A call binds its directions once and counts through them (the same series).
  metrics.frames.bind("caller_to_model").inc();
  const modelToCaller = metrics.frames.bind("model_to_caller");
  modelToCaller.inc(4);
  modelToCaller.inc();
  metrics.handoffs.inc("drain");
  metrics.modelSetupSeconds.observe(0.4);
  metrics.replyLatencySeconds.observe(0.25);
  metrics.replyLatencySeconds.observe(7);
  setLive(4);
  const families = parseExposition(metrics.registry.render());
  const types = Object.fromEntries([...families].map(([name, family]) => [name, family.type]));
  assert.deepEqual(types, {
    twilio_voice_live_calls: "gauge",
    twilio_voice_draining: "gauge",
    twilio_voice_frames_total: "counter",
    twilio_voice_handoffs_total: "counter",
    twilio_voice_turn_store_queue_depth: "gauge",
    twilio_voice_turn_store_write_failures_total: "counter",
    twilio_voice_model_setup_seconds: "histogram",
    twilio_voice_reply_latency_seconds: "histogram",
  });
  for (const [name, family] of families) {
    if (family.type === "counter") assert.match(name, /_total$/);
    assert.ok(family.help.length > 10, `${name} has a HELP text`);
  }
  assert.equal(families.get("twilio_voice_live_calls")!.samples[0].value, 4, "gauges are read when scraped");
  const frames = families.get("twilio_voice_frames_total")!.samples;
  assert.deepEqual(frames.map((s) => [s.labels.direction, s.value]), [["caller_to_model", 2], [
    "model_to_caller",
    5,
  ]]);
  const handoffs = families.get("twilio_voice_handoffs_total")!.samples;
  assert.deepEqual(
    handoffs.map((s) => [s.labels.trigger, s.value]),
    [["wall_clock_quiet", 0], ["wall_clock_forced", 0], ["beforeunload", 0], ["drain", 1]],
  );
  assert.equal(families.get("twilio_voice_turn_store_write_failures_total")!.samples[0].value, 2);

  const reply = families.get("twilio_voice_reply_latency_seconds")!.samples;
  const buckets = reply.filter((s) => s.name.endsWith("_bucket"));
  assert.equal(buckets.at(-1)!.labels.le, "+Inf");
  for (let i = 1; i < buckets.length; i++) {
    assert.ok(buckets[i].value >= buckets[i - 1].value, "buckets are cumulative");
    assert.ok(Number(buckets[i].labels.le.replace("+Inf", "Infinity")) > Number(buckets[i - 1].labels.le));
  }
  assert.equal(buckets.find((s) => s.labels.le === "0.3")!.value, 1);
  assert.equal(buckets.find((s) => s.labels.le === "5")!.value, 1, "7 s lands only in +Inf");
  assert.equal(buckets.at(-1)!.value, 2);
  assert.equal(reply.find((s) => s.name.endsWith("_count"))!.value, 2);
  assert.equal(reply.find((s) => s.name.endsWith("_sum"))!.value, 7.25);
});

Deno.test("labels outside the closed set are not exported, and bad observations are ignored", () => {
  const registry = new Registry();
  const counter = registry.register(new Counter<"a" | "b">("x_total", "Things.", "kind", ["a", "b"]));
  (counter.inc as (value: string) => void)("+15551234567");
  (counter.bind as (value: string) => { inc(): void })("+15557654321").inc();
  const histogram = registry.register(new Histogram("y_seconds", "Time.", [1]));
  histogram.observe(-1);
  histogram.observe(NaN);
  const text = registry.render();
  assert.doesNotMatch(text, /1555/);
  assert.match(text, /^x_total\{kind="a"\} 0$/m, "a bound value outside the set counts nowhere");
  assert.match(text, /^y_seconds_count 0$/m);
  assert.throws(() => registry.register(new Counter("x_total", "Again.")), /twice/);
  assert.throws(() => registry.register(new Counter("bad-name", "Dash.")), /invalid metric name/);
  assert.throws(() => new Histogram("z", "Z.", [2, 1]), /increase/);
});

Deno.test("handoffs are counted by the trigger stored in end_reason", () => {
  assert.equal(handoffMetricTrigger("handoff:quiet:listen"), "wall_clock_quiet");
  assert.equal(handoffMetricTrigger("handoff:forced:reply"), "wall_clock_forced");
  assert.equal(handoffMetricTrigger("handoff:drain:listen"), "drain");
  assert.equal(handoffMetricTrigger("handoff:beforeunload:reply"), "beforeunload");
  assert.equal(handoffMetricTrigger("handoff:transfer_unanswered"), null);
  assert.equal(handoffMetricTrigger(null), null);
});
