/**
 * Runs the classifier through onnxruntime-node. Input and output names and
 * shapes are read from the session, not assumed, so any ImageNet ResNet-50
 * export loads (the ONNX zoo's calls its input "data", torchvision's "input").
 */
import * as ort from "onnxruntime-node";
import { CROP_SIZE, TENSOR_SIZE } from "../image/preprocess.ts";
import { isProbabilityRow } from "./postprocess.ts";
import { type ModelInfo, type ModelRunner, ModelShapeError, type Weights } from "./runner.ts";

// onnxruntime-node 1.30 starts native telemetry with its environment (at the first session): it
// keeps a device id and an event store under ~/.cache, would upload over HTTPS, all outside Deno's
// sandbox, and prints coloured warnings when it cannot. Off unless the operator says otherwise.
if (Deno.env.get("ORT_DISABLE_TELEMETRY") === undefined) Deno.env.set("ORT_DISABLE_TELEMETRY", "1");

export interface OrtRunnerOptions {
  path: string;
  name: string;
  weights: Weights;
  sha256: string;
  source: ModelInfo["source"];
  precision: ModelInfo["precision"];
  quantization?: ModelInfo["quantization"];
  /** 0 lets onnxruntime choose (one thread per physical core). */
  intraOpThreads: number;
  /**
   * Whether idle intra-op threads spin waiting for work (onnxruntime's default).
   * Spinning threads take CPU from decoding and HTTP between batches.
   */
  spinning?: boolean;
}

function checkShape(
  what: string,
  meta: ort.InferenceSession.ValueMetadata | undefined,
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

export class OrtRunner implements ModelRunner {
  readonly info: ModelInfo;
  readonly #session: ort.InferenceSession;

  private constructor(session: ort.InferenceSession, info: ModelInfo) {
    this.#session = session;
    this.info = info;
  }

  /** Loads the model, checks it is an image classifier, and decides whether its output needs softmax. */
  static async create(options: OrtRunnerOptions): Promise<OrtRunner> {
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(options.path, {
        graphOptimizationLevel: "all",
        executionMode: "sequential",
        intraOpNumThreads: options.intraOpThreads,
        interOpNumThreads: 1,
        extra: { session: { intra_op: { allow_spinning: options.spinning === false ? "0" : "1" } } },
      });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new ModelShapeError(`Cannot load ONNX model ${options.path}: ${reason}`);
    }
    if (session.inputNames.length !== 1 || session.outputNames.length < 1) {
      throw new ModelShapeError(
        `Model must have one input and at least one output; it has ${session.inputNames.length} and ${session.outputNames.length}`,
      );
    }
    const inputShape = checkShape("input", session.inputMetadata[0], [null, 3, CROP_SIZE, CROP_SIZE]);
    const outputShape = checkShape("output", session.outputMetadata[0], [null, null]);
    const classes = typeof outputShape[1] === "number" ? outputShape[1] : 1000;
    const info: ModelInfo = {
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
      classes,
      outputsProbabilities: false,
      runtime: "onnxruntime-node",
      runtimeVersion: ort.env.versions.node ?? "unknown",
      intraOpThreads: options.intraOpThreads,
    };
    return new OrtRunner(session, info);
  }

  async run(input: Float32Array, batch: number): Promise<Float32Array> {
    if (input.length < batch * TENSOR_SIZE) throw new RangeError("Input is shorter than the batch it claims");
    const tensor = new ort.Tensor("float32", input.subarray(0, batch * TENSOR_SIZE), [
      batch,
      3,
      CROP_SIZE,
      CROP_SIZE,
    ]);
    const results = await this.#session.run({ [this.info.inputName]: tensor }, [this.info.outputName]);
    const output = results[this.info.outputName];
    if (
      !output || !(output.data instanceof Float32Array) || output.data.length !== batch * this.info.classes
    ) {
      throw new ModelShapeError(`Model output has an unexpected size for batch ${batch}`);
    }
    tensor.dispose();
    return output.data;
  }

  /**
   * Runs `iterations` inferences on a neutral image so allocations, kernel
   * selection and page faults happen before the first request; also decides
   * whether the output is already probabilities. Returns the last run's duration in ms.
   */
  async warmup(iterations = 2): Promise<number> {
    const input = new Float32Array(TENSOR_SIZE);
    let last = 0;
    let output: Float32Array = new Float32Array(0);
    for (let i = 0; i < iterations; i++) {
      const t0 = performance.now();
      output = await this.run(input, 1);
      last = performance.now() - t0;
    }
    this.info.outputsProbabilities = isProbabilityRow(output);
    return last;
  }

  async close(): Promise<void> {
    await this.#session.release();
  }
}
