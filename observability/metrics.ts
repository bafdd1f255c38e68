/**
 * The metric catalogue (prom-client, on an injected Registry). Names follow
 * Prometheus conventions: base units, `_seconds`, `_bytes`, `_total`.
 * docs/observability.md describes each one.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { recordSafely } from "./telemetry_guard.ts";

/** Stage names: the same strings name the spans and the Server-Timing entries. */
export const STAGES = [
  "read_body",
  "decode",
  "preprocess",
  "queue_wait",
  "inference",
  "postprocess",
] as const;
export type StageName = typeof STAGES[number];

/**
 * OpenTelemetry's advisory boundaries for `http.server.request.duration`, plus 0.3: the latency
 * objective (300 ms, docs/slo.md) must be a boundary for the SLI to count exactly.
 */
export const LATENCY_BUCKETS = [
  0,
  0.005,
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.25,
  0.3,
  0.5,
  0.75,
  1,
  2.5,
  5,
  7.5,
  10,
];
const STAGE_BUCKETS = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.02,
  0.04,
  0.06,
  0.08,
  0.1,
  0.15,
  0.25,
  0.5,
  1,
  2.5,
];
const BYTE_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384].map((k) => k * 1024); // 1 KiB .. 16 MiB
const PIXEL_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 100].map((m) => m * 1e6);
const CONFIDENCE_BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1];

/**
 * prom-client default metrics that report real values under Deno (checked one
 * by one). Left out, because Deno does not provide their source: resident and
 * virtual memory, open and max fds (read /proc through Node's fs: always 0),
 * active handles and requests, GC durations (no GC performance entries),
 * `nodejs_eventloop_lag_seconds` (always 0; the percentiles work), and
 * `nodejs_version_info` (reports Deno's Node-compat version; build_info has Deno's).
 */
const WORKING_DEFAULT_METRICS = [
  "process_cpu_user_seconds_total",
  "process_cpu_system_seconds_total",
  "process_cpu_seconds_total",
  "process_start_time_seconds",
  "nodejs_eventloop_lag_min_seconds",
  "nodejs_eventloop_lag_max_seconds",
  "nodejs_eventloop_lag_mean_seconds",
  "nodejs_eventloop_lag_stddev_seconds",
  "nodejs_eventloop_lag_p50_seconds",
  "nodejs_eventloop_lag_p90_seconds",
  "nodejs_eventloop_lag_p99_seconds",
  "nodejs_heap_size_total_bytes",
  "nodejs_heap_size_used_bytes",
  "nodejs_external_memory_bytes",
  "nodejs_heap_space_size_total_bytes",
  "nodejs_heap_space_size_used_bytes",
  "nodejs_heap_space_size_available_bytes",
];

/** The attributes of OpenTelemetry's http.server.request.duration, as Prometheus label names. */
const HTTP_LABELS = ["http_request_method", "http_route", "http_response_status_code", "error_type"] as const;
export type HttpLabels = Partial<Record<typeof HTTP_LABELS[number], string>>;

/** Counters the tracing and logging layers keep as plain numbers; exposed at scrape time. */
export interface TelemetryStats {
  spansExported: number;
  spansDropped: number;
  exportFailures: number;
  logSinkFailures: number;
  /** Observations dropped by the telemetry guard, by signal. */
  dropped: ReadonlyMap<string, number>;
}

/**
 * What the model gauges read at scrape time. The model layer provides it, once
 * (model/repository/metrics.ts binds it with `readModel`), so no code path can forget to update
 * a gauge; until then the gauges say no model is ready.
 */
export interface ModelReadings {
  ready: boolean;
  loadSeconds?: number;
  queueDepth?: number;
  workers?: number;
  info?: {
    name: string;
    version: string;
    weights: string;
    precision: string;
    sha256: string;
    runtimeVersion: string;
    runtime: string;
    quantization?: { accepted: boolean; top1Agreement?: number; meanAbsTop1ConfidenceDelta?: number };
  };
  /** Every version the model repository knows, with its state. */
  versions?: ReadonlyArray<{ model: string; version: string; state: string }>;
  /** Every model that should serve, and whether a version of it does. */
  serving?: ReadonlyArray<{ model: string; ready: boolean }>;
}

