/**
 * Activation ranges for int8 quantization, measured by running the fp32
 * model on calibration images with every tensor of interest added as a graph
 * output, so one onnxruntime run returns them all.
 *
 * Two methods:
 * - `minmax`: the smallest and largest value seen. Nothing is clipped, so a
 *   single outlier stretches the range and coarsens every other value.
 * - `percentile` (the default): the 0.001st and 99.999th percentiles of the
 *   values seen (from a 4096-bin histogram over the min/max range). The rare
 *   outliers are clipped and the bulk of the distribution gets finer steps.
 *   docs/performance.md has the held-out agreement of both on this model.
 */
import * as ort from "onnxruntime-node";
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import type { CalibrationMethod } from "../artifact/types.ts";

/** The percentile kept at each end by the `percentile` method. */
export const PERCENTILE = 99.999;
const BINS = 4096;

export interface Range {
  min: number;
  max: number;
}

export interface CalibrationOptions {
  method: CalibrationMethod;
  intraOpThreads?: number;
}

/** A session over `modelBytes` (which must output `names`), run on each 3x224x224 input. */
async function* activations(
  modelBytes: Uint8Array,
  names: readonly string[],
  inputs: readonly Float32Array[],
  intraOpThreads: number,
): AsyncGenerator<Map<string, Float32Array>> {
  const session = await ort.InferenceSession.create(modelBytes, {
    graphOptimizationLevel: "basic",
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
  });
  try {
    const inputName = session.inputNames[0];
    for (const data of inputs) {
      if (data.length !== TENSOR_SIZE) throw new RangeError("A calibration input is not one 3x224x224 image");
      const tensor = new ort.Tensor("float32", data, [1, 3, 224, 224]);
      const out = await session.run({ [inputName]: tensor }, [...names]);
      const values = new Map<string, Float32Array>();
      for (const name of names) {
        const t = out[name];
        if (!t || !(t.data instanceof Float32Array)) {
          throw new Error(`Calibration run did not return ${name}`);
        }
        values.set(name, t.data);
      }
      yield values;
      for (const t of Object.values(out)) t.dispose();
    }
  } finally {
    await session.release();
  }
}

function minMax(values: Float32Array, range: Range): void {
  let lo = range.min, hi = range.max;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  range.min = lo;
  range.max = hi;
}

/**
 * Measures the range of each tensor in `names` over `inputs`. `modelBytes` is
 * an fp32 model whose graph already outputs those tensors.
 */
export async function calibrateRanges(
  modelBytes: Uint8Array,
  names: readonly string[],
  inputs: readonly Float32Array[],
  options: CalibrationOptions,
): Promise<Map<string, Range>> {
  if (inputs.length === 0) throw new Error("Calibration needs at least one image");
  const threads = options.intraOpThreads ?? 0;
  const ranges = new Map<string, Range>(names.map((n) => [n, { min: Infinity, max: -Infinity }]));
  for await (const batch of activations(modelBytes, names, inputs, threads)) {
    for (const [name, values] of batch) minMax(values, ranges.get(name)!);
  }
  if (options.method === "minmax") return ranges;

  // Second pass: a histogram over each tensor's min/max range, then its percentiles.
  const histograms = new Map<string, Float64Array>(names.map((n) => [n, new Float64Array(BINS)]));
  for await (const batch of activations(modelBytes, names, inputs, threads)) {
    for (const [name, values] of batch) {
      const { min, max } = ranges.get(name)!;
      const hist = histograms.get(name)!;
      const width = (max - min) / BINS || 1;
      for (let i = 0; i < values.length; i++) {
        const bin = Math.floor((values[i] - min) / width);
        hist[bin >= BINS ? BINS - 1 : bin]++;
      }
    }
  }
  const clipped = new Map<string, Range>();
  for (const name of names) {
    const { min, max } = ranges.get(name)!;
    const hist = histograms.get(name)!;
    clipped.set(name, percentileRange(hist, min, max, PERCENTILE));
  }
  return clipped;
}

/** The [100 - p, p] percentile range of a histogram over [min, max] (bin edges, so never inside a bin). */
export function percentileRange(hist: Float64Array, min: number, max: number, p: number): Range {
  const total = hist.reduce((a, b) => a + b, 0);
  const width = (max - min) / hist.length;
  const tail = total * (1 - p / 100);
  let below = 0;
  let lo = 0;
  while (lo < hist.length - 1 && below + hist[lo] <= tail) below += hist[lo++];
  let above = 0;
  let hi = hist.length - 1;
  while (hi > lo && above + hist[hi] <= tail) above += hist[hi--];
  return { min: min + lo * width, max: min + (hi + 1) * width };
}
