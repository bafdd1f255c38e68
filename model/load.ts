/**
 * Resolve, load and warm the model: everything that must happen before
 * `/ready` turns 200. Separate from loader.ts so the model CLI does not load
 * the native runtime.
 */
import type { Config } from "../config.ts";
import { logger } from "../observability/logger.ts";
import { type ResolvedModel, resolveModel } from "./loader.ts";
import { OrtRunner } from "./runner.ts";

export interface LoadedModel {
  runner: OrtRunner;
  resolved: ResolvedModel;
  loadSeconds: number;
  warmupMs: number;
}

/** Resolves, loads and warms the model: everything that must happen before `/ready` turns 200. */
export async function loadModel(config: Config, fetchImpl?: typeof fetch): Promise<LoadedModel> {
  const log = logger("model");
  const t0 = performance.now();
  const resolved = await resolveModel(config, fetchImpl);
  if (resolved.weights === "synthetic") {
    log.warn(
      "SYNTHETIC WEIGHTS: serving a ResNet-50 with random seeded weights; predictions are meaningless. " +
        "Set MODEL_PATH to a pretrained ONNX file or MODEL_SOURCE=zoo where the internet is reachable.",
      { weights: "synthetic", path: resolved.path },
    );
  }
  const runner = await OrtRunner.create({
    path: resolved.path,
    name: config.MODEL_NAME,
    weights: resolved.weights,
    sha256: resolved.sha256,
    source: resolved.source,
    intraOpThreads: config.INTRA_OP_THREADS,
  });
  const loadSeconds = (performance.now() - t0) / 1000;
  log.info("Model loaded from {source} in {seconds} s", {
    source: resolved.source,
    seconds: +loadSeconds.toFixed(3),
    path: resolved.path,
    sha256: resolved.sha256,
    weights: resolved.weights,
    input: runner.info.inputName,
    output: runner.info.outputName,
  });
  const warmupMs = await runner.warmup();
  log.info("Model warmed up: last warm-up inference took {ms} ms", {
    ms: +warmupMs.toFixed(1),
    softmax_applied_by: runner.info.outputsProbabilities ? "model" : "gateway",
  });
  return { runner, resolved, loadSeconds, warmupMs };
}
