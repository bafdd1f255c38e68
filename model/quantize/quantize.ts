/**
 * Static int8 quantization of an fp32 ONNX classifier, written in QDQ form
 * (QuantizeLinear/DequantizeLinear pairs around each quantized operator)
 * that onnxruntime fuses into QLinearConv and QLinearAdd kernels:
 *
 * 1. BatchNorm is folded into the Conv before it (bn_fold.ts).
 * 2. Conv weights become int8, symmetric, one scale per output channel
 *    (zero point 0, range -127..127); Conv biases become int32 with scale
 *    input_scale x weight_scale[o], as the QLinearConv kernel expects.
 * 3. Activations (the inputs and outputs of every Conv and Add) become uint8
 *    with a per-tensor scale and zero point from the calibrated range.
 *    A Relu that is the only reader of a Conv or Add output is removed: its
 *    output range starts at 0, so the uint8 zero point is 0 and quantizing
 *    clamps negatives exactly as Relu did. MaxPool keeps its input's scale,
 *    so onnxruntime runs it on uint8 directly.
 *
 * Everything else (global pooling, the final Gemm, softmax if any) stays fp32.
 */
import { foldBatchNorm } from "./bn_fold.ts";
import type { CalibrationMethod } from "../artifact/types.ts";
import { calibrateRanges, type Range } from "./calibrate.ts";
import {
  consumers,
  DataType,
  decodeModel,
  dimsOf,
  encodeModel,
  floatTensor,
  floatValues,
  graphOutputNames,
  initializerMap,
  int,
  int32Tensor,
  int8Tensor,
  isQuantized,
  type onnx,
  uint8Tensor,
  withExtraOutputs,
} from "../artifact/onnx_graph.ts";
import { CodedError } from "../../core/errors.ts";

/** Which nodes get quantized and which tensors need a calibrated range. */
export interface QuantizationPlan {
  /** Conv and Add nodes that will run as QLinearConv / QLinearAdd. */
  nodes: Set<onnx.INodeProto>;
  /** A quantized node whose only reader is a Relu -> that Relu (removed; the node writes its output). */
  fusedRelu: Map<onnx.INodeProto, onnx.INodeProto>;
  /** Activation tensors to quantize, in graph order; their ranges come from calibration. */
  tensors: string[];
  /** MaxPool output -> its input: quantized with the input's scale and zero point. */
  passthrough: Map<string, string>;
}

/** Decides what to quantize in an fp32 graph (BatchNorm already folded). */
export function planQuantization(model: onnx.IModelProto): QuantizationPlan {
  const graph = model.graph!;
  const inits = initializerMap(graph);
  const readers = consumers(graph);
  const outputs = graphOutputNames(graph);
  const nodes = new Set<onnx.INodeProto>();
  const fusedRelu = new Map<onnx.INodeProto, onnx.INodeProto>();
  const tensors: string[] = [];
  const seen = new Set<string>();
  const add = (t: string) => {
    if (!seen.has(t)) seen.add(t), tensors.push(t);
  };
  const isFloatInit = (name: string | undefined) => inits.get(name ?? "")?.dataType === DataType.FLOAT;

  for (const node of graph.node ?? []) {
    const inputs = node.input ?? [];
    let activations: string[];
    if (node.opType === "Conv") {
      // Only Convs with constant float weights (and bias) can be quantized ahead of time.
      if (!isFloatInit(inputs[1]) || (inputs[2] && !isFloatInit(inputs[2]))) continue;
      activations = [inputs[0]];
    } else if (node.opType === "Add") {
      // A residual Add of two activations; an Add of a constant is left in fp32.
      if (inputs.length !== 2 || inputs.some((i) => inits.has(i))) continue;
      activations = inputs;
    } else continue;
    nodes.add(node);
    for (const a of activations) add(a);
    const out = node.output![0];
    const only = readers.get(out) ?? [];
    if (only.length === 1 && only[0].opType === "Relu" && !outputs.has(out)) {
      fusedRelu.set(node, only[0]);
      add(only[0].output![0]);
    } else add(out);
  }
  const passthrough = new Map<string, string>();
  for (const node of graph.node ?? []) {
    const x = node.input?.[0] ?? "";
    if (node.opType === "MaxPool" && seen.has(x) && (node.output ?? []).length === 1) {
      passthrough.set(node.output![0], x);
    }
  }
  return { nodes, fusedRelu, tensors, passthrough };
}

