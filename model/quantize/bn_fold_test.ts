import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { captureLogs, testConfig } from "../../tests/support/helpers.ts";
import { foldBatchNorm } from "./bn_fold.ts";
import { loadCalibrationSet } from "./calibration_set.ts";
import {
  DataType,
  decodeModel,
  encodeModel,
  floatTensor,
  ints,
  type onnx,
  opCounts,
  proto,
} from "../artifact/onnx_graph.ts";
import { ensureSynthetic } from "../artifact/resolve.ts";

/** Seeded uniform values in [lo, hi). */
function values(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let a = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    a = (Math.imul(a ^ (a >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return lo + (hi - lo) * (a / 4294967296);
  });
}

/** input [N,3,8,8] -> Conv(bias) -> BN -> Relu -> Conv(no bias) -> BN -> output, with non-trivial BN statistics. */
function convBnModel(): onnx.IModelProto {
  const bn = (name: string, c: number, seed: number): onnx.ITensorProto[] => [
    floatTensor(`${name}.gamma`, [c], values(c, seed, 0.5, 2)),
    floatTensor(`${name}.beta`, [c], values(c, seed + 1)),
    floatTensor(`${name}.mean`, [c], values(c, seed + 2)),
    floatTensor(`${name}.var`, [c], values(c, seed + 3, 0.1, 3)),
  ];
  const bnNode = (name: string, x: string, y: string): onnx.INodeProto => ({
    name,
    opType: "BatchNormalization",
    input: [x, `${name}.gamma`, `${name}.beta`, `${name}.mean`, `${name}.var`],
    output: [y],
    attribute: [{ name: "epsilon", f: 1e-3, type: proto.AttributeProto.AttributeType.FLOAT }],
  });
  const tensorType = (dims: Array<number | string>) => ({
    tensorType: {
      elemType: DataType.FLOAT,
      shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
    },
  });
  return {
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "conv_bn",
      node: [
        {
          name: "c1",
          opType: "Conv",
          input: ["x", "w1", "b1"],
          output: ["c1"],
          attribute: [ints("kernel_shape", [3, 3]), ints("pads", [1, 1, 1, 1])],
        },
        bnNode("bn1", "c1", "n1"),
        { name: "r1", opType: "Relu", input: ["n1"], output: ["r1"] },
        {
          name: "c2",
          opType: "Conv",
          input: ["r1", "w2"],
          output: ["c2"],
          attribute: [ints("kernel_shape", [1, 1])],
        },
        bnNode("bn2", "c2", "y"),
      ],
      initializer: [
        floatTensor("w1", [4, 3, 3, 3], values(108, 1)),
        floatTensor("b1", [4], values(4, 2)),
        floatTensor("w2", [5, 4, 1, 1], values(20, 3)),
        ...bn("bn1", 4, 10),
        ...bn("bn2", 5, 20),
      ],
      input: [{ name: "x", type: tensorType(["N", 3, 8, 8]) }],
      output: [{ name: "y", type: tensorType(["N", 5, 8, 8]) }],
    },
  };
}

async function run(model: Uint8Array, inputs: Float32Array, dims: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: "disabled" });
  try {
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", inputs, dims) });
    return out[session.outputNames[0]].data as Float32Array;
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

Deno.test("BatchNorm folding", async (t) => {
  await captureLogs("info");

  await t.step("folds Conv+BN pairs with non-trivial statistics, with and without a Conv bias", async () => {
    const model = convBnModel();
    const { model: folded, folded: count } = foldBatchNorm(model);
    assert.equal(count, 2);
    assert.equal(opCounts(folded).get("BatchNormalization"), undefined);
    assert.equal(opCounts(folded).get("Conv"), 2);
    const x = values(2 * 3 * 8 * 8, 99, -2, 2);
    const before = await run(encodeModel(model), x, [2, 3, 8, 8]);
    const after = await run(encodeModel(folded), x, [2, 3, 8, 8]);
    assert.ok(maxAbsDiff(before, after) < 1e-4, `max abs diff ${maxAbsDiff(before, after)}`);
    // The BNs matter: dropping them without rewriting the Convs gives another output.
    const dropped = convBnModel();
    dropped.graph!.node = dropped.graph!.node!.map((n) =>
      n.opType === "BatchNormalization"
        ? { name: n.name, opType: "Identity", input: [n.input![0]], output: n.output }
        : n
    );
    assert.ok(maxAbsDiff(before, await run(encodeModel(dropped), x, [2, 3, 8, 8])) > 0.1);
  });

  await t.step("leaves a Conv alone when its output has another reader", () => {
    const model = convBnModel();
    model.graph!.output!.push({ name: "c1", type: { tensorType: { elemType: DataType.FLOAT } } });
    assert.equal(foldBatchNorm(model).folded, 1);
  });

  await t.step("the folded synthetic ResNet-50 matches the original within 1e-4 on real photos", async () => {
    const source = await ensureSynthetic(testConfig());
    const bytes = await Deno.readFile(source.path);
    const { model: folded, folded: count } = foldBatchNorm(decodeModel(bytes));
    assert.equal(count, 53);
    const set = await loadCalibrationSet("./model/quantize/calibration");
    // Whole photos, calibration and held-out alike: 4 images in one batch.
    const photos = [set.calibration[0], set.calibration[2], set.heldOut[0], set.heldOut[10]];
    const batch = new Float32Array(photos.length * photos[0].length);
    photos.forEach((p, i) => batch.set(p, i * p.length));
    const dims = [photos.length, 3, 224, 224];
    const before = await run(bytes, batch, dims);
    const after = await run(encodeModel(folded), batch, dims);
    const diff = maxAbsDiff(before, after);
    assert.ok(diff < 1e-4, `max abs logit difference ${diff}`);
  });
});
