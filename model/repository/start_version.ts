/**
 * Starts one repository version with the same path as the single model:
 * resolve the file, load and warm the sessions (in Workers unless
 * INFERENCE_WORKERS=0), quantize and gate int8 when asked, build the
 * classifier. Refusals carry the reason the index shows.
 */
import type { Config } from "../../config.ts";
import { LABELS_URL, loadLabels, parseLabels } from "../classes/labels.ts";
import { buildClassifier, type ClassifierHooks } from "../runtime/build.ts";
import { type LoadedModel, loadModel } from "../start.ts";
import { type StartedVersion, VersionLoadError, type VersionSource } from "./registry.ts";
import type { ModelConfig } from "./model_config.ts";
import type { ResolveOptions } from "../artifact/resolve.ts";

/** The gateway's settings with a model's config.json overrides applied. */
export function versionConfig(
  config: Config,
  source: Pick<VersionSource, "model" | "path">,
  model: ModelConfig,
): Config {
  return {
    ...config,
    MODEL_SOURCE: "file",
    MODEL_PATH: source.path,
    MODEL_URL: undefined,
    MODEL_NAME: source.model,
    MODEL_PRECISION: model.precision ?? config.MODEL_PRECISION,
    TOP_K: model.top_k ?? config.TOP_K,
    MAX_BATCH_SIZE: model.max_batch_size ?? config.MAX_BATCH_SIZE,
    MAX_BATCH_DELAY_MS: model.max_batch_delay_ms ?? config.MAX_BATCH_DELAY_MS,
    MAX_QUEUE: model.max_queue ?? config.MAX_QUEUE,
  };
}

const SHAPE_MESSAGE = /^Model (input|output|must have)\b/;

/** Why a load failed, as the index names it. */
function loadFailure(err: unknown, path: string): VersionLoadError {
  if (err instanceof VersionLoadError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (/^Quantization failed/.test(message)) {
    return new VersionLoadError("int8_gate", `int8 was asked for and could not be made: ${message}`, {
      cause: err,
    });
  }
  // The runners say so first when onnxruntime cannot parse the file at all.
  if (/^Cannot load ONNX model/.test(message)) {
    return new VersionLoadError("corrupt_file", message, { cause: err });
  }
  if ((err instanceof Error && err.name === "ModelShapeError") || SHAPE_MESSAGE.test(message)) {
    return new VersionLoadError("wrong_shape", message, { cause: err });
  }
  return new VersionLoadError("corrupt_file", `${path} cannot be loaded: ${message}`, { cause: err });
}

async function closeAll(loaded: LoadedModel): Promise<void> {
  await Promise.all(loaded.runners.map((r) => r.close().catch(() => {})));
}

/** A `start` function for the registry, over the gateway's configuration. */
export function versionStarter(
  config: Config,
  hooks: ClassifierHooks = {},
  options: ResolveOptions = {},
): (source: VersionSource) => Promise<StartedVersion> {
  return async (source) => {
    const settings = versionConfig(config, source, source.config);
    let loaded: LoadedModel;
    try {
      loaded = await loadModel(settings, undefined, options);
    } catch (err) {
      throw loadFailure(err, source.path);
    }
    try {
      const q = loaded.info.quantization;
      if (settings.MODEL_PRECISION === "int8" && loaded.info.precision !== "int8") {
        throw new VersionLoadError(
          "int8_gate",
          `int8 was asked for and refused: ${q?.reason ?? "no quantized model could be made"}`,
        );
      }
      const classes = loaded.info.classes;
      const labels = source.labelsPath
        ? parseLabels(await Deno.readTextFile(source.labelsPath))
        : await loadLabels(LABELS_URL, classes).catch((err) => {
          throw new VersionLoadError("labels", `${err.message}; give the model a labels.txt`);
        });
      if (labels.length !== classes) {
        throw new VersionLoadError(
          "labels",
          `${source.labelsPath} has ${labels.length} labels; the model outputs ${classes} classes`,
        );
      }
      for (const runner of loaded.runners) runner.info.version = source.version;
      const classifier = buildClassifier(settings, loaded, labels, hooks);
      return { classifier, topK: settings.TOP_K, close: () => classifier.close() };
    } catch (err) {
      await closeAll(loaded);
      throw loadFailure(err, source.path);
    }
  };
}
