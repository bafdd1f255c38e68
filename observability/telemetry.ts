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
  const metrics = createMetrics(createRegistry(), {
    telemetry: () => ({
      ...tracing.stats,
      logSinkFailures: logSinkFailures.count,
      dropped: droppedTelemetry(),
    }),
    queueLimit: config.MAX_QUEUE,
    version,
  });
  return { metrics, tracing };
}
