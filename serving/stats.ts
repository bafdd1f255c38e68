/**
 * Per-model inference statistics, as Triton's statistics extension reports
 * them: for each served model, its requests' items that succeeded or failed
 * and the time spent queued, preparing input (decode and preprocess), running
 * the model and ranking the output. The shared inference sequence records
 * them (serving/infer.ts); model executions and their batch sizes come from
 * the batcher, which alone knows them.
 */
import type { StageName } from "../observability/metrics.ts";

/** A count and the total duration in nanoseconds, the extension's unit. */
export interface Duration {
  count: number;
  ns: number;
}

/** What one model accumulated; the field names are the extension's. */
export interface InferenceStats {
  success: Duration;
  fail: Duration;
  queue: Duration;
  compute_input: Duration;
  compute_infer: Duration;
  compute_output: Duration;
}

export interface ModelCounters {
  /** Items answered (the extension counts an inference per batch element). */
  inferenceCount: number;
  /** Milliseconds since the epoch of the last answered item, 0 when none. */
  lastInference: number;
  stats: InferenceStats;
}

const zero = (): Duration => ({ count: 0, ns: 0 });
const NS_PER_MS = 1e6;

function emptyCounters(): ModelCounters {
  const stats = {
    success: zero(),
    fail: zero(),
    queue: zero(),
    compute_input: zero(),
    compute_infer: zero(),
    compute_output: zero(),
  };
  return { inferenceCount: 0, lastInference: 0, stats };
}

/** The stages that make up each of the extension's compute durations. */
const PHASES: ReadonlyArray<[keyof InferenceStats, readonly StageName[]]> = [
  ["queue", ["queue_wait"]],
  ["compute_input", ["decode", "preprocess"]],
  ["compute_infer", ["inference"]],
  ["compute_output", ["postprocess"]],
];

export class ModelStatistics {
  readonly #models = new Map<string, ModelCounters>();

  /** Records one item: whether it was answered, its duration and its stages' milliseconds. */
  record(model: string, ok: boolean, durationMs: number, stages: Partial<Record<StageName, number>>): void {
    let m = this.#models.get(model);
    if (!m) {
      m = emptyCounters();
      this.#models.set(model, m);
    }
    const add = (d: Duration, ms: number) => {
      d.count++;
      d.ns += Math.round(ms * NS_PER_MS);
    };
    add(ok ? m.stats.success : m.stats.fail, durationMs);
    if (!ok) return;
    m.inferenceCount++;
    m.lastInference = Date.now();
    for (const [phase, names] of PHASES) {
      const ran = names.filter((s) => stages[s] !== undefined);
      if (ran.length) add(m.stats[phase], ran.reduce((sum, s) => sum + stages[s]!, 0));
    }
  }

  /** A copy of one model's counters; zeros for a model that has answered nothing yet. */
  of(model: string): ModelCounters {
    const m = this.#models.get(model);
    return m ? structuredClone(m) : emptyCounters();
  }
}
