/**
 * Times one request's stages. Each stage is a child span, an observation of
 * `inference_stage_duration_seconds{stage}` and a Server-Timing entry, all
 * under the same name, so the three views of a request line up.
 */
import { type Attributes, type Tracer } from "@opentelemetry/api";
import { exemplarLabels, type Metrics, type StageName } from "./metrics.ts";
import { recordSpanError } from "./otel.ts";
import { recordSafely } from "./telemetry_guard.ts";

export type Annotate = (attributes: Attributes) => void;

/** What the model pipeline sees: a way to run a named stage and annotate it. */
export interface StageRunner {
  run<T>(stage: StageName, fn: (annotate: Annotate) => T | Promise<T>): Promise<T>;
  /** Records a stage that ran elsewhere (a worker): `start` is a performance.now() value. */
  record(stage: StageName, start: number, durationMs: number, attributes?: Attributes, error?: unknown): void;
}

/** Times stages without telemetry (used outside HTTP, e.g. by the benchmark). */
export class PlainStages implements StageRunner {
  readonly timings: Partial<Record<StageName, number>> = {};
  async run<T>(stage: StageName, fn: (annotate: Annotate) => T | Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn(() => {});
    } finally {
      this.timings[stage] = (this.timings[stage] ?? 0) + performance.now() - t0;
    }
  }
  record(stage: StageName, _start: number, durationMs: number): void {
    this.timings[stage] = (this.timings[stage] ?? 0) + durationMs;
  }
}

export class RequestStages implements StageRunner {
  /** Milliseconds per stage, for Server-Timing and the response body. */
  readonly timings: Partial<Record<StageName, number>> = {};

  constructor(
    private readonly tracer: Tracer,
    private readonly metrics: Metrics,
    /** Exemplar labels linking observations to this request's trace, when it is kept. */
    private readonly exemplar: () => Record<string, string> | undefined,
  ) {}

  run<T>(stage: StageName, fn: (annotate: Annotate) => T | Promise<T>): Promise<T> {
    return this.tracer.startActiveSpan(stage, async (span) => {
      const t0 = performance.now();
      try {
        return await fn((attributes) => span.setAttributes(attributes));
      } catch (err) {
        recordSpanError(span, err);
        throw err;
      } finally {
        this.#observe(stage, performance.now() - t0);
        span.end();
      }
    });
  }

  record(
    stage: StageName,
    start: number,
    durationMs: number,
    attributes: Attributes = {},
    error?: unknown,
  ): void {
    const epoch = (ms: number) => performance.timeOrigin + ms;
    const span = this.tracer.startSpan(stage, { startTime: epoch(start), attributes });
    if (error !== undefined) recordSpanError(span, error);
    span.end(epoch(start + durationMs));
    this.#observe(stage, durationMs);
  }

  #observe(stage: StageName, ms: number): void {
    this.timings[stage] = (this.timings[stage] ?? 0) + ms;
    recordSafely("stage_duration", [ms], () =>
      this.metrics.stageDuration.observe({
        labels: { stage },
        value: ms / 1000,
        exemplarLabels: exemplarLabels(this.exemplar()),
      }));
  }

  /** `Server-Timing` value: each stage's duration in ms. */
  serverTiming(totalMs: number): string {
    const parts = Object.entries(this.timings).map(([name, ms]) => `${name};dur=${ms!.toFixed(2)}`);
    parts.push(`total;dur=${totalMs.toFixed(2)}`);
    return parts.join(", ");
  }
}
