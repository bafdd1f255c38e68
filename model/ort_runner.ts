/** Runs the classifier through onnxruntime-node (native code, loaded through FFI). */
import * as ort from "onnxruntime-node";
import { CROP_SIZE, TENSOR_SIZE } from "../image/preprocess.ts";
import {
  describeSession,
  type LocalRunner,
  type ModelInfo,
  ModelShapeError,
  type RunnerOptions,
  warmUp,
} from "./runner.ts";

// onnxruntime-node 1.30 starts native telemetry with its environment (at the first session): it
// keeps a device id and an event store under ~/.cache, would upload over HTTPS, all outside Deno's
// sandbox, and prints coloured warnings when it cannot. Off unless the operator says otherwise.
if (Deno.env.get("ORT_DISABLE_TELEMETRY") === undefined) Deno.env.set("ORT_DISABLE_TELEMETRY", "1");

export type OrtRunnerOptions = RunnerOptions;

export class OrtRunner implements LocalRunner {
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
      const sessionOptions: ort.InferenceSession.SessionOptions = {
        graphOptimizationLevel: "all",
        executionMode: "sequential",
        intraOpNumThreads: options.intraOpThreads,
        interOpNumThreads: 1,
        extra: { session: { intra_op: { allow_spinning: options.spinning === false ? "0" : "1" } } },
      };
      session = options.bytes
        ? await ort.InferenceSession.create(options.bytes, sessionOptions)
        : await ort.InferenceSession.create(options.path, sessionOptions);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new ModelShapeError(`Cannot load ONNX model ${options.path}: ${reason}`);
    }
    const info = describeSession(session, options, {
      runtime: "onnxruntime-node",
      runtimeVersion: ort.env.versions.node ?? "unknown",
      intraOpThreads: options.intraOpThreads,
    });
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

  warmup(iterations = 2): Promise<number> {
    return warmUp(this, iterations);
  }

  async close(): Promise<void> {
    await this.#session.release();
  }
}
