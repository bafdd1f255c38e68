/**
 * The seam between the classifier and an inference backend: what a runner
 * does and what it knows about its model. Each backend lives in its own file
 * (ort_runner.ts for onnxruntime-node, wasm_runner.ts for onnxruntime-web,
 * worker_runner.ts for either in a Worker) and is imported only when chosen,
 * so the WASM profile never loads a native library.
 */
import type { InferenceSession, Tensor } from "onnxruntime-common";
import { CROP_SIZE, TENSOR_SIZE } from "../../image/preprocess.ts";
import { isProbabilityRow } from "../classes/postprocess.ts";
import type { ModelSource, Precision, QuantizationReport, Weights } from "../artifact/types.ts";
import { CodedError } from "../../core/errors.ts";

/** native: onnxruntime-node (FFI). wasm: onnxruntime-web (WebAssembly only). */
export type Backend = "native" | "wasm";

/** What the runner knows about the model it serves; shown in `/info` and every prediction. */
export interface ModelInfo {
  name: string;
  version: string;
  weights: Weights;
  sha256: string;
  source: ModelSource;
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
export class ModelShapeError extends CodedError {
  constructor(message: string) {
    super("model_shape", message);
  }
}

/** How to start a runner; plain data, so it can be posted to a Worker. */
export interface RunnerOptions {
  /** Default: native. */
  backend?: Backend;
  /** The file to load; for a model held in memory, where it came from (a URL, or memory:…). */
  path: string;
  /** The model itself when it has no file (MODEL_URL, or no writable disk); `path` is then not read. */
  bytes?: Uint8Array;
  name: string;
  weights: Weights;
  sha256: string;
  source: ModelInfo["source"];
  precision: ModelInfo["precision"];
  quantization?: ModelInfo["quantization"];
  /** 0 lets onnxruntime choose. */
  intraOpThreads: number;
  /**
   * Whether idle intra-op threads spin waiting for work (onnxruntime-node's default).
   * Spinning threads take CPU from decoding and HTTP between batches.
   */
  spinning?: boolean;
}

/** A runner whose session lives in this thread. */
export interface LocalRunner extends ModelRunner {
  /** Runs a few inferences before the first request; returns the last one's duration in ms. */
  warmup(iterations?: number): Promise<number>;
}

/** The parts of an onnxruntime session (node or web) that say what the model is. */
export type SessionSignature = Pick<
  InferenceSession,
  "inputNames" | "outputNames" | "inputMetadata" | "outputMetadata"
>;

function checkTensorShape(
  what: string,
  meta: InferenceSession.ValueMetadata | undefined,
  expected: ReadonlyArray<number | null>,
): ReadonlyArray<number | string> {
  if (!meta || !meta.isTensor) throw new ModelShapeError(`Model ${what} is not a tensor`);
  if (meta.type !== "float32") {
    throw new ModelShapeError(`Model ${what} "${meta.name}" is ${meta.type}; float32 is required`);
  }
  const shape = meta.shape;
  const fits = shape.length === expected.length &&
    expected.every((d, i) => d === null || typeof shape[i] !== "number" || shape[i] === d);
  if (!fits) {
    const want = expected.map((d) => d ?? "N").join("x");
    throw new ModelShapeError(
      `Model ${what} "${meta.name}" has shape [${shape.join(",")}]; expected ${want}`,
    );
  }
  return shape;
}

/**
 * Checks the session is an ImageNet classifier (one float32 [N,3,224,224]
 * input, a [N,classes] output) and describes it. Names and shapes are read
 * from the session, not assumed, so any ResNet-50 export loads (the ONNX
 * zoo's calls its input "data", torchvision's "input").
 */
export function describeSession(
  session: SessionSignature,
  options: RunnerOptions,
  runtime: Pick<ModelInfo, "runtime" | "runtimeVersion" | "intraOpThreads">,
): ModelInfo {
  if (session.inputNames.length !== 1 || session.outputNames.length < 1) {
    throw new ModelShapeError(
      `Model must have one input and at least one output; it has ${session.inputNames.length} and ${session.outputNames.length}`,
    );
  }
  const inputShape = checkTensorShape("input", session.inputMetadata[0], [null, 3, CROP_SIZE, CROP_SIZE]);
  const outputShape = checkTensorShape("output", session.outputMetadata[0], [null, null]);
  return {
    name: options.name,
    version: options.sha256.slice(0, 12),
    weights: options.weights,
    sha256: options.sha256,
    source: options.source,
    precision: options.precision,
    ...(options.quantization ? { quantization: options.quantization } : {}),
    path: options.path,
    inputName: session.inputNames[0],
    outputName: session.outputNames[0],
    inputShape,
    outputShape,
    classes: typeof outputShape[1] === "number" ? outputShape[1] : 1000,
    outputsProbabilities: false,
    ...runtime,
  };
}

/** Makes the float32 input tensor of one run, with the runtime's own Tensor class. */
export type TensorFactory = (data: Float32Array, dims: readonly number[]) => Tensor;

/**
 * A runner over one onnxruntime session, onnxruntime-node's or -web's (they
 * share onnxruntime-common's API); each backend adds only how it creates the
 * session. A run feeds `batch` images of `input` as one NCHW float32 tensor and
 * checks the output is `batch` x classes. The input tensor is disposed
 * whatever happens, and the outputs too when they are refused; the returned
 * scores stay the caller's.
 */
export class SessionRunner implements LocalRunner {
  readonly info: ModelInfo;
  readonly #session: Pick<InferenceSession, "run" | "release">;
  readonly #tensor: TensorFactory;

  protected constructor(
    session: Pick<InferenceSession, "run" | "release">,
    tensor: TensorFactory,
    info: ModelInfo,
  ) {
    this.#session = session;
    this.#tensor = tensor;
    this.info = info;
  }

  async run(input: Float32Array, batch: number): Promise<Float32Array> {
    if (input.length < batch * TENSOR_SIZE) throw new RangeError("Input is shorter than the batch it claims");
    const tensor = this.#tensor(input.subarray(0, batch * TENSOR_SIZE), [batch, 3, CROP_SIZE, CROP_SIZE]);
    const { inputName, outputName, classes } = this.info;
    let results: InferenceSession.OnnxValueMapType;
    try {
      results = await this.#session.run({ [inputName]: tensor }, [outputName]);
    } finally {
      tensor.dispose();
    }
    const output = results[outputName];
    if (!output || !(output.data instanceof Float32Array) || output.data.length !== batch * classes) {
      for (const value of Object.values(results)) value.dispose();
      throw new ModelShapeError(`Model output has an unexpected size for batch ${batch}`);
    }
    return output.data;
  }

  warmup(iterations = 2): Promise<number> {
    return warmUp(this, iterations);
  }

  async close(): Promise<void> {
    await this.#session.release();
  }
}

/**
 * Runs `iterations` inferences on a neutral image so allocations, kernel
 * selection and page faults happen before the first request; also decides
 * whether the output is already probabilities. Returns the last run's duration in ms.
 */
export async function warmUp(runner: ModelRunner, iterations = 2): Promise<number> {
  const input = new Float32Array(TENSOR_SIZE);
  let last = 0;
  let output: Float32Array = new Float32Array(0);
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    output = await runner.run(input, 1);
    last = performance.now() - t0;
  }
  runner.info.outputsProbabilities = isProbabilityRow(output);
  return last;
}