export interface QuantParams {
  scale: number;
  zeroPoint: number;
}

/** uint8 asymmetric parameters for a range; the range is widened to include 0 so 0 is exact. */
export function activationParams({ min, max }: Range): QuantParams {
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

/** int8 symmetric per-output-channel quantization of a weight tensor laid out [O, ...]. */
export function quantizeWeights(
  w: Float32Array,
  outChannels: number,
): { q: Int8Array; scales: Float32Array } {
  const per = w.length / outChannels;
  const q = new Int8Array(w.length);
  const scales = new Float32Array(outChannels);
  for (let o = 0; o < outChannels; o++) {
    let absMax = 0;
    for (let i = o * per; i < (o + 1) * per; i++) absMax = Math.max(absMax, Math.abs(w[i]));
    // An all-zero channel still needs a positive scale.
    const scale = absMax > 0 ? absMax / 127 : 1;
    scales[o] = scale;
    for (let i = o * per; i < (o + 1) * per; i++) {
      q[i] = Math.max(-127, Math.min(127, Math.round(w[i] / scales[o])));
    }
  }
  return { q, scales };
}

/**
 * Writes the QDQ model: `ranges` must hold a range for every tensor of the plan.
 * The input model (fp32, BatchNorm folded) is not changed.
 */
export function emitQdq(
  model: onnx.IModelProto,
  plan: QuantizationPlan,
  ranges: ReadonlyMap<string, Range>,
): onnx.IModelProto {
  const graph = model.graph!;
  const inits = initializerMap(graph);
  const initializer: onnx.ITensorProto[] = [];
  const head: onnx.INodeProto[] = [];
  const params = new Map<string, QuantParams>();
  for (const t of plan.tensors) {
    const range = ranges.get(t);
    if (!range) throw new Error(`No calibrated range for tensor ${t}`);
    params.set(t, activationParams(range));
  }
  for (const [out, x] of plan.passthrough) params.set(out, params.get(x)!);

  const dq = (t: string) => `${t}_DequantizeLinear_Output`;
  /** Q then DQ of activation `t`, with its scale and zero point as scalar initializers. */
  const qdq = (t: string): onnx.INodeProto[] => {
    const p = params.get(t)!;
    const scale = `${t}_scale`, zp = `${t}_zero_point`, q = `${t}_QuantizeLinear_Output`;
    initializer.push(floatTensor(scale, [], Float32Array.of(p.scale)));
    initializer.push(uint8Tensor(zp, [], Uint8Array.of(p.zeroPoint)));
    return [
      { name: `${t}_QuantizeLinear`, opType: "QuantizeLinear", input: [t, scale, zp], output: [q] },
      { name: `${t}_DequantizeLinear`, opType: "DequantizeLinear", input: [q, scale, zp], output: [dq(t)] },
    ];
  };
  /** A per-channel DequantizeLinear over a quantized constant. */
  const constantDq = (
    name: string,
    tensor: onnx.ITensorProto,
    scales: Float32Array,
    zeroPoints: onnx.ITensorProto,
  ) => {
    initializer.push(tensor, floatTensor(`${name}_scale`, [scales.length], scales), zeroPoints);
    head.push({
      name: `${name}_DequantizeLinear`,
      opType: "DequantizeLinear",
      input: [tensor.name!, `${name}_scale`, zeroPoints.name!],
      output: [`${name}_dequantized`],
      attribute: [int("axis", 0)],
    });
    return `${name}_dequantized`;
  };

  const removedRelu = new Set(plan.fusedRelu.values());
  const quantized = new Set(params.keys());
  const body: onnx.INodeProto[] = [];
  const replacedInits = new Set<string>();
  for (const input of graph.input ?? []) if (quantized.has(input.name ?? "")) head.push(...qdq(input.name!));
  for (const node of graph.node ?? []) {
    if (removedRelu.has(node)) continue;
    // Copies: the readers are rewired below, and the input model must not change.
    const relu = plan.fusedRelu.get(node);
    const out: onnx.INodeProto = {
      ...node,
      input: [...(node.input ?? [])],
      output: relu ? [relu.output![0]] : [...(node.output ?? [])],
    };
    if (plan.nodes.has(node)) {
      if (node.opType === "Conv") {
        const wName = node.input![1];
        const weight = inits.get(wName)!;
        const dims = dimsOf(weight);
        const { q, scales } = quantizeWeights(floatValues(weight), dims[0]);
        const zero = int8Tensor(`${wName}_zero_point`, [dims[0]], new Int8Array(dims[0]));
        out.input![1] = constantDq(wName, int8Tensor(`${wName}_quantized`, dims, q), scales, zero);
        replacedInits.add(wName);
        const bName = node.input![2];
        if (bName) {
          const b = floatValues(inits.get(bName)!);
          const inScale = params.get(node.input![0])!.scale;
          const bScales = scales.map((s) => s * inScale);
          const bq = Int32Array.from(
            b,
            (v, o) => Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.round(v / bScales[o]))),
          );
          const bZero = int32Tensor(`${bName}_zero_point`, [b.length], new Int32Array(b.length));
          out.input![2] = constantDq(
            bName,
            int32Tensor(`${bName}_quantized`, [b.length], bq),
            bScales,
            bZero,
          );
          replacedInits.add(bName);
        }
      }
    }
    body.push(out);
    for (const o of out.output ?? []) if (quantized.has(o)) body.push(...qdq(o));
  }
  // Every reader of a quantized tensor reads its dequantized copy, except the QuantizeLinear itself.
  for (const node of [...head, ...body]) {
    if (node.opType === "QuantizeLinear") continue;
    node.input = (node.input ?? []).map((i) => (quantized.has(i) ? dq(i) : i));
  }
  const stillRead = new Set([...head, ...body].flatMap((n) => n.input ?? []));
  const kept = (graph.initializer ?? []).filter((t) =>
    !replacedInits.has(t.name ?? "") || stillRead.has(t.name!)
  );
  return {
    ...model,
    producerName: "inference-gateway",
    producerVersion: `${model.producerVersion ?? ""}+int8-qdq`.replace(/^\+/, ""),
    graph: { ...graph, node: [...head, ...body], initializer: [...kept, ...initializer] },
    metadataProps: [...(model.metadataProps ?? []), { key: "precision", value: "int8" }],
  };
}

