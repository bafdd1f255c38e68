/**
 * Postprocessing against references: softmax against the float64 formula on
 * any row (logits of any sign and size, including ones that overflow a naive
 * exp), rankClasses against a stable full sort and the same formula,
 * isProbabilityRow at its tolerance.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { isProbabilityRow, rankClasses, softmaxInto } from "./postprocess.ts";

/** softmax in float64: exp(x_i - max) / sum_j exp(x_j - max). */
function reference(row: Float32Array): Float64Array {
  const max = Math.max(...row);
  const e = Float64Array.from(row, (x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** Within two float32 rounding steps of the float64 value (the result is stored in float32 twice). */
function close(got: number, want: number): boolean {
  return Math.abs(got - want) <= 2 * 2 ** -24 * Math.abs(want) + 1e-45;
}

const logits = fc.float32Array({
  minLength: 1,
  maxLength: 64,
  noNaN: true,
  noDefaultInfinity: true,
  min: -1e4,
  max: 1e4,
});

Deno.test("softmax equals the float64 formula on any row", () => {
  fc.assert(
    fc.property(logits, (row) => {
      const want = reference(row);
      const got = softmaxInto(row);
      for (let i = 0; i < row.length; i++) {
        if (!close(got[i], want[i])) throw new Error(`p[${i}] = ${got[i]}, the formula ${want[i]}`);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("softmax: exact values on known rows", () => {
  // [0, ln 2, ln 3]: exp gives 1, 2, 3 -> 1/6, 2/6, 3/6.
  const p = softmaxInto(Float32Array.of(0, Math.log(2), Math.log(3)));
  assert.ok(close(p[0], 1 / 6) && close(p[1], 2 / 6) && close(p[2], 3 / 6), String(p));
  // Shifting every logit changes nothing, even past exp's float64 range.
  const shifted = softmaxInto(Float32Array.of(1000, 1000 + Math.log(2), 1000 + Math.log(3)));
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(shifted[i] - p[i]) < 1e-4, String(shifted));
  // Equal logits are uniform; one logit is certainty.
  assert.deepEqual([...softmaxInto(new Float32Array(4).fill(-3))], [0.25, 0.25, 0.25, 0.25]);
  assert.deepEqual([...softmaxInto(Float32Array.of(-50))], [1]);
  // In place: `out` may be the row itself.
  const row = Float32Array.of(1, 2, 3);
  assert.equal(softmaxInto(row, row), row);
  assert.ok(close(row[2], reference(Float32Array.of(1, 2, 3))[2]));
});

Deno.test("rankClasses equals a stable full sort for any row and k, with softmax confidences", () => {
  fc.assert(
    fc.property(
      // Few distinct values, so ties are common.
      fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 1, max: 45 }),
      (values, k) => {
        const row = Float32Array.from(values, (v) => v / 8);
        const labels = values.map((_, i) => `c${i}`);
        const expected = [...row.keys()].sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
        const got = rankClasses(row, k, labels, true);
        assert.deepEqual(got.map((c) => c.class_id), expected);
        assert.deepEqual(got.map((c) => c.class_name), expected.map((i) => `c${i}`));
        assert.deepEqual(got.map((c) => c.confidence), expected.map((i) => row[i]));
        // As logits: the same ranking, each confidence the float64 softmax of the row.
        const p = reference(row);
        const asLogits = rankClasses(row, k, labels);
        assert.deepEqual(asLogits.map((c) => c.class_id), expected);
        for (const c of asLogits) {
          assert.ok(Math.abs(c.confidence - p[c.class_id]) <= 1e-12, `${c.confidence}`);
        }
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("rankClasses names classes beyond the labels by number", () => {
  assert.deepEqual(rankClasses(Float32Array.of(0.1, 0.9), 1, ["a"], true), [
    { class_id: 1, class_name: "class_1", confidence: Math.fround(0.9) },
  ]);
});

Deno.test("isProbabilityRow: sums within the tolerance, and each value in [0, 1]", () => {
  const row = (...v: number[]) => Float64Array.from(v) as unknown as Float32Array;
  assert.equal(isProbabilityRow(row(0.5, 0.5)), true);
  assert.equal(isProbabilityRow(row(0.5, 0.5009)), true, "just inside 1e-3");
  assert.equal(isProbabilityRow(row(0.5, 0.4991)), true, "just inside, below");
  assert.equal(isProbabilityRow(row(0.5, 0.5011)), false, "just outside");
  assert.equal(isProbabilityRow(row(0.5, 0.4989)), false, "just outside, below");
  assert.equal(isProbabilityRow(row(1, 0)), true, "0 and 1 are probabilities");
  assert.equal(isProbabilityRow(row(1.0001, -0.0001)), false, "values outside [0, 1] are logits");
  assert.equal(isProbabilityRow(row(NaN, 1)), false);
  assert.equal(isProbabilityRow(row(0.6, 0.6), 0.25), true, "the tolerance is the caller's");
});