/** What the catalogue reads besides the model: fixed at creation, or counted elsewhere. */
export interface MetricSources {
  telemetry: () => TelemetryStats;
  /** MAX_QUEUE. */
  queueLimit: number;
  /** The service's version, for build_info (the runtime's versions come from Deno.version). */
  version: string;
}

export function createMetrics(registry: Registry, { telemetry, queueLimit, version }: MetricSources) {
  const r = [registry];
  let model: () => ModelReadings = () => ({ ready: false });
  // A scrape must not fail because the model layer's reading threw: it counts as a dropped observation.
  const readings = (): ModelReadings => {
    let read: ModelReadings = { ready: false };
    recordSafely("model_readings", [], () => read = model());
    return read;
  };
  /** Sets `gauge` to a reading that exists and is finite (a NaN gauge stays NaN until the next set). */
  const setReading = (gauge: Gauge, value: number | undefined) => {
    if (value !== undefined) recordSafely("model_readings", [value], () => gauge.set(value));
  };
  const exemplars = { enableExemplars: true } as const;
  const m = {
    registry,
    // OpenTelemetry's stable HTTP server metrics, as Prometheus exposes them: dots become
    // underscores, the unit a suffix. The histogram's _count is the request counter.
    httpDuration: new Histogram({
      name: "http_server_request_duration_seconds",
      help:
        "Duration of HTTP server requests, from receiving the request to its response being ready (OpenTelemetry http.server.request.duration).",
      labelNames: HTTP_LABELS,
      buckets: LATENCY_BUCKETS,
      registers: r,
      ...exemplars,
    }),
    httpActive: new Gauge({
      name: "http_server_active_requests",
      help: "HTTP server requests being handled right now (OpenTelemetry http.server.active_requests).",
      labelNames: ["http_request_method"] as const,
      registers: r,
    }),
    connectionsOpen: new Gauge({
      name: "http_connections_open",
      help: "Client connections open on the public listener.",
      registers: r,
    }),
    connectionsRefused: new Counter({
      name: "http_connections_refused_total",
      help:
        "Client connections refused or closed by a limit: connection_limit, header_timeout (no complete request headers in time), idle_timeout.",
      labelNames: ["reason"] as const,
      registers: r,
    }),
    acceptErrors: new Counter({
      name: "accept_errors_total",
      help:
        "Failed accepts on the public listener, which keeps accepting: reset (the client reset before it was accepted), aborted, descriptors (out of file descriptors: accepting backs off), other.",
      labelNames: ["reason"] as const,
      registers: r,
    }),
    stageDuration: new Histogram({
      name: "inference_stage_duration_seconds",
      help: "Duration of each stage of a prediction; stages are named as their spans.",
      labelNames: ["stage"] as const,
      buckets: STAGE_BUCKETS,
      registers: r,
      ...exemplars,
    }),
    rejected: new Counter({
      name: "requests_rejected_total",
      help: "Requests refused before or during a prediction, by reason.",
      labelNames: ["reason"] as const,
      registers: r,
    }),
    authFailures: new Counter({
      name: "auth_failures_total",
      help:
        "Requests refused by access control: missing (no usable key), unknown (a key not in API_KEYS_FILE), scope (a known key without the route's scope).",
      labelNames: ["reason"] as const,
      registers: r,
    }),
    apiKeyRequests: new Counter({
      name: "api_key_requests_total",
      help: "Requests let through with each API key, by the key's id in API_KEYS_FILE.",
      labelNames: ["key_id"] as const,
      registers: r,
    }),
    apiKeysLoaded: new Gauge({
      name: "api_keys_loaded",
      help: "Keys in the API key set being served (present only with API_KEYS_FILE).",
      registers: r,
    }),
    apiKeysFileValid: new Gauge({
      name: "api_keys_file_valid",
      help:
        "0 while API_KEYS_FILE on disk is broken or missing and the last good key set still serves; else 1.",
      registers: r,
    }),
    apiKeysLoadedTime: new Gauge({
      name: "api_keys_loaded_timestamp_seconds",
      help: "When the API key set being served was loaded (Unix time).",
      registers: r,
    }),
    apiKeysReloadFailures: new Counter({
      name: "api_keys_reload_failures_total",
      help: "Versions of API_KEYS_FILE that could not be loaded (each broken version counts once).",
      registers: r,
    }),
    inputBytes: new Histogram({
      name: "image_input_bytes",
      help: "Size of uploaded images in bytes, by format.",
      labelNames: ["format"] as const,
      buckets: BYTE_BUCKETS,
      registers: r,
    }),
    inputPixels: new Histogram({
      name: "image_input_pixels",
      help: "Pixels (width x height) of uploaded images, from their headers, by format.",
      labelNames: ["format"] as const,
      buckets: PIXEL_BUCKETS,
      registers: r,
    }),
    confidence: new Histogram({
      name: "prediction_confidence",
      help: "Top-1 probability of each prediction; a shift down is a silent-failure signal.",
      buckets: CONFIDENCE_BUCKETS,
      registers: r,
    }),
    batchSize: new Histogram({
      name: "inference_batch_size",
      help: "Images per onnxruntime run (dynamic batching).",
      buckets: [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64],
      registers: r,
    }),
    queueDepth: new Gauge({
      name: "inference_queue_depth",
      help: "Requests waiting for an inference runner.",
      registers: r,
      collect() {
        // Also set on every enqueue and dequeue (the classifier's hook); exact at each scrape.
        setReading(this, readings().queueDepth);
      },
    }),
    queueLimit: new Gauge({
      name: "inference_queue_limit",
      help: "MAX_QUEUE: past this depth requests are refused with 503 overloaded.",
      registers: r,
      collect() {
        this.set(queueLimit);
      },
    }),
    workers: new Gauge({
      name: "inference_workers",
      help: "Inference sessions in service.",
      registers: r,
      collect() {
        setReading(this, readings().workers);
      },
    }),
    workerRestarts: new Counter({
      name: "inference_worker_restarts_total",
      help: "Inference workers that died and were replaced.",
      registers: r,
    }),
    modelLoad: new Gauge({
      name: "model_load_duration_seconds",
      help: "Time to resolve, load and warm up the model at startup.",
      registers: r,
      collect() {
        setReading(this, readings().loadSeconds);
      },
    }),
    modelReady: new Gauge({
      name: "model_ready",
      help: "1 when the model is loaded, warm and admitting requests; 0 otherwise.",
      registers: r,
      collect() {
        this.set(readings().ready ? 1 : 0);
      },
    }),
    modelInfo: new Gauge({
      name: "model_info",
      help:
        "The model being served and the runtime serving it (onnxruntime-node or onnxruntime-web); always 1.",
      labelNames: [
        "name",
        "version",
        "weights",
        "precision",
        "sha256",
        "runtime_version",
        "runtime",
      ] as const,
      registers: r,
      collect() {
        const info = readings().info;
        if (!info) return;
        this.reset();
        this.set({
          name: info.name,
          version: info.version,
          weights: info.weights,
          precision: info.precision,
          sha256: info.sha256,
          runtime_version: info.runtimeVersion,
          runtime: info.runtime,
        }, 1);
      },
    }),
    int8Agreement: new Gauge({
      name: "model_int8_top1_agreement_ratio",
      help:
        "MODEL_PRECISION=int8: share of held-out photos whose int8 top-1 class is the fp32 one (with synthetic weights: a property of the quantizer, not ImageNet accuracy).",
      registers: r,
      collect() {
        setReading(this, readings().info?.quantization?.top1Agreement);
      },
    }),
    int8ConfidenceDelta: new Gauge({
      name: "model_int8_top1_confidence_delta_ratio",
      help:
        "MODEL_PRECISION=int8: mean absolute change of the fp32 top-1 class's probability between fp32 and int8, on held-out photos.",
      registers: r,
      collect() {
        setReading(this, readings().info?.quantization?.meanAbsTop1ConfidenceDelta);
      },
    }),
    int8Accepted: new Gauge({
      name: "model_int8_accepted",
      help:
        "MODEL_PRECISION=int8: 1 when int8 is served, 0 when the quality gate refused it and fp32 is served.",
      registers: r,
      collect() {
        const q = readings().info?.quantization;
        if (q) this.set(q.accepted ? 1 : 0);
      },
    }),
    // The model repository. Labels are bounded by what the repository holds (models, their versions)
    // and by the vocabularies of model/repository/version_state.ts.
    versionState: new Gauge({
      name: "model_version_state",
      help:
        "Each model version the repository knows, 1 for its state (READY, LOADING, UNLOADING, UNAVAILABLE).",
      labelNames: ["model", "version", "state"] as const,
      registers: r,
      collect() {
        const versions = readings().versions;
        if (!versions) return;
        this.reset();
        for (const v of versions) this.set({ model: v.model, version: v.version, state: v.state }, 1);
      },
    }),
    modelServing: new Gauge({
      name: "model_serving_ready",
      help: "For each model that should serve: 1 when a version of it is ready, 0 when none is.",
      labelNames: ["model"] as const,
      registers: r,
      collect() {
        const serving = readings().serving;
        if (!serving) return;
        this.reset();
        for (const s of serving) this.set({ model: s.model }, s.ready ? 1 : 0);
      },
    }),
    repositoryEvents: new Counter({
      name: "model_repository_events_total",
      help: "Model versions loaded, failed to load, unloaded, and switches of the version answering.",
      labelNames: ["model", "event"] as const,
      registers: r,
    }),
    loadFailures: new Counter({
      name: "model_load_failures_total",
      help:
        "Model version loads that failed, by reason (corrupt_file, wrong_shape, int8_gate, memory_limit, ...).",
      labelNames: ["model", "reason"] as const,
      registers: r,
    }),
    buildInfo: new Gauge({
      name: "build_info",
      help: "Service version and runtime versions; always 1.",
      labelNames: ["version", "deno", "v8", "typescript"] as const,
      registers: r,
      collect() {
        const { deno, v8, typescript } = Deno.version;
        this.reset();
        this.set({ version, deno, v8, typescript }, 1);
      },
    }),
    residentMemory: new Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident set size of the process (from Deno.memoryUsage).",
      registers: r,
      collect() {
        this.set(Deno.memoryUsage().rss);
      },
    }),
    spansExported: new Counter({
      name: "telemetry_spans_exported_total",
      help: "Spans handed to the OTLP exporter successfully.",
      registers: r,
      collect() {
        this.reset();
        this.inc(telemetry().spansExported);
      },
    }),
    spansDropped: new Counter({
      name: "telemetry_spans_dropped_total",
      help: "Spans recorded but not exported (not sampled and neither failed nor slow, or buffers full).",
      registers: r,
      collect() {
        this.reset();
        this.inc(telemetry().spansDropped);
      },
    }),
    telemetryFailures: new Counter({
      name: "telemetry_export_failures_total",
      help: "Telemetry that could not be delivered, by signal (traces: OTLP export; logs: sink errors).",
      labelNames: ["signal"] as const,
      registers: r,
      collect() {
        const t = telemetry();
        this.reset();
        this.inc({ signal: "traces" }, t.exportFailures);
        this.inc({ signal: "logs" }, t.logSinkFailures);
      },
    }),
    telemetryDropped: new Counter({
      name: "telemetry_dropped_total",
      help:
        "Observations dropped because recording them threw or their value was not a finite number, by signal (what was being recorded); the request went on.",
      labelNames: ["signal"] as const,
      registers: r,
      collect() {
        this.reset();
        for (const [signal, count] of telemetry().dropped) this.inc({ signal }, count);
      },
    }),
  };

  /** Binds what the model gauges read (once: model/repository/metrics.ts). */
  const readModel = (source: () => ModelReadings) => {
    model = source;
  };

  // Default metrics go to a scratch registry; only the ones that work under Deno are kept.
  const scratch = new Registry();
  collectDefaultMetrics({ register: scratch });
  for (const name of WORKING_DEFAULT_METRICS) {
    const metric = scratch.getSingleMetric(name);
    if (metric) registry.registerMetric(metric);
  }
  return { ...m, readModel };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** A registry that can render both the Prometheus text format and OpenMetrics (which carries exemplars). */
