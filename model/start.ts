/**
 * Resolve, load and warm the model, and build the classifier over it:
 * everything that must happen before `/ready` turns 200. Separate from
 * source.ts so the model CLI does not load the native runtime.
 */
import type { Config } from "../config.ts";
import { initDecoders } from "../image/decode.ts";
import { loadLabels } from "./classes/labels.ts";
import type { ModelState } from "./runtime/state.ts";
import { logger } from "../observability/logger.ts";
import { guarded } from "../observability/telemetry_guard.ts";
import { resolveModel, type ResolveOptions } from "./artifact/resolve.ts";
import { choosePrecision, servedAsIs } from "./quantize/precision.ts";
import type { Tracer } from "@opentelemetry/api";
import { Batcher } from "./runtime/batcher.ts";
import { Classifier, type ImageInput } from "./runtime/classifier.ts";
import { InlinePreprocessor, PreprocessPool } from "../image/preprocess_pool.ts";
import {
  createRunner,
  type ModelInfo,
  type ModelRunner,
  type RunnerOptions,
  SYNTHETIC_WEIGHTS_WARNING,
} from "./runtime/runner.ts";
import { WorkerRunner } from "./runtime/worker_runner.ts";

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
    ? await servedAsIs(config, { ...resolved, bytes }, options.disk === false ? "no-disk" : "in-memory")
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
  let runners: ModelRunner[];
  let warmupMs: number;
  if (config.INFERENCE_WORKERS === 0) {
    const runner = await createRunner(runnerOptions);
    warmupMs = await runner.warmup();
    runners = [runner];
    // The session holds its own copy; no worker will need the bytes again.
    runnerOptions = { ...runnerOptions, bytes: undefined };
  } else {
    const workers = await Promise.all(
      Array.from({ length: config.INFERENCE_WORKERS }, () => WorkerRunner.create(runnerOptions)),
    );
    warmupMs = Math.max(...workers.map((w) => w.warmupMs));
    runners = workers;
  }
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
 * Replaces any inference worker that dies: its in-flight requests have
 * already been failed by the runner; queued ones wait for the replacement
 * (or their deadline). Restarts are counted through `onRestart`.
 */
export function superviseWorkers(
  batcher: Batcher,
  runnerOptions: RunnerOptions,
  onRestart: (reason: string) => void = () => {},
  create: (options: RunnerOptions) => Promise<WorkerRunner> = (o) => WorkerRunner.create(o, 1),
): void {
  const log = logger("model");
  const restarted = guarded("worker_restart", onRestart)!;
  const watch = (runner: ModelRunner) => {
    if (!(runner instanceof WorkerRunner)) return;
    runner.onDeath(async (reason) => {
      if (reason === "closed") return;
      batcher.retire(runner);
      restarted(reason);
      log.error("Inference worker died ({reason}); starting a replacement", { reason });
      for (let attempt = 1;; attempt++) {
        try {
          const fresh = await create(runnerOptions);
          batcher.add(fresh);
          watch(fresh);
          log.info("Replacement inference worker ready", { attempt });
          return;
        } catch (err) {
          log.error("Replacement inference worker failed to start: {error}", { error: String(err), attempt });
          await new Promise((r) => setTimeout(r, Math.min(30_000, 500 * 2 ** attempt)));
        }
      }
    });
  };
  for (const runner of batcher.runners) watch(runner);
}

/**
 * What the model layer reports, as callbacks: observability/telemetry.ts
 * builds them from the metric catalogue (modelHooks). Each is called through
 * the telemetry guard, so none can fail a request.
 */
export interface ClassifierHooks {
  tracer?: Tracer;
  onQueueDepth?: (depth: number) => void;
  onBatch?: (size: number) => void;
  onInput?: (image: ImageInput) => void;
  onWorkerRestart?: (reason: string) => void;
}

/**
 * The batcher over the loaded runners, and the classifier that feeds it. With
 * `runnerOptions`, inference workers that die are replaced (superviseWorkers).
 */
export function buildClassifier(
  config: Config,
  loaded: Pick<LoadedModel, "runners" | "info"> & Partial<Pick<LoadedModel, "runnerOptions">>,
  labels: readonly string[],
  hooks: ClassifierHooks = {},
): Classifier {
  const batcher = new Batcher(loaded.runners, {
    maxBatchSize: config.MAX_BATCH_SIZE,
    maxBatchDelayMs: config.MAX_BATCH_DELAY_MS,
    maxQueue: config.MAX_QUEUE,
    classes: loaded.info.classes,
    tracer: hooks.tracer,
    onQueueDepth: hooks.onQueueDepth,
    onBatch: hooks.onBatch,
  });
  if (loaded.runnerOptions) superviseWorkers(batcher, loaded.runnerOptions, hooks.onWorkerRestart);
  // The WASM profile decodes without native code too.
  const preprocessing = { orientation: config.EXIF_ORIENTATION, codecs: config.INFERENCE_BACKEND };
  const preprocessor = config.PREPROCESS_WORKERS > 0
    ? new PreprocessPool(config.PREPROCESS_WORKERS, preprocessing)
    : new InlinePreprocessor(preprocessing);
  return new Classifier(
    loaded.info,
    batcher,
    labels,
    { maxImagePixels: config.MAX_IMAGE_PIXELS, onInput: hooks.onInput },
    preprocessor,
  );
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
