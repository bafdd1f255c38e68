/**
 * Tracing: owns the tracer provider, sampling, export and the
 * `recordSpanError` helper. Configured by OpenTelemetry's standard variables
 * (parsed in config.ts). With no endpoint, spans still exist in-process (their
 * ids reach logs, headers and exemplars) but nothing is exported.
 *
 * Sampling keeps what an SRE needs: the configured head sampler decides which
 * traces are exported normally, and every trace whose request failed (5xx) or
 * was slower than the latency objective is kept too. To make that possible the
 * head sampler's "drop" is turned into "record, not sampled": spans are
 * recorded in memory, buffered per trace until the request's root span ends,
 * then exported or discarded. Downstream services still see the head decision
 * in `traceparent`.
 */
import {
  type Attributes,
  type Context,
  context as contextApi,
  type Link,
  type Span,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  type Tracer,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { type ExportResult, ExportResultCode, W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  type ReadableSpan,
  type Sampler,
  SamplingDecision,
  type SamplingResult,
  type SpanExporter,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { type Config, parseKeyValues, tracesEndpoint } from "../config.ts";
import { logger } from "./logger.ts";

export const propagator = new W3CTraceContextPropagator();

/** Marks a span failed: status ERROR with the message, and the exception as an event. */
export function recordSpanError(span: Span, err: unknown): void {
  const error = err instanceof Error ? err : new Error(String(err));
  span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}

/** Counters read by the metrics layer at scrape time. */
export interface TracingStats {
  spansExported: number;
  spansDropped: number;
  exportFailures: number;
}

/** Turns a head sampler's NOT_RECORD into RECORD so the tail decision can still keep a failed or slow trace. */
class RecordEverythingSampler implements Sampler {
  constructor(private readonly inner: Sampler) {}
  shouldSample(
    context: Context,
    traceId: string,
    name: string,
    kind: SpanKind,
    attributes: Attributes,
    links: Link[],
  ): SamplingResult {
    const result = this.inner.shouldSample(context, traceId, name, kind, attributes, links);
    return result.decision === SamplingDecision.NOT_RECORD
      ? { ...result, decision: SamplingDecision.RECORD }
      : result;
  }
  toString(): string {
    return `RecordEverything{${this.inner.toString()}}`;
  }
}

function headSampler(config: Config): Sampler {
  const ratio = new TraceIdRatioBasedSampler(config.OTEL_TRACES_SAMPLER_ARG);
  switch (config.OTEL_TRACES_SAMPLER) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return ratio;
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: ratio });
  }
}

/** A span seen by the exporter as sampled (the tail decision overrides the head one). */
function asSampled(span: ReadableSpan): ReadableSpan {
  const ctx = span.spanContext();
  const sampled = { ...ctx, traceFlags: ctx.traceFlags | TraceFlags.SAMPLED };
  return Object.create(span, { spanContext: { value: () => sampled } });
}

function durationMs(span: ReadableSpan): number {
  return span.duration[0] * 1e3 + span.duration[1] / 1e6;
}

/**
 * Exports head-sampled spans at once; buffers the others per trace until the
 * local root ends, then exports the trace if it failed or was slow.
 */
export class TailKeepProcessor implements SpanProcessor {
  readonly #next: SpanProcessor;
  readonly #slowMs: number;
  readonly #stats: TracingStats;
  readonly #pending = new Map<string, ReadableSpan[]>();
  static readonly MAX_PENDING_TRACES = 10_000;
  static readonly MAX_SPANS_PER_TRACE = 256;

  constructor(next: SpanProcessor, slowMs: number, stats: TracingStats) {
    this.#next = next;
    this.#slowMs = slowMs;
    this.#stats = stats;
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    const ctx = span.spanContext();
    if (ctx.traceFlags & TraceFlags.SAMPLED) {
      this.#next.onEnd(span);
      return;
    }
    const isLocalRoot = !span.parentSpanContext || span.parentSpanContext.isRemote;
    let buffered = this.#pending.get(ctx.traceId);
    if (!isLocalRoot) {
      if (!buffered) {
        if (this.#pending.size >= TailKeepProcessor.MAX_PENDING_TRACES) {
          this.#stats.spansDropped++;
          return;
        }
        this.#pending.set(ctx.traceId, buffered = []);
      }
      if (buffered.length < TailKeepProcessor.MAX_SPANS_PER_TRACE) buffered.push(span);
      else this.#stats.spansDropped++;
      return;
    }
    this.#pending.delete(ctx.traceId);
    const keep = span.status.code === SpanStatusCode.ERROR || durationMs(span) > this.#slowMs;
    const spans = buffered ? [...buffered, span] : [span];
    if (!keep) {
      this.#stats.spansDropped += spans.length;
      return;
    }
    for (const s of spans) this.#next.onEnd(asSampled(s));
  }

