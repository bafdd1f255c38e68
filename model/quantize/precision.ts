/**
 * MODEL_PRECISION: decides which file is served, fp32 or int8, and measures
 * what int8 costs before serving it.
 *
 * int8 comes from the model zoo's int8 file (MODEL_SOURCE=zoo), from a model
 * that is already quantized (served as it is), or is made here: the fp32
 * model is calibrated on CALIBRATION_DIR and quantized (quantize.ts), cached
 * in MODEL_DIR under a key of the source's sha256, the calibration set and
 * the method. Then the quality gate compares int8 with fp32 on the held-out
 * photos; below INT8_MIN_AGREEMENT, fp32 is served and a WARN says why.
 */
import { createHash } from "node:crypto";
// The runtime's version, from the package both runtimes share: importing onnxruntime-node here would load
// its native library in every process that resolves a model, the WASM profile's included.
import { env as ortEnv } from "onnxruntime-common";
import type { Config } from "../../config.ts";
import { logger } from "../../observability/logger.ts";
import { type CalibrationSet, loadCalibrationSet, MIN_HELD_OUT_PHOTOS } from "./calibration_set.ts";
import type { Int8Protocol } from "./int8_worker.ts";
import { callOnce } from "../../core/worker_rpc.ts";
import type { Agreement } from "./quality_gate.ts";
import type { CalibrationMethod, Precision, QuantizationReport } from "../artifact/types.ts";
import { sha256Hex } from "../artifact/model_bytes.ts";
import { fileExists, ModelLoadError, type ResolvedModel, resolveZooInt8 } from "../artifact/resolve.ts";
import { sha256File } from "../artifact/download.ts";
import { errorMessage } from "../../core/errors.ts";

const INT8_WORKER = new URL("./int8_worker.ts", import.meta.url);

/** Bumped whenever the quantizer's output changes, so cached int8 files are rebuilt. */
export const QUANTIZER_VERSION = "qdq-v1:bnfold,w-int8-sym-per-channel,a-uint8-asym,relu-fused";

export const SYNTHETIC_NOTE =
  "Synthetic weights: these figures describe the quantizer (how far int8 arithmetic moves this network's " +
  "output), not ImageNet accuracy.";

export interface ServedModel {
  path: string;
  sha256: string;
  precision: Precision;
  quantization?: QuantizationReport;
}

type PrecisionConfig = Pick<
  Config,
  | "MODEL_PRECISION"
  | "MODEL_DIR"
  | "CALIBRATION_DIR"
  | "CALIBRATION_METHOD"
  | "INT8_MIN_AGREEMENT"
  | "MODEL_SOURCE"
  | "MODEL_PATH"
  | "MODEL_ZOO_URL"
  | "MODEL_ZOO_SHA256"
  | "MODEL_ZOO_INT8_URL"
  | "MODEL_ZOO_INT8_SHA256"
  | "SYNTHETIC_SEED"
>;

/** Runs one call in a fresh int8 worker, stopped once it answers; a failure is reported as `what` failed. */
async function inWorker<M extends keyof Int8Protocol & string>(
  what: string,
  method: M,
  arg: Int8Protocol[M]["arg"],
  transfer: Transferable[],
): Promise<Int8Protocol[M]["result"]> {
  try {
    return await callOnce<Int8Protocol, M>(INT8_WORKER, method, arg, transfer, { name: "int8 worker" });
  } catch (err) {
    throw new Error(`${what} failed: ${errorMessage(err)}`, { cause: err });
  }
}

/** Copies of the tensors' buffers, transferred to the worker (the set keeps its own). */
function buffers(tensors: readonly Float32Array[]): ArrayBuffer[] {
  return tensors.map((t) => t.slice().buffer);
}

function hash(...parts: string[]): string {
  return createHash("sha256").update(parts.join("\n")).digest("hex");
}

/** Where the int8 model quantized from `source` with this calibration set and method is cached. */
export function int8CachePath(
  config: Pick<Config, "MODEL_DIR">,
  source: Pick<ResolvedModel, "path" | "sha256">,
  set: Pick<CalibrationSet, "fingerprint">,
  method: CalibrationMethod,
): string {
  const key = hash(QUANTIZER_VERSION, source.sha256, set.fingerprint, method);
  const base = (source.path.split("/").pop() ?? "model").replace(/\.onnx$/i, "");
  return `${config.MODEL_DIR}/${base}-int8-${method}-${key.slice(0, 12)}.onnx`;
}

