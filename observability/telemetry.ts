/**
 * The telemetry a process owns: one registry with the metric catalogue and
 * one tracer. Built once in main.ts (and per test), injected into createApp
 * and, as hooks, into the classifier.
 */
import type { Config } from "../config.ts";
import { logSinkFailures } from "./logger.ts";
import { createMetrics, createRegistry, type Metrics } from "./metrics.ts";
import { createTracing, type Tracing, type TracingOptions } from "./otel.ts";
import { droppedTelemetry } from "./telemetry_guard.ts";

export interface Telemetry {
  metrics: Metrics;
  tracing: Tracing;
}

export function createTelemetry(
  config: Config,
  version: string,
  options: Pick<TracingOptions, "exporter" | "scheduledDelayMillis"> = {},
): Telemetry {
  const tracing = createTracing({ config, version, ...options });
  const metrics = createMetrics(createRegistry(), () => ({
    ...tracing.stats,
    logSinkFailures: logSinkFailures.count,
    dropped: droppedTelemetry(),
  }));
  return { metrics, tracing };
}

/**
 * The hooks main.ts and the tests give buildClassifier (ClassifierHooks in
 * model/startup.ts, which knows nothing of prom-client). The model layer calls
 * each through the telemetry guard, so none of them can fail a request.
 */
export function modelHooks({ metrics, tracing }: Telemetry) {
  return {
    tracer: tracing.tracer,
    onQueueDepth: (depth: number) => metrics.queueDepth.set(depth),
    onBatch: (size: number) => metrics.batchSize.observe(size),
    onInput: ({ format, bytes, pixels }: { format: string; bytes: number; pixels: number }) => {
      metrics.inputBytes.observe({ format }, bytes);
      metrics.inputPixels.observe({ format }, pixels);
    },
    onWorkerRestart: () => metrics.workerRestarts.inc(),
    // The model repository's events (model/repository/registry.ts RegistryHooks).
    onLoaded: (model: string) => metrics.repositoryEvents.inc({ model, event: "loaded" }),
    onFailed: (model: string, _version: string, reason: string) => {
      metrics.repositoryEvents.inc({ model, event: "load_failed" });
      metrics.loadFailures.inc({ model, reason });
    },
    onUnloaded: (model: string) => metrics.repositoryEvents.inc({ model, event: "unloaded" }),
    onSwitched: (model: string) => metrics.repositoryEvents.inc({ model, event: "switched" }),
  };
}
