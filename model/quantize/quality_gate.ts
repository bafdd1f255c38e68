/**
 * How far an int8 model strays from its fp32 original, measured on photos
 * held out of calibration:
 * - top-1 agreement: the share of images whose int8 top-1 class is the fp32 top-1 class;
 * - mean |delta top-1 confidence|: for each image, how much the probability
 *   of the fp32 top-1 class moved (fp32 versus int8), averaged.
 * Below the minimum agreement, int8 is refused and fp32 is served.
 *
 * With synthetic (random) weights these figures describe the quantizer (how
 * much int8 arithmetic changes this network's output), not ImageNet accuracy.
 */
import * as ort from "onnxruntime-node";
import { CROP_SIZE, TENSOR_SIZE } from "../../image/preprocess.ts";
import { isProbabilityRow, softmaxInto } from "../classes/postprocess.ts";

export interface Agreement {
  /** Share of held-out images whose top-1 class is the same in both precisions (0 to 1). */
  top1Agreement: number;
  /** Mean absolute change of the fp32 top-1 class's probability (0 to 1). */
  meanAbsTop1ConfidenceDelta: number;
  images: number;
}

const BATCH = 4;

async function scores(path: string | Uint8Array, inputs: readonly Float32Array[]): Promise<Float32Array[]> {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: "all",
    intraOpNumThreads: 0,
    interOpNumThreads: 1,
  };
  const session = typeof path === "string"
    ? await ort.InferenceSession.create(path, options)
    : await ort.InferenceSession.create(path, options);
  try {
    const rows: Float32Array[] = [];
    const inputName = session.inputNames[0];
    const outputName = session.outputNames[0];
    for (let i = 0; i < inputs.length; i += BATCH) {
      const n = Math.min(BATCH, inputs.length - i);
      const batch = new Float32Array(n * TENSOR_SIZE);
      for (let j = 0; j < n; j++) batch.set(inputs[i + j], j * TENSOR_SIZE);
      const out = await session.run(
        { [inputName]: new ort.Tensor("float32", batch, [n, 3, CROP_SIZE, CROP_SIZE]) },
        [outputName],
      );
      const data = out[outputName].data as Float32Array;
      const classes = data.length / n;
      for (let j = 0; j < n; j++) {
        const row = data.slice(j * classes, (j + 1) * classes);
        rows.push(isProbabilityRow(row) ? row : softmaxInto(row));
      }
    }
    return rows;
  } finally {
    await session.release();
  }
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Compares the two models' predictions on `inputs`, each model given as a path or its bytes. */
export async function measureAgreement(
  fp32: string | Uint8Array,
  int8: string | Uint8Array,
  inputs: readonly Float32Array[],
): Promise<Agreement> {
  if (inputs.length === 0) throw new Error("The quality gate needs at least one held-out image");
  const reference = await scores(fp32, inputs);
  const candidate = await scores(int8, inputs);
  let agree = 0;
  let delta = 0;
  for (let i = 0; i < inputs.length; i++) {
    const top = argmax(reference[i]);
    if (argmax(candidate[i]) === top) agree++;
    delta += Math.abs(reference[i][top] - candidate[i][top]);
  }
  return {
    top1Agreement: agree / inputs.length,
    meanAbsTop1ConfidenceDelta: delta / inputs.length,
    images: inputs.length,
  };
}