  forceFlush(): Promise<void> {
    return this.#next.forceFlush();
  }

  shutdown(): Promise<void> {
    this.#pending.clear();
    return this.#next.shutdown();
  }
}

/** Counts what the exporter delivers and fails; reports the first failure once, never throws. */
class CountingExporter implements SpanExporter {
  #reported = false;
  constructor(private readonly inner: SpanExporter, private readonly stats: TracingStats) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    try {
      this.inner.export(spans, (result) => {
        if (result.code === ExportResultCode.SUCCESS) this.stats.spansExported += spans.length;
        else this.#fail(spans.length, result.error);
        done(result);
      });
    } catch (err) {
      this.#fail(spans.length, err);
      done({ code: ExportResultCode.FAILED, error: err instanceof Error ? err : new Error(String(err)) });
    }
  }

  #fail(count: number, error: unknown): void {
    this.stats.exportFailures++;
    this.stats.spansDropped += count;
    if (!this.#reported) {
      this.#reported = true;
      logger("telemetry").warn(
        "Trace export failed; further failures are only counted in telemetry_export_failures_total",
        { error: error instanceof Error ? error.message : String(error) },
      );
    }
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

export interface Tracing {
  tracer: Tracer;
  stats: TracingStats;
  /** Where spans are exported, if anywhere. */
  endpoint: string | undefined;
  forceFlush(): Promise<void>;
  /** Flushes pending spans (bounded by the exporter's timeout) and stops. */
  shutdown(): Promise<void>;
}

let contextManagerInstalled = false;

/** Context propagation across awaits; installed once per process. */
function installContextManager(): void {
  if (contextManagerInstalled) return;
  contextApi.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  contextManagerInstalled = true;
}

export interface TracingOptions {
  config: Config;
  version: string;
  /** Tests pass an in-memory exporter; otherwise OTLP/HTTP when an endpoint is configured. */
  exporter?: SpanExporter;
  /** Batch delay; short in tests. */
  scheduledDelayMillis?: number;
}

export function createTracing(options: TracingOptions): Tracing {
  const { config } = options;
  installContextManager();
  const stats: TracingStats = { spansExported: 0, spansDropped: 0, exportFailures: 0 };
  const endpoint = tracesEndpoint(config);
  const exporter = options.exporter ??
    (endpoint
      ? new OTLPTraceExporter({
        url: endpoint,
        headers: parseKeyValues(config.OTEL_EXPORTER_OTLP_HEADERS),
        timeoutMillis: 5_000,
      })
      : undefined);
  const spanProcessors: SpanProcessor[] = [];
  if (exporter) {
    const batch = new BatchSpanProcessor(new CountingExporter(exporter, stats), {
      maxQueueSize: 4096,
      maxExportBatchSize: 512,
      scheduledDelayMillis: options.scheduledDelayMillis ?? 1000,
      exportTimeoutMillis: 5_000,
    });
    const tailOff = config.OTEL_TRACES_SAMPLER === "always_off";
    spanProcessors.push(tailOff ? batch : new TailKeepProcessor(batch, config.LATENCY_OBJECTIVE_MS, stats));
  }
  const sampler = headSampler(config);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      ...parseKeyValues(config.OTEL_RESOURCE_ATTRIBUTES),
      [ATTR_SERVICE_NAME]: config.OTEL_SERVICE_NAME,
      [ATTR_SERVICE_VERSION]: options.version,
    }),
    // Without an exporter, nothing is buffered: spans only carry ids.
    sampler: exporter && config.OTEL_TRACES_SAMPLER !== "always_off"
      ? new RecordEverythingSampler(sampler)
      : sampler,
    spanProcessors,
  });
  return {
    tracer: provider.getTracer("inference-gateway", options.version),
    stats,
    endpoint: exporter ? (endpoint ?? "in-process exporter") : undefined,
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}

export { SpanKind, SpanStatusCode };
