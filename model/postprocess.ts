/** Turns a model's output row into ranked classes. Pure functions. */

export interface ClassScore {
  class_id: number;
  class_name: string;
  confidence: number;
}

/** Numerically stable softmax of `row` into `out` (which may be `row`). */
export function softmaxInto(
  row: Float32Array,
  out: Float32Array = new Float32Array(row.length),
): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += out[i] = Math.exp(row[i] - max);
  for (let i = 0; i < row.length; i++) out[i] /= sum;
  return out;
}

/**
 * Whether a row already holds probabilities (non-negative, summing to 1), so
 * softmax is applied only to logits. Models differ: torchvision and the ONNX
 * zoo export logits, some converted models end in a Softmax node.
 */
export function isProbabilityRow(row: Float32Array, tolerance = 1e-3): boolean {
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    if (!(row[i] >= 0 && row[i] <= 1)) return false;
    sum += row[i];
  }
  return Math.abs(sum - 1) <= tolerance;
}

/**
 * The `k` highest scores, best first; ties keep the lower class id first. One
 * pass with a small sorted buffer: k is at most 20 and rows have 1000 entries.
 */
export function topK(probabilities: Float32Array, k: number, labels: readonly string[]): ClassScore[] {
  const n = Math.min(k, probabilities.length);
  const ids: number[] = [];
  for (let i = 0; i < probabilities.length; i++) {
    const p = probabilities[i];
    if (ids.length === n && p <= probabilities[ids[n - 1]]) continue;
    let j = ids.length === n ? n - 1 : ids.length;
    while (j > 0 && probabilities[ids[j - 1]] < p) {
      ids[j] = ids[j - 1];
      j--;
    }
    ids[j] = i;
  }
  return ids.map((id) => ({
    class_id: id,
    class_name: labels[id] ?? `class_${id}`,
    confidence: probabilities[id],
  }));
}