export function createRegistry(): Registry {
  // prom-client's typings omit the constructor's content-type argument.
  const OpenMetricsRegistry = Registry as unknown as new (contentType: string) => Registry;
  return new OpenMetricsRegistry(Registry.OPENMETRICS_CONTENT_TYPE);
}

/**
 * Renders the registry in the format the scraper asked for: OpenMetrics (with
 * exemplars) when its Accept header names it, the Prometheus text format otherwise.
 */
export function renderMetrics(
  registry: Registry,
  accept: string | undefined,
): Promise<{ body: string; contentType: string }> {
  const openMetrics = (accept ?? "").includes("application/openmetrics-text");
  const type = openMetrics ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE;
  // The format is a property of the registry, so scrapes are serialized: two
  // concurrent scrapes must not switch it under each other.
  const previous = renderQueue.get(registry) ?? Promise.resolve();
  const next = previous.catch(() => {}).then(async () => {
    // prom-client renames counters in place (drops `_total`) when rendering
    // OpenMetrics; restore the names so the next Prometheus scrape is unchanged.
    const names = registry.getMetricsAsArray().map((m) => [m, m.name] as const);
    try {
      // deno-lint-ignore no-explicit-any
      (registry as any).setContentType(type);
      return { body: await registry.metrics(), contentType: type };
    } finally {
      for (const [metric, name] of names) (metric as { name: string }).name = name;
    }
  });
  renderQueue.set(registry, next);
  return next;
}

