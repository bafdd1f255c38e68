/**
 * The seam between the classifier and an inference backend: what a runner
 * does and what it knows about its model. Each backend lives in its own file
 * (ort_runner.ts for onnxruntime-node, worker_runner.ts for a runner in a Worker).
 */

import type { QuantizationReport } from "./precision.ts";

export type Weights = "synthetic" | "pretrained";
/** The arithmetic the served model runs in (MODEL_PRECISION, unless the int8 quality gate refused it). */
export type Precision = "fp32" | "int8";

/** The one wording of the synthetic-weights warning: the startup log, `/info` and every prediction carry it. */
export const SYNTHETIC_WEIGHTS_WARNING =
  "This model has synthetic (random, seeded) weights: predictions are " +
  "meaningless. Set MODEL_PATH to a pretrained ONNX file, or MODEL_SOURCE=zoo where the internet is reachable.";

/** What the runner knows about the model it serves; shown in `/info` and every prediction. */
export interface ModelInfo {
  name: string;
  version: string;
  weights: Weights;
  sha256: string;
  source: "file" | "zoo" | "synthetic";
  precision: Precision;
  /** What MODEL_PRECISION=int8 did: origin, the quality gate's figures and decision. */
  quantization?: QuantizationReport;
  path: string;
  inputName: string;
  outputName: string;
  inputShape: ReadonlyArray<number | string>;
  outputShape: ReadonlyArray<number | string>;
  classes: number;
  /** True when the model ends in softmax; otherwise the gateway applies it. */
  outputsProbabilities: boolean;
  runtime: string;
  runtimeVersion: string;
  intraOpThreads: number;
}

/** What the batcher drives: one inference session, in-process or in a Worker. */
export interface ModelRunner {
  readonly info: ModelInfo;
  /** Runs `batch` preprocessed images laid out NCHW in `input`; resolves to batch x classes scores. */
  run(input: Float32Array, batch: number): Promise<Float32Array>;
  close(): Promise<void>;
}

/** The model file cannot serve as an ImageNet classifier. */
export class ModelShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelShapeError";
  }
}
