/**
 * Proof that onnxruntime runs a quantized graph in int8: the session's
 * optimized graph (written with `optimizedModelFilePath`) must contain
 * QLinearConv (or ConvInteger) nodes. A QDQ graph that onnxruntime could not
 * fuse still loads and runs, silently, as DequantizeLinear -> fp32 Conv.
 */
import * as ort from "onnxruntime-node";
import { decodeModel, opCounts } from "../../model/artifact/onnx_graph.ts";

/** Operator counts of the graph onnxruntime will actually run for `model` at `level`. */
export async function optimizedOpCounts(
  model: string | Uint8Array,
  options: { level?: "disabled" | "basic" | "extended" | "all"; tmpDir?: string } = {},
): Promise<Map<string, number>> {
  const level = options.level ?? "all";
  const path = await Deno.makeTempFile({ dir: options.tmpDir, suffix: ".onnx" });
  try {
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: level,
      optimizedModelFilePath: path,
      intraOpNumThreads: 1,
      // The warning that an "all"-level graph is hardware-specific is expected here.
      logSeverityLevel: 3,
    };
    const session = typeof model === "string"
      ? await ort.InferenceSession.create(model, sessionOptions)
      : await ort.InferenceSession.create(model, sessionOptions);
    await session.release();
    return opCounts(decodeModel(await Deno.readFile(path)));
  } finally {
    await Deno.remove(path).catch(() => {});
  }
}

/** Integer convolutions in an optimized graph: 0 means the model runs in fp32 whatever its file says. */
export function integerConvs(counts: ReadonlyMap<string, number>): number {
  return (counts.get("QLinearConv") ?? 0) + (counts.get("ConvInteger") ?? 0);
}
