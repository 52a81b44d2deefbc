// The worker's metrics in Prometheus' text exposition format (version 0.0.4): counters, gauges
// read at scrape time, and histograms with fixed buckets. Names and units follow Prometheus'
// conventions (snake_case, base units: seconds, `_total` on counters). Labels carry only values
// from closed sets chosen here (a direction, a trigger, an outcome), never a tenant's data, a
// call's id or a number: a scrape must not leak who called whom, and unbounded labels would grow
// the registry with every call.
// https://prometheus.io/docs/instrumenting/exposition_formats/

export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Record<string, string>;

interface Metric {
  readonly name: string;
  render(): string[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function labelText(labels: Labels): string {
  const pairs = Object.entries(labels).map(([key, value]) =>
    `${key}="${value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')}"`
  );
  return pairs.length > 0 ? `{${pairs.join(",")}}` : "";
}

function numberText(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function header(name: string, help: string, type: string): string[] {
  return [`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${name} ${type}`];
}

/** Handoffs by the trigger in the calls row's end_reason (`handoff:<trigger>:<mode>`). */
export function handoffMetricTrigger(endReason: string | null): HandoffMetricTrigger | null {
  const trigger = endReason?.match(/^handoff:([a-z_]+):/)?.[1];
  if (trigger === "quiet") return "wall_clock_quiet";
  if (trigger === "forced") return "wall_clock_forced";
  if (trigger === "beforeunload" || trigger === "drain") return trigger;
  return null;
}

/** One label value's count, bound once: a hot path (a frame relayed) adds without a lookup. */
export interface BoundCounter {
  inc(amount?: number): void;
}

/** A counter per combination of one label's allowed values (all exported from the start at 0,
 * so a rate over a series that has not moved yet is 0, not absent). */
export class Counter<L extends string = never> {
  private readonly values = new Map<string, { value: number }>();

  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly label: string | null = null,
    private readonly allowed: readonly L[] = [],
  ) {
    for (const value of allowed) this.values.set(value, { value: 0 });
    if (label === null) this.values.set("", { value: 0 });
  }

  inc(...args: [L] extends [never] ? [amount?: number] : [value: L, amount?: number]): void {
    const [key, amount] = this.label === null
      ? ["", args[0] as number | undefined]
      : [args[0] as string, args[1]];
    // A value outside the closed set is a programming error; it is not exported (no unbounded labels).
    const cell = this.values.get(key);
    if (cell !== undefined) cell.value += amount ?? 1;
  }

  /** `inc` for one label value, looked up once (a value outside the closed set counts nowhere). */
  bind(...args: [L] extends [never] ? [] : [value: L]): BoundCounter {
    const cell = this.values.get(this.label === null ? "" : args[0] as string) ?? { value: 0 };
    return {
      inc: (amount = 1) => {
        cell.value += amount;
      },
    };
  }

  render(): string[] {
    const lines = header(this.name, this.help, "counter");
    for (const [key, { value }] of this.values) {
      const labels = this.label === null ? {} : { [this.label]: key };
      lines.push(`${this.name}${labelText(labels)} ${numberText(value)}`);
    }
    return lines;
  }
}

/** A gauge read when scraped (live calls, a queue's depth): nothing to keep in step. */
export class Gauge {
  constructor(readonly name: string, private readonly help: string, private readonly read: () => number) {}

  render(): string[] {
    return [...header(this.name, this.help, "gauge"), `${this.name} ${numberText(this.read())}`];
  }
}

/** A counter kept elsewhere (the turn store's dropped writes), read when scraped. */
export class ReadCounter {
  constructor(readonly name: string, private readonly help: string, private readonly read: () => number) {}

  render(): string[] {
    return [...header(this.name, this.help, "counter"), `${this.name} ${numberText(this.read())}`];
  }
}

/** A histogram with cumulative buckets (upper bounds in the metric's unit), a sum and a count. */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly bounds: readonly number[],
  ) {
    if (bounds.some((bound, i) => i > 0 && bound <= bounds[i - 1])) {
      throw new Error(`${name}: bucket bounds must increase`);
    }
    this.counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    if (!Number.isFinite(value) || value < 0) return;
    this.sum += value;
    this.count++;
    const index = this.bounds.findIndex((bound) => value <= bound);
    if (index >= 0) this.counts[index]++;
  }

