import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { captureLogs, testConfig } from "../../tests/support/helpers.ts";
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import { calibrateRanges, percentileRange } from "./calibrate.ts";
import { loadCalibrationSet } from "./calibration_set.ts";
import { integerConvs, optimizedOpCounts } from "../../tests/support/fusion.ts";
import {
  DataType,
  decodeModel,
  encodeModel,
  isQuantized,
  type onnx,
  opCounts,
} from "../artifact/onnx_graph.ts";
import { activationParams, AlreadyQuantizedError, quantizeModel, quantizeWeights } from "./quantize.ts";
import { measureAgreement } from "./quality_gate.ts";
import { ensureSynthetic } from "../artifact/resolve.ts";

const TMP = "./tests/tmp";

/** input [N,3,224,224] -> Relu -> "r" (a graph output). */
function reluModel(): Uint8Array {
  const type = {
    tensorType: {
      elemType: DataType.FLOAT,
      shape: { dim: [{ dimParam: "N" }, { dimValue: 3 }, { dimValue: 224 }, { dimValue: 224 }] },
    },
  };
  const model: onnx.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "relu",
      node: [{ name: "relu", opType: "Relu", input: ["x"], output: ["r"] }],
      input: [{ name: "x", type }],
      output: [{ name: "r", type }],
    },
  };
  return encodeModel(model);
}

Deno.test("int8 quantizer units", async (t) => {
  await t.step("activation parameters: uint8, zero exactly representable", () => {
    const p = activationParams({ min: -1, max: 3 });
    assert.ok(Math.abs(p.scale - 4 / 255) < 1e-9);
    assert.equal(p.zeroPoint, 64);
    // A Relu output starts at 0: zero point 0, so quantizing clamps negatives as Relu did.
    assert.equal(activationParams({ min: 0, max: 6 }).zeroPoint, 0);
    // A range that excludes 0 is widened to include it.
    assert.equal(activationParams({ min: 2, max: 5 }).zeroPoint, 0);
    assert.ok(Math.abs(activationParams({ min: 2, max: 5 }).scale - 5 / 255) < 1e-9);
    assert.deepEqual(activationParams({ min: 0, max: 0 }), { scale: 1, zeroPoint: 0 });
  });

  await t.step("weights: symmetric int8, one scale per output channel", () => {
    // Channel 0 is large, channel 1 small, channel 2 zero: per-tensor scaling would flatten channel 1.
    const w = Float32Array.from([2, -1, 0.5, 0.25, 0.02, -0.01, 0.005, 0.001, 0, 0, 0, 0]);
    const { q, scales } = quantizeWeights(w, 3);
    assert.ok(Math.abs(scales[0] - 2 / 127) < 1e-7);
    assert.ok(Math.abs(scales[1] - 0.02 / 127) < 1e-9);
    assert.equal(scales[2], 1);
    assert.deepEqual([...q.subarray(0, 2)], [127, -64]);
    assert.equal(q[4], 127);
    for (let i = 0; i < w.length; i++) {
      const s = scales[Math.floor(i / 4)];
      assert.ok(Math.abs(q[i] * s - w[i]) <= s / 2 + 1e-9, `element ${i}`);
      assert.ok(q[i] >= -127 && q[i] <= 127);
    }
  });

  await t.step("percentile range clips rare outliers at bin edges", () => {
    const hist = new Float64Array(100);
    hist.fill(1000, 0, 10); // the bulk: values 0..1 over a 0..10 histogram
    hist[99] = 1; // one outlier near 10
    assert.deepEqual(percentileRange(hist, 0, 10, 99.99), { min: 0, max: 1 });
    assert.deepEqual(percentileRange(hist, 0, 10, 100), { min: 0, max: 10 });
  });

  await t.step("calibration measures min/max, and the percentile method ignores an outlier", async () => {
    const inputs = [0, 1].map((k) =>
      Float32Array.from({ length: TENSOR_SIZE }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5 + k)
    );
    inputs[1][12345] = 1000;
    const minmax = await calibrateRanges(reluModel(), ["r"], inputs, { method: "minmax", intraOpThreads: 1 });
    assert.equal(minmax.get("r")!.min, 0);
    assert.equal(minmax.get("r")!.max, 1000);
    const pct = await calibrateRanges(reluModel(), ["r"], inputs, {
      method: "percentile",
      intraOpThreads: 1,
    });
    assert.equal(pct.get("r")!.min, 0);
    assert.ok(pct.get("r")!.max < 2, `percentile max ${pct.get("r")!.max}`);
  });
});

