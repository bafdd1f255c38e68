/**
 * Folds each BatchNormalization that directly follows a Conv into that Conv's
 * weights and bias, as every int8 toolchain does before quantizing: at
 * inference BN is a per-channel affine map, so
 *   W'[o] = W[o] * gamma[o] / sqrt(var[o] + eps)
 *   b'[o] = (b[o] - mean[o]) * gamma[o] / sqrt(var[o] + eps) + beta[o]
 * gives the same output with one op fewer, and the int8 weights then carry
 * the BN scale (quantizing the unfolded weights would lose it).
 */
import {
  attribute,
  consumers,
  dimsOf,
  floatTensor,
  floatValues,
  graphOutputNames,
  initializerMap,
  type onnx,
} from "../artifact/onnx_graph.ts";

export interface FoldResult {
  model: onnx.IModelProto;
  /** BatchNormalization nodes removed. */
  folded: number;
}

/** Returns a new model (the input is not changed) with Conv -> BatchNormalization pairs folded. */
export function foldBatchNorm(model: onnx.IModelProto): FoldResult {
  const graph = model.graph!;
  const inits = initializerMap(graph);
  const readers = consumers(graph);
  const outputs = graphOutputNames(graph);
  const producer = new Map<string, onnx.INodeProto>();
  for (const node of graph.node ?? []) for (const o of node.output ?? []) producer.set(o, node);

  const replaced = new Map<string, onnx.ITensorProto>();
  const removed = new Set<onnx.INodeProto>();
  /** Conv nodes rewritten: the new node replaces the old one in place. */
  const rewritten = new Map<onnx.INodeProto, onnx.INodeProto>();

  for (const bn of graph.node ?? []) {
    if (bn.opType !== "BatchNormalization" || (bn.output ?? []).filter(Boolean).length !== 1) continue;
    const [x, scaleName, biasName, meanName, varName] = bn.input ?? [];
    const conv = producer.get(x);
    if (!conv || conv.opType !== "Conv" || rewritten.has(conv)) continue;
    // The Conv's own output must feed only this BN, or folding would change another reader.
    if ((readers.get(x) ?? []).length !== 1 || outputs.has(x)) continue;
    const weight = inits.get(conv.input?.[1] ?? "");
    const params = [scaleName, biasName, meanName, varName].map((n) => inits.get(n));
    if (!weight || params.some((p) => !p)) continue;
    const convBias = conv.input?.[2] ? inits.get(conv.input[2]) : undefined;
    if (conv.input?.[2] && !convBias) continue;

    const [gamma, beta, mean, variance] = params.map((p) => floatValues(p!));
    const eps = attribute(bn, "epsilon")?.f ?? 1e-5;
    const w = floatValues(weight);
    const dims = dimsOf(weight);
    const outC = dims[0];
    const perChannel = w.length / outC;
    const b = convBias ? floatValues(convBias) : new Float32Array(outC);
    const newW = new Float32Array(w.length);
    const newB = new Float32Array(outC);
    for (let o = 0; o < outC; o++) {
      // Float64 arithmetic, then one rounding to float32: the folded model stays within 1e-4.
      const s = gamma[o] / Math.sqrt(variance[o] + eps);
      for (let i = o * perChannel; i < (o + 1) * perChannel; i++) newW[i] = w[i] * s;
      newB[o] = (b[o] - mean[o]) * s + beta[o];
    }
    const wName = `${conv.name || x}.folded_weight`;
    const bName = `${conv.name || x}.folded_bias`;
    replaced.set(wName, floatTensor(wName, dims, newW));
    replaced.set(bName, floatTensor(bName, [outC], newB));
    rewritten.set(conv, { ...conv, input: [conv.input![0], wName, bName], output: [bn.output![0]] });
    removed.add(bn);
  }

  const nodes = (graph.node ?? []).filter((n) => !removed.has(n)).map((n) => rewritten.get(n) ?? n);
  // Initializers nobody reads any more (the unfolded weights, BN parameters) are dropped.
  const used = new Set(nodes.flatMap((n) => n.input ?? []));
  const dropped = new Set((graph.initializer ?? []).map((t) => t.name ?? "").filter((n) => !used.has(n)));
  const initializer = [
    ...(graph.initializer ?? []).filter((t) => !dropped.has(t.name ?? "")),
    ...replaced.values(),
  ];
  // Old exports also list initializers as graph inputs; a dropped one must go from there too.
  const input = (graph.input ?? []).filter((i) => !dropped.has(i.name ?? ""));
  return {
    model: { ...model, graph: { ...graph, node: nodes, initializer, input } },
    folded: removed.size,
  };
}
