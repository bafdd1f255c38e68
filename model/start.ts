/**
 * Starts a model: resolves the artifact (artifact/), chooses the precision
 * and quantizes if asked (quantize/), loads and warms the runners and builds
 * the classifier over them (runtime/): everything that must happen before
 * `/ready` turns 200. The one module that imports all three; the model CLI
 * imports only the first two, so it never loads the native runtime.
 */
import type { Config } from "../config.ts";
import { initDecoders } from "../image/decode.ts";
import { logger } from "../observability/logger.ts";
import { resolveModel, type ResolveOptions } from "./artifact/resolve.ts";
import { SYNTHETIC_WEIGHTS_WARNING } from "./artifact/types.ts";
import { loadLabels } from "./classes/labels.ts";
import { choosePrecision, servedAsIs } from "./quantize/precision.ts";
import { buildClassifier, type ClassifierHooks, startRunners } from "./runtime/build.ts";
import type { Classifier } from "./runtime/classifier.ts";
import type { ModelInfo, ModelRunner, RunnerOptions } from "./runtime/runner.ts";
import type { ModelState } from "./runtime/state.ts";

export interface LoadedModel {
  /** One per session: in Workers, or a single in-process runner when INFERENCE_WORKERS=0. */
  runners: ModelRunner[];
  info: ModelInfo;
  loadSeconds: number;
  warmupMs: number;
  /** Options to start another identical runner (to replace a dead worker). */
  runnerOptions: RunnerOptions;
}

/** Resolves, loads and warms the model: everything that must happen before `/ready` turns 200. */
export async function loadModel(
  config: Config,
  fetchImpl?: typeof fetch,
  options: ResolveOptions = {},
): Promise<LoadedModel> {
  const log = logger("model");
  const t0 = performance.now();
  const { bytes, ...resolved } = await resolveModel(config, fetchImpl, options);
  if (resolved.weights === "synthetic") {
    log.warn("SYNTHETIC WEIGHTS: {warning}", {
      warning: SYNTHETIC_WEIGHTS_WARNING,
      weights: "synthetic",
      path: resolved.path,
    });
  }
  // Quantizing here needs a writable MODEL_DIR, the native runtime and a model file; without them
  // the model is served as it is (int8 if it was quantized ahead).
  const served = options.disk === false || bytes
    ? servedAsIs(config, { ...resolved, bytes }, options.disk === false ? "no-disk" : "in-memory")
    : await choosePrecision(config, resolved, fetchImpl);
  let runnerOptions: RunnerOptions = {
    backend: config.INFERENCE_BACKEND,
    path: served.path,
    bytes,
    name: config.MODEL_NAME,
    weights: resolved.weights,
    sha256: served.sha256,
    source: resolved.source,
    precision: served.precision,
    ...(served.quantization ? { quantization: served.quantization } : {}),
    intraOpThreads: config.INTRA_OP_THREADS,
    spinning: config.INTRA_OP_SPINNING === "on",
  };
  const started = await startRunners(runnerOptions, config.INFERENCE_WORKERS);
  const { runners, warmupMs } = started;
  runnerOptions = started.runnerOptions;
  const info = runners[0].info;
  const loadSeconds = (performance.now() - t0) / 1000;
  log.info("Model loaded from {source} in {seconds} s", {
    source: resolved.source,
    seconds: +loadSeconds.toFixed(3),
    path: served.path,
    sha256: served.sha256,
    weights: resolved.weights,
    precision: served.precision,
    input: info.inputName,
    output: info.outputName,
    sessions: runners.length,
    backend: config.INFERENCE_BACKEND,
    runtime: `${info.runtime} ${info.runtimeVersion}`,
    in_memory: bytes !== undefined,
    in_workers: config.INFERENCE_WORKERS > 0,
    intra_op_threads: info.intraOpThreads,
  });
  log.info("Model warmed up: slowest warm-up inference took {ms} ms", {
    ms: +warmupMs.toFixed(1),
    softmax_applied_by: info.outputsProbabilities ? "model" : "gateway",
  });
  return { runners, info, loadSeconds, warmupMs, runnerOptions };
}

/**
 * Everything between listening and `/ready` for an entry point (main.ts,
 * edge.ts): labels, decoders, the model, the classifier over it; then marks
 * `state` ready. Throws if the model cannot be served.
 */
export async function startModel(
  config: Config,
  state: ModelState,
  hooks: ClassifierHooks = {},
  options: ResolveOptions = {},
): Promise<Classifier> {
  const [labels, loaded] = await Promise.all([
    loadLabels(),
    loadModel(config, undefined, options),
    initDecoders(config.INFERENCE_BACKEND),
  ]);
  const classifier = buildClassifier(config, loaded, labels, hooks);
  state.markReady(classifier, loaded.loadSeconds, loaded.warmupMs);
  logger("lifecycle").info("Ready: serving {model} ({weights} weights)", {
    model: loaded.info.name,
    weights: loaded.info.weights,
    backend: config.INFERENCE_BACKEND,
    sessions: loaded.runners.length,
    max_batch_size: config.MAX_BATCH_SIZE,
    max_queue: config.MAX_QUEUE,
  });
  return classifier;
}