  render(): string[] {
    const lines = header(this.name, this.help, "histogram");
    let cumulative = 0;
    this.bounds.forEach((bound, i) => {
      cumulative += this.counts[i];
      lines.push(`${this.name}_bucket{le="${numberText(bound)}"} ${cumulative}`);
    });
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`);
    lines.push(`${this.name}_sum ${numberText(this.sum)}`, `${this.name}_count ${this.count}`);
    return lines;
  }
}

/** The worker's metrics, rendered together in registration order. */
export class Registry {
  private readonly metrics: Metric[] = [];

  register<M extends Metric>(metric: M): M {
    if (!METRIC_NAME.test(metric.name)) throw new Error(`invalid metric name ${metric.name}`);
    if (this.metrics.some((known) => known.name === metric.name)) {
      throw new Error(`metric ${metric.name} registered twice`);
    }
    this.metrics.push(metric);
    return metric;
  }

  render(): string {
    return this.metrics.flatMap((metric) => metric.render()).join("\n") + "\n";
  }
}

export function checkLabelName(name: string): string {
  if (!LABEL_NAME.test(name)) throw new Error(`invalid label name ${name}`);
  return name;
}

export const FRAME_DIRECTIONS = ["caller_to_model", "model_to_caller"] as const;
export type FrameDirection = typeof FRAME_DIRECTIONS[number];
/** Why a call moved to another worker: the wall clock (a quiet moment or the forced point), the
 * runtime's beforeunload, or a SIGTERM drain of a self-hosted worker. */
export const HANDOFF_TRIGGERS = ["wall_clock_quiet", "wall_clock_forced", "beforeunload", "drain"] as const;
export type HandoffMetricTrigger = typeof HANDOFF_TRIGGERS[number];

// Model setup (socket open to session.updated) takes ~0.3-1 s; the setup timeout is 15 s.
const SETUP_BUCKETS_S = [0.1, 0.25, 0.5, 1, 2, 5, 10, 15];
// Reply latency (caller stops speaking to the first assistant audio sent) targets under ~1 s.
const REPLY_BUCKETS_S = [0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5];

/** What the worker reads at scrape time. */
export interface MetricSources {
  liveCalls(): number;
  turnStoreQueueDepth(): number;
  turnStoreWriteFailures(): number;
  draining(): boolean;
}

/** What a call session counts (a part of VoiceMetrics). */
export interface SessionMetrics {
  frames: Counter<FrameDirection>;
  modelSetupSeconds: Histogram;
  /** Fed from the one per-turn reply-latency measurement (speech_stopped to the first assistant
   * audio sent) that the call row stores too: never measured twice. */
  replyLatencySeconds: Histogram;
}

export interface VoiceMetrics {
  registry: Registry;
  frames: Counter<FrameDirection>;
  handoffs: Counter<HandoffMetricTrigger>;
  modelSetupSeconds: Histogram;
  replyLatencySeconds: Histogram;
}

export function createVoiceMetrics(sources: MetricSources): VoiceMetrics {
  const registry = new Registry();
  registry.register(
    new Gauge("twilio_voice_live_calls", "Media streams this worker is serving.", sources.liveCalls),
  );
  registry.register(
    new Gauge(
      "twilio_voice_draining",
      "1 while this worker drains (SIGTERM), else 0.",
      () => sources.draining() ? 1 : 0,
    ),
  );
  const frames = registry.register(
    new Counter(
      "twilio_voice_frames_total",
      "20 ms audio frames relayed, by direction.",
      checkLabelName("direction"),
      FRAME_DIRECTIONS,
    ),
  );
  const handoffs = registry.register(
    new Counter(
      "twilio_voice_handoffs_total",
      "Calls handed to another worker, by trigger.",
      checkLabelName("trigger"),
      HANDOFF_TRIGGERS,
    ),
  );
  registry.register(
    new Gauge(
      "twilio_voice_turn_store_queue_depth",
      "Turn-store writes queued and not yet stored.",
      sources.turnStoreQueueDepth,
    ),
  );
  registry.register(
    new ReadCounter(
      "twilio_voice_turn_store_write_failures_total",
      "Turn-store writes given up on after their retries.",
      sources.turnStoreWriteFailures,
    ),
  );
  const modelSetupSeconds = registry.register(
    new Histogram(
      "twilio_voice_model_setup_seconds",
      "Realtime model session setup, socket open to session ready.",
      SETUP_BUCKETS_S,
    ),
  );
  const replyLatencySeconds = registry.register(
    new Histogram(
      "twilio_voice_reply_latency_seconds",
      "Caller's speech stopped to the first assistant audio sent.",
      REPLY_BUCKETS_S,
    ),
  );
  return { registry, frames, handoffs, modelSetupSeconds, replyLatencySeconds };
}
