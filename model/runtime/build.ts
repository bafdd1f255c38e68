/**
 * The serving side of a loaded model: its runners started and warmed (in
 * Workers or in-process), the batcher over them, the supervisor that replaces
 * a dead worker, and the classifier that feeds the batcher. Knows nothing of
 * where the model file came from or how it was quantized.
 */
import type { Tracer } from "@opentelemetry/api";
import type { Config } from "../../config.ts";
import { InlinePreprocessor, PreprocessPool } from "../../image/preprocess_pool.ts";
import { logger } from "../../observability/logger.ts";
import { guarded } from "../../observability/telemetry_guard.ts";
import { createRunner } from "./backends.ts";
import { Batcher } from "./batcher.ts";
import { Classifier, type ImageInput } from "./classifier.ts";
import type { ModelInfo, ModelRunner, RunnerOptions } from "./runner.ts";
import { WorkerRunner } from "./worker_runner.ts";

export interface StartedRunners {
  /** One per session: in Workers, or a single in-process runner when `workers` is 0. */
  runners: ModelRunner[];
  /** The slowest warm-up inference, in ms. */
  warmupMs: number;
  /** Options to start another identical runner (to replace a dead worker). */
  runnerOptions: RunnerOptions;
}

/** Starts and warms `workers` inference Workers, or one in-process runner when `workers` is 0. */
export async function startRunners(runnerOptions: RunnerOptions, workers: number): Promise<StartedRunners> {
  if (workers === 0) {
    const runner = await createRunner(runnerOptions);
    const warmupMs = await runner.warmup();
    // The session holds its own copy; no worker will need the bytes again.
    return { runners: [runner], warmupMs, runnerOptions: { ...runnerOptions, bytes: undefined } };
  }
  const started = await Promise.all(
    Array.from({ length: workers }, () => WorkerRunner.create(runnerOptions)),
  );
  return { runners: started, warmupMs: Math.max(...started.map((w) => w.warmupMs)), runnerOptions };
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
 * What the model layer reports, as callbacks: model/repository/metrics.ts
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
  loaded: { runners: ModelRunner[]; info: ModelInfo; runnerOptions?: RunnerOptions },
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