export interface QuantizeOptions {
  method: CalibrationMethod;
  intraOpThreads?: number;
}

export interface QuantizeResult {
  bytes: Uint8Array;
  stats: { foldedBatchNorms: number; convs: number; adds: number; tensors: number; images: number };
}

export class AlreadyQuantizedError extends CodedError {
  constructor() {
    super("already_quantized", "The model is already quantized");
  }
}

/** fp32 ONNX bytes -> int8 QDQ ONNX bytes, calibrated on `calibration` (3x224x224 tensors). */
export async function quantizeModel(
  fp32: Uint8Array,
  calibration: readonly Float32Array[],
  options: QuantizeOptions,
): Promise<QuantizeResult> {
  const source = decodeModel(fp32);
  if (isQuantized(source)) throw new AlreadyQuantizedError();
  const { model: folded, folded: foldedBatchNorms } = foldBatchNorm(source);
  const plan = planQuantization(folded);
  const ranges = await calibrateRanges(withExtraOutputs(folded, plan.tensors), plan.tensors, calibration, {
    method: options.method,
    intraOpThreads: options.intraOpThreads,
  });
  const qdq = emitQdq(folded, plan, ranges);
  const ops = [...plan.nodes].map((n) => n.opType);
  return {
    bytes: encodeModel(qdq),
    stats: {
      foldedBatchNorms,
      convs: ops.filter((o) => o === "Conv").length,
      adds: ops.filter((o) => o === "Add").length,
      tensors: plan.tensors.length,
      images: calibration.length,
    },
  };
}
