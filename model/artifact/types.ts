/**
 * What a model artifact is, in the words every part of model/ shares: where
 * it came from, its weights, the arithmetic it runs in and, for int8, how it
 * was made. Here, beneath both the quantizer and the runtime, so neither
 * imports the other to describe a model.
 */
import type { Config, PRECISIONS } from "../../config.ts";

/** Where the model came from (MODEL_SOURCE resolved). */
export type ModelSource = "file" | "url" | "zoo" | "synthetic";

export type Weights = "synthetic" | "pretrained";

/** The arithmetic the served model runs in (MODEL_PRECISION, unless the int8 quality gate refused it). */
export type Precision = typeof PRECISIONS[number];

/** The methods are listed once, by the CALIBRATION_METHOD variable that chooses one. */
export type CalibrationMethod = Config["CALIBRATION_METHOD"];

/** The one wording of the synthetic-weights warning: the startup log, `/info` and every prediction carry it. */
export const SYNTHETIC_WEIGHTS_WARNING =
  "This model has synthetic (random, seeded) weights: predictions are " +
  "meaningless. Set MODEL_PATH to a pretrained ONNX file, or MODEL_SOURCE=zoo where the internet is reachable.";

/** What the int8 step did; shown in /info, the startup log and the model_int8_* gauges. */
export interface QuantizationReport {
  /** Where the int8 model came from. */
  origin: "quantized-at-startup" | "zoo" | "pre-quantized";
  /** Calibration method and set, when quantized here. */
  method?: CalibrationMethod;
  calibrationDir: string;
  calibrationImages?: number;
  /** Held-out views the gate measured on (ten per photo). */
  heldOutImages?: number;
  /** The distinct held-out photos those views come from: the sample size that matters. */
  heldOutPhotos?: number;
  /** The gate's figures; absent when there is no fp32 model to compare with (pre-quantized file). */
  top1Agreement?: number;
  meanAbsTop1ConfidenceDelta?: number;
  minAgreement: number;
  /** Whether int8 is served; when not, `reason` says why. */
  accepted: boolean;
  reason?: string;
  int8Path: string;
  int8Sha256: string;
  note?: string;
}
