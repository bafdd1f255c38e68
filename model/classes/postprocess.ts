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

/** Indices of the `k` highest values of `row`, best first; ties keep the lower index first. */
export function topIndices(row: Float32Array, k: number): number[] {
  const n = Math.min(k, row.length);
  const ids: number[] = [];
  // One pass with a small sorted buffer: k is at most 1000 and usually 5.
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (ids.length === n && !(v > row[ids[n - 1]])) continue;
    let j = ids.length === n ? n - 1 : ids.length;
    while (j > 0 && row[ids[j - 1]] < v) {
      ids[j] = ids[j - 1];
      j--;
    }
    ids[j] = i;
  }
  return ids;
}

/**
 * The `k` best classes of one output row, best first. Ranked on the row
 * itself, in its own type, as Triton's classification extension says ("the
 * n highest-valued elements ... compared using the output tensor's data
 * type"): ranked by softmax instead, every logit more than about 104 below
 * the largest underflows to 0 and the ties among them fall to class order.
 * Confidences are the softmax of the row (or the row itself when the model
 * already ends in a softmax), computed only for the classes reported.
 */
export function rankClasses(
  row: Float32Array,
  k: number,
  labels: readonly string[],
  rowIsProbabilities = false,
): ClassScore[] {
  const ids = topIndices(row, k);
  let confidence = (id: number) => row[id];
  if (!rowIsProbabilities && ids.length > 0) {
    const max = row[ids[0]];
    let sum = 0;
    for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
    confidence = (id) => Math.exp(row[id] - max) / sum;
  }
  return ids.map((id) => ({
    class_id: id,
    class_name: labels[id] ?? `class_${id}`,
    confidence: confidence(id),
  }));
}
