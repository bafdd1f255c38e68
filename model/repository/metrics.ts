/**
 * What the served models report to the metric catalogue (observability/metrics.ts), in one place:
 * events as the typed hooks the runtime (ClassifierHooks) and the registry (RegistryHooks) call,
 * each through the telemetry guard; levels (readiness, queue, workers, what is loaded, every
 * version's state) read from the model state and the repository at scrape time, by the gauges'
 * own collect(), so no code path can forget to update one.
 */
import type { Metrics, ModelReadings } from "../../observability/metrics.ts";
import type { Telemetry } from "../../observability/telemetry.ts";
import type { ClassifierHooks } from "../runtime/build.ts";
import type { ModelState } from "../runtime/state.ts";
import type { RegistryHooks } from "./registry.ts";
import type { Repository } from "./repository.ts";

/** Everything the model layer may report: what startRepository and buildClassifier take. */
export type ModelHooks = ClassifierHooks & RegistryHooks;

/** The hooks that turn the model layer's events into metrics and spans. */
export function modelHooks({ metrics, tracing }: Telemetry): Required<ModelHooks> {
  return {
    tracer: tracing.tracer,
    onQueueDepth: (depth) => metrics.queueDepth.set(depth),
    onBatch: (size) => metrics.batchSize.observe(size),
    onInput: ({ format, bytes, pixels }) => {
      metrics.inputBytes.observe({ format }, bytes);
      metrics.inputPixels.observe({ format }, pixels);
    },
    onWorkerRestart: () => metrics.workerRestarts.inc(),
    onLoaded: (model) => metrics.repositoryEvents.inc({ model, event: "loaded" }),
    onFailed: (model, _version, reason) => {
      metrics.repositoryEvents.inc({ model, event: "load_failed" });
      metrics.loadFailures.inc({ model, reason });
    },
    onUnloaded: (model) => metrics.repositoryEvents.inc({ model, event: "unloaded" }),
    onSwitched: (model) => metrics.repositoryEvents.inc({ model, event: "switched" }),
  };
}

/** The model gauges' readings now: from `state` (the model answering), and `repository` if there is one. */
export function modelReadings(state: ModelState, repository?: Repository): ModelReadings {
  const classifier = state.classifier;
  const info = classifier?.info;
  const readings: ModelReadings = {
    ready: state.status === "ready",
    loadSeconds: state.loadSeconds,
    queueDepth: classifier?.batcher.queueDepth,
    workers: classifier?.batcher.runners.length,
    info: info && {
      name: info.name,
      version: info.version,
      weights: info.weights,
      precision: info.precision,
      sha256: info.sha256,
      runtimeVersion: info.runtimeVersion,
      runtime: info.runtime,
      quantization: info.quantization,
    },
  };
  if (!repository) return readings;
  const { registry } = repository;
  const notReady = repository.notReady();
  const waiting = new Set(notReady.map((m) => m.name));
  return {
    ...readings,
    // With a repository, model_ready is what /ready answers: every model that should serve has a version
    // ready (none, in explicit mode before any load), and the instance is not draining.
    ...(repository.root ? { ready: notReady.length === 0 && state.status !== "draining" } : {}),
    versions: registry.index().filter((e) => e.version).map((e) => ({
      model: e.name,
      version: e.version,
      state: e.state,
    })),
    // A model with no default version yet and nothing waiting for it is not meant to serve.
    serving: registry.models
      .filter((name) => waiting.has(name) || registry.defaultVersion(name) !== undefined)
      .map((name) => ({ model: name, ready: !waiting.has(name) })),
  };
}

/** Points the catalogue's model gauges at `state` and `repository` (once per app). */
export function bindModelMetrics(metrics: Metrics, state: ModelState, repository?: Repository): void {
  metrics.readModel(() => modelReadings(state, repository));
}
