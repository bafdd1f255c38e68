/**
 * Small helpers to read and rewrite ONNX models with `onnx-proto`: tensors to
 * and from typed arrays, attributes, who consumes which tensor. Used by the
 * BatchNorm folding and the int8 quantizer, which rewrite graphs in place.
 */
import type { onnx } from "onnx-proto";
import * as onnxModule from "onnx-proto";
import { QUANTIZED_OPS } from "./inspect.ts";

// onnx-proto is CommonJS that assigns module.exports late, so Deno exposes it
// only as the default export.
export const proto = (onnxModule as unknown as { default: typeof onnxModule }).default.onnx;
export type { onnx };

export const DataType = proto.TensorProto.DataType;

/** protobufjs decodes int64 fields as Long objects when the `long` package is present. */
export function num(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === "number" ? v : v.toNumber();
}

export function decodeModel(bytes: Uint8Array): onnx.ModelProto {
  return proto.ModelProto.decode(bytes);
}

export function encodeModel(model: onnx.IModelProto): Uint8Array {
  return proto.ModelProto.encode(model).finish();
}

export function dimsOf(t: onnx.ITensorProto): number[] {
  return (t.dims ?? []).map(num);
}

function elements(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** A copy of `bytes` on its own 4-byte-aligned buffer, so typed arrays can view it. */
function aligned(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy.buffer;
}

/** The values of a FLOAT initializer, whether stored as raw_data or float_data. */
export function floatValues(t: onnx.ITensorProto): Float32Array {
  if (t.dataType !== DataType.FLOAT) throw new Error(`Tensor ${t.name} is not float32`);
  const count = elements(dimsOf(t));
  if (t.rawData && t.rawData.byteLength > 0) {
    if (t.rawData.byteLength !== count * 4) throw new Error(`Tensor ${t.name} has a bad raw_data size`);
    return new Float32Array(aligned(t.rawData));
  }
  const values = Float32Array.from(t.floatData ?? []);
  if (values.length !== count) throw new Error(`Tensor ${t.name} has ${values.length} of ${count} values`);
  return values;
}

function raw(values: ArrayBufferView): Uint8Array {
  // ONNX raw_data is little-endian, as every platform Deno ships on is.
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

export function floatTensor(name: string, dims: number[], values: Float32Array): onnx.ITensorProto {
  return { name, dims, dataType: DataType.FLOAT, rawData: raw(values) };
}

export function int8Tensor(name: string, dims: number[], values: Int8Array): onnx.ITensorProto {
  return { name, dims, dataType: DataType.INT8, rawData: raw(values) };
}

export function uint8Tensor(name: string, dims: number[], values: Uint8Array): onnx.ITensorProto {
  return { name, dims, dataType: DataType.UINT8, rawData: raw(values) };
}

export function int32Tensor(name: string, dims: number[], values: Int32Array): onnx.ITensorProto {
  return { name, dims, dataType: DataType.INT32, rawData: raw(values) };
}

export function ints(name: string, values: number[]): onnx.IAttributeProto {
  return { name, ints: values, type: proto.AttributeProto.AttributeType.INTS };
}

export function int(name: string, value: number): onnx.IAttributeProto {
  return { name, i: value, type: proto.AttributeProto.AttributeType.INT };
}

export function attribute(node: onnx.INodeProto, name: string): onnx.IAttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

/** For each tensor name, the nodes that read it. */
export function consumers(graph: onnx.IGraphProto): Map<string, onnx.INodeProto[]> {
  const map = new Map<string, onnx.INodeProto[]>();
  for (const node of graph.node ?? []) {
    for (const input of node.input ?? []) {
      if (!input) continue;
      let list = map.get(input);
      if (!list) map.set(input, list = []);
      list.push(node);
    }
  }
  return map;
}

export function initializerMap(graph: onnx.IGraphProto): Map<string, onnx.ITensorProto> {
  return new Map((graph.initializer ?? []).map((t) => [t.name ?? "", t]));
}

export function graphOutputNames(graph: onnx.IGraphProto): Set<string> {
  return new Set((graph.output ?? []).map((o) => o.name ?? ""));
}

/** Whether the model is already quantized (QDQ or QOperator form): it is then served as it is. */
export function isQuantized(model: onnx.IModelProto): boolean {
  return (model.graph?.node ?? []).some((n) => QUANTIZED_OPS.has(n.opType ?? ""));
}

/** Counts of each operator type in a graph, e.g. to prove that onnxruntime fused QDQ into QLinearConv. */
export function opCounts(model: onnx.IModelProto): Map<string, number> {
  const counts = new Map<string, number>();
  for (const node of model.graph?.node ?? []) {
    const op = node.opType ?? "";
    counts.set(op, (counts.get(op) ?? 0) + 1);
  }
  return counts;
}

/**
 * A copy of the model whose graph also outputs `names` (float32 tensors of any
 * shape), so one run returns the intermediate activations calibration needs.
 */
export function withExtraOutputs(model: onnx.IModelProto, names: readonly string[]): Uint8Array {
  const existing = graphOutputNames(model.graph!);
  const extra: onnx.IValueInfoProto[] = names.filter((n) => !existing.has(n)).map((name) => ({
    name,
    type: { tensorType: { elemType: DataType.FLOAT } },
  }));
  return encodeModel({
    ...model,
    graph: { ...model.graph, output: [...(model.graph?.output ?? []), ...extra] },
  });
}