const renderQueue = new WeakMap<Registry, Promise<unknown>>();

/**
 * Exemplar labels for `observe()`. prom-client types them as the metric's own
 * label names, but exemplars carry other labels (trace_id), so the type is widened here once.
 */
export function exemplarLabels(labels: Record<string, string> | undefined): Record<never, never> | undefined {
  return labels;
}

/**
 * The labels of one request's observation: OpenTelemetry's attributes, with `error_type` set as its
 * HTTP conventions say for a server: the status code, when the status is 5xx.
 */
export function httpLabels(method: string, route: string, status: number): HttpLabels {
  const code = String(status);
  return {
    http_request_method: method,
    http_route: route,
    http_response_status_code: code,
    ...(status >= 500 && { error_type: code }),
  };
}

/**
 * Creates, at zero, the request series an alert or a dashboard reads, so `rate()`,
 * `increase()` and `absent()` answer before the first request of each kind.
 */
export function primeHttpSeries(
  metrics: Metrics,
  routes: ReadonlyArray<{ method: string; route: string }>,
  statuses: readonly number[],
): void {
  for (const { method, route } of routes) {
    for (const status of statuses) metrics.httpDuration.zero(httpLabels(method, route, status));
  }
}

/** Creates each refusal reason's counter at zero (see primeHttpSeries). */
export function primeRejections(metrics: Metrics, reasons: Iterable<string>): void {
  for (const reason of reasons) metrics.rejected.inc({ reason }, 0);
}