Deno.test("int8 quantization of the synthetic ResNet-50", async (t) => {
  await captureLogs("info");
  const source = await ensureSynthetic(testConfig());
  const fp32 = await Deno.readFile(source.path);
  const set = await loadCalibrationSet("./model/quantize/calibration");
  const result = await quantizeModel(fp32, set.calibration, { method: "percentile", intraOpThreads: 2 });
  const qdq = decodeModel(result.bytes);

  await t.step("folds every BatchNorm and quantizes every Conv and residual Add", () => {
    assert.deepEqual(result.stats, { foldedBatchNorms: 53, convs: 53, adds: 16, tensors: 71, images: 18 });
    const ops = opCounts(qdq);
    assert.equal(ops.get("BatchNormalization"), undefined);
    // Every Relu follows a Conv or Add and is absorbed by a zero point of 0.
    assert.equal(ops.get("Relu"), undefined);
    assert.equal(ops.get("Conv"), 53);
    assert.equal(ops.get("Add"), 16);
    assert.ok(isQuantized(qdq));
  });

  await t.step("stores int8 per-channel weights and int32 biases", () => {
    const inits = new Map(qdq.graph!.initializer!.map((i) => [i.name, i]));
    const w = inits.get("conv1.folded_weight_quantized")!;
    assert.equal(w.dataType, DataType.INT8);
    assert.equal(inits.get("conv1.folded_weight_scale")!.dims!.length, 1);
    assert.equal(Number(inits.get("conv1.folded_weight_scale")!.dims![0]), 64);
    assert.equal(inits.get("conv1.folded_bias_quantized")!.dataType, DataType.INT32);
    // No fp32 Conv weights are left: only the fc layer's.
    const floatWeights = qdq.graph!.initializer!.filter((i) =>
      i.dataType === DataType.FLOAT && (i.dims ?? []).length > 1
    );
    assert.deepEqual(floatWeights.map((i) => i.name), ["fc.weight"]);
    // A third of the fp32 file: int8 convolutions, the fc layer (8 MB) stays fp32.
    assert.ok(result.bytes.length < fp32.length / 3, `${result.bytes.length} bytes`);
  });

  await t.step("onnxruntime fuses it: 53 QLinearConv and 16 QLinearAdd in the optimized graph", async () => {
    const ops = await optimizedOpCounts(result.bytes, { tmpDir: TMP });
    assert.equal(integerConvs(ops), 53, JSON.stringify([...ops]));
    assert.equal(ops.get("QLinearAdd"), 16);
    assert.equal(ops.get("Conv") ?? 0, 0);
  });

  await t.step("the fusion check fails on a QDQ graph that runs in fp32", async () => {
    // Without graph optimization onnxruntime runs DequantizeLinear -> fp32 Conv: same file, no int8 kernels.
    const ops = await optimizedOpCounts(result.bytes, { level: "disabled", tmpDir: TMP });
    assert.equal(integerConvs(ops), 0);
    assert.equal(ops.get("Conv"), 53);
  });

  await t.step("an already quantized model is refused by the quantizer", async () => {
    await assert.rejects(
      quantizeModel(result.bytes, set.calibration, { method: "minmax" }),
      AlreadyQuantizedError,
    );
  });

  await t.step("int8 agrees with fp32 on held-out photos", async () => {
    const a = await measureAgreement(fp32, result.bytes, set.heldOut);
    assert.equal(a.images, 40);
    assert.ok(a.top1Agreement >= 0.9, `agreement ${a.top1Agreement}`);
    assert.ok(a.meanAbsTop1ConfidenceDelta < 0.01, `delta ${a.meanAbsTop1ConfidenceDelta}`);
  });

  await t.step("int8 runs faster than fp32 in the same process", async () => {
    // Not a performance target (the bench has those): a sanity check that int8 kernels ran at all.
    const time = async (model: Uint8Array) => {
      const s = await ort.InferenceSession.create(model, {
        intraOpNumThreads: 2,
        graphOptimizationLevel: "all",
      });
      const x = new ort.Tensor("float32", new Float32Array(4 * TENSOR_SIZE), [4, 3, 224, 224]);
      await s.run({ [s.inputNames[0]]: x });
      const t0 = performance.now();
      for (let i = 0; i < 3; i++) await s.run({ [s.inputNames[0]]: x });
      await s.release();
      return performance.now() - t0;
    };
    const [f, q] = [await time(fp32), await time(result.bytes)];
    assert.ok(q < f, `int8 ${q} ms, fp32 ${f} ms`);
  });
});
