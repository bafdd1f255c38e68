/** Runs the classifier through onnxruntime-node (native code, loaded through FFI). */
import * as ort from "onnxruntime-node";
import { describeSession, ModelShapeError, type RunnerOptions, SessionRunner } from "./runner.ts";
import { errorMessage } from "../../core/errors.ts";

const tensor = (data: Float32Array, dims: readonly number[]) => new ort.Tensor("float32", data, dims);

// onnxruntime-node 1.30 starts native telemetry with its environment (at the first session): it
// keeps a device id and an event store under ~/.cache, would upload over HTTPS, all outside Deno's
// sandbox, and prints coloured warnings when it cannot. Off unless the operator says otherwise.
if (Deno.env.get("ORT_DISABLE_TELEMETRY") === undefined) Deno.env.set("ORT_DISABLE_TELEMETRY", "1");

export type OrtRunnerOptions = RunnerOptions;

export class OrtRunner extends SessionRunner {
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
      const reason = errorMessage(err);
      throw new ModelShapeError(`Cannot load ONNX model ${options.path}: ${reason}`);
    }
    const info = describeSession(session, options, {
      runtime: "onnxruntime-node",
      runtimeVersion: ort.env.versions.node ?? "unknown",
      intraOpThreads: options.intraOpThreads,
    });
    return new OrtRunner(session, tensor, info);
  }
}