/** Quantizes `source` (or reuses the cached result); written via a temporary file. */
async function quantizeCached(
  config: PrecisionConfig,
  source: ResolvedModel,
  set: CalibrationSet,
): Promise<{ path: string; sha256: string }> {
  const method = config.CALIBRATION_METHOD;
  const path = int8CachePath(config, source, set, method);
  const log = logger("model");
  if (await fileExists(path)) {
    log.info("Using cached int8 model {path}", { path, method });
    return { path, sha256: await sha256File(path) };
  }
  const t0 = performance.now();
  log.info("Quantizing {source} to int8: calibrating on {images} views of {dir} ({method})", {
    source: source.path,
    images: set.calibration.length,
    dir: set.dir,
    method,
  });
  const calibration = buffers(set.calibration);
  const reply = await inWorker(
    "Quantization",
    "quantize",
    { fp32Path: source.path, calibration, method },
    calibration,
  );
  await Deno.mkdir(config.MODEL_DIR, { recursive: true });
  const bytes = new Uint8Array(reply.bytes);
  const tmp = `${path}.partial-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
  log.info(
    "Quantized to int8 in {seconds} s: {convs} Conv and {adds} Add in int8, {folded} BatchNorm folded",
    {
      seconds: +((performance.now() - t0) / 1000).toFixed(1),
      convs: reply.stats.convs,
      adds: reply.stats.adds,
      folded: reply.stats.foldedBatchNorms,
      calibrated_tensors: reply.stats.tensors,
      path,
    },
  );
  // The bytes just written: hashing them spares reading the file back.
  return { path, sha256: sha256Hex(bytes) };
}

/**
 * The gate's figures for this pair of models on this held-out set: cached
 * beside the int8 file (the runs are deterministic for the same files,
 * photos and runtime), so a restart does not load the fp32 model again.
 */
async function gateFigures(
  fp32: { path: string; sha256: string },
  int8: { path: string; sha256: string },
  set: CalibrationSet,
): Promise<Agreement> {
  const key = hash("gate-v1", fp32.sha256, int8.sha256, set.fingerprint, ortEnv.versions.common);
  const cache = `${int8.path}.gate.json`;
  try {
    const cached = JSON.parse(await Deno.readTextFile(cache));
    if (cached.key === key) return cached.agreement as Agreement;
  } catch { /* absent or unreadable: measure */ }
  const inputs = buffers(set.heldOut);
  const agreement = await inWorker("Quality gate", "measure", {
    fp32Path: fp32.path,
    int8Path: int8.path,
    inputs,
  }, inputs);
  await Deno.writeTextFile(cache, JSON.stringify({ key, agreement }))
    .catch(() => {/* a read-only cache only costs a re-measure */});
  return agreement;
}

/** The report for a model quantized ahead: served as it is, with no fp32 model to measure it against. */
function preQuantizedReport(config: PrecisionConfig, resolved: ResolvedModel): QuantizationReport {
  return {
    origin: "pre-quantized",
    calibrationDir: config.CALIBRATION_DIR,
    minAgreement: config.INT8_MIN_AGREEMENT,
    accepted: true,
    int8Path: resolved.path,
    int8Sha256: resolved.sha256,
    ...(resolved.weights === "synthetic" ? { note: SYNTHETIC_NOTE } : {}),
  };
}

/** Decides what to serve for MODEL_PRECISION, given the resolved (source) model. */
export async function choosePrecision(
  config: PrecisionConfig,
  resolved: ResolvedModel,
  fetchImpl?: typeof fetch,
): Promise<ServedModel> {
  const log = logger("model");
  const fp32: ServedModel = { path: resolved.path, sha256: resolved.sha256, precision: "fp32" };
  // A user's file may already be int8, whatever was asked: say what is served.
  const preQuantized = resolved.quantized;
  if (config.MODEL_PRECISION === "fp32") return preQuantized ? { ...fp32, precision: "int8" } : fp32;

  if (preQuantized) {
    log.info("MODEL_PATH is already quantized; serving it as it is (no fp32 model to measure it against)", {
      path: resolved.path,
    });
    return { ...fp32, precision: "int8", quantization: preQuantizedReport(config, resolved) };
  }
  const minAgreement = config.INT8_MIN_AGREEMENT;
  const note = resolved.weights === "synthetic" ? SYNTHETIC_NOTE : undefined;

  const set = await loadCalibrationSet(config.CALIBRATION_DIR);
  let int8: { path: string; sha256: string } | undefined;
  let origin: QuantizationReport["origin"] = "quantized-at-startup";
  if (resolved.source === "zoo") {
    try {
      int8 = await resolveZooInt8(config, fetchImpl);
      origin = "zoo";
    } catch (err) {
      log.warn("The zoo's int8 model is unavailable ({reason}); quantizing the fp32 zoo model here instead", {
        reason: errorMessage(err),
      });
    }
  }
  int8 ??= await quantizeCached(config, resolved, set);

  const figures = await gateFigures(fp32, int8, set);
  const accepted = figures.top1Agreement >= minAgreement;
  const report: QuantizationReport = {
    origin,
    ...(origin === "quantized-at-startup"
      ? { method: config.CALIBRATION_METHOD, calibrationImages: set.calibration.length }
      : {}),
    calibrationDir: set.dir,
    heldOutImages: figures.images,
    heldOutPhotos: set.heldOutPhotos,
    top1Agreement: figures.top1Agreement,
    meanAbsTop1ConfidenceDelta: figures.meanAbsTop1ConfidenceDelta,
    minAgreement,
    accepted,
    int8Path: int8.path,
    int8Sha256: int8.sha256,
    ...(note ? { note } : {}),
  };
  if (set.heldOutPhotos < MIN_HELD_OUT_PHOTOS) {
    log.warn(
      "The int8 quality gate measured on only {held_out_photos} held-out photos ({held_out_images} views); " +
        "its agreement is a rough figure. {min_photos} held out need about {min_dir_photos} photos of distinct " +
        "scenes like the traffic in CALIBRATION_DIR (every third scene is held out).",
      {
        held_out_photos: set.heldOutPhotos,
        held_out_images: figures.images,
        min_photos: MIN_HELD_OUT_PHOTOS,
        min_dir_photos: 3 * MIN_HELD_OUT_PHOTOS,
        calibration_dir: set.dir,
      },
    );
  }
  const fields = {
    top1_agreement: +figures.top1Agreement.toFixed(4),
    mean_abs_top1_confidence_delta: +figures.meanAbsTop1ConfidenceDelta.toFixed(5),
    held_out_images: figures.images,
    held_out_photos: set.heldOutPhotos,
    min_agreement: minAgreement,
    origin,
    ...(note ? { note } : {}),
  };
  if (!accepted) {
    report.reason = `held-out top-1 agreement ${figures.top1Agreement.toFixed(3)} is below ` +
      `INT8_MIN_AGREEMENT ${minAgreement}`;
    log.warn(
      "INT8 REFUSED: {reason} (fp32 and int8 disagree on {disagree} of {images} views of {held_out_photos} held-out photos); " +
        "serving fp32. Calibrate on photos like the traffic (CALIBRATION_DIR) or lower INT8_MIN_AGREEMENT.",
      {
        ...fields,
        reason: report.reason,
        disagree: Math.round((1 - figures.top1Agreement) * figures.images),
        images: figures.images,
      },
    );
    return { ...fp32, quantization: report };
  }
  log.info(
    "int8 quality gate passed: top-1 agreement with fp32 {top1_agreement}, mean |delta top-1 confidence| " +
      "{mean_abs_top1_confidence_delta} on {held_out_images} views of {held_out_photos} held-out photos",
    fields,
  );
  return { path: int8.path, sha256: int8.sha256, precision: "int8", quantization: report };
}

/**
 * What is served when the model cannot be quantized here: where nothing may be
 * written and no native runtime loads (`no-disk`, the edge entry), or the model
 * is held in memory (`in-memory`, MODEL_URL). The model as it is: int8 when it
 * was quantized ahead. MODEL_PRECISION=int8 over an fp32 model stops the load,
 * saying how to quantize ahead.
 */
export function servedAsIs(
  config: PrecisionConfig,
  resolved: ResolvedModel,
  why: "no-disk" | "in-memory",
): ServedModel {
  const served: ServedModel = {
    path: resolved.path,
    sha256: resolved.sha256,
    precision: resolved.quantized ? "int8" : "fp32",
  };
  if (config.MODEL_PRECISION === "fp32") return served;
  if (served.precision === "fp32") {
    throw new ModelLoadError(
      `MODEL_PRECISION=int8 quantizes at startup, which ${
        why === "no-disk"
          ? "needs a writable MODEL_DIR and the native runtime; this entry has neither"
          : "needs the model as a file; this one is held in memory (MODEL_URL)"
      }. Quantize ahead (MODEL_PRECISION=int8 deno task model:synth or model:fetch writes the int8 file ` +
        "into MODEL_DIR) and point MODEL_PATH or MODEL_URL at that file.",
    );
  }
  return { ...served, quantization: preQuantizedReport(config, resolved) };
}
