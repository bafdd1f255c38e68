import assert from "node:assert/strict";
import fc from "fast-check";
import { isProbabilityRow, rankClasses, softmaxInto, topIndices } from "./postprocess.ts";

Deno.test("softmax is stable and sums to one", () => {
  const p = softmaxInto(new Float32Array([1000, 1001, 1002]));
  assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-6);
  assert.ok(p[2] > p[1] && p[1] > p[0]);
});

Deno.test("isProbabilityRow tells logits from probabilities", () => {
  assert.equal(isProbabilityRow(new Float32Array([0.2, 0.3, 0.5])), true);
  assert.equal(isProbabilityRow(new Float32Array([2, -1, 0.5])), false);
  assert.equal(isProbabilityRow(new Float32Array([0.2, 0.2, 0.2])), false);
});

Deno.test("topIndices ranks best first and keeps ties in class order", () => {
  assert.deepEqual(topIndices(new Float32Array([0.1, 0.4, 0.1, 0.3, 0.1]), 3), [1, 3, 0]);
  assert.equal(topIndices(new Float32Array([0.5, 0.5]), 5).length, 2);
  assert.deepEqual(topIndices(new Float32Array([0.5, 0.5]), 5), [0, 1]);
});

Deno.test("topIndices agrees with a full sort on any row and k", () => {
  fc.assert(
    fc.property(
      fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 300 }),
      fc.integer({ min: 1, max: 320 }),
      (values, k) => {
        const row = Float32Array.from(values);
        const expected = [...row.keys()].sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
        assert.deepEqual(topIndices(row, k), expected);
      },
    ),
  );
});

Deno.test("rankClasses ranks on the row, not on probabilities that underflow (issue 20)", () => {
  // One logit 110 above the rest: every other softmax value is below FP32's smallest subnormal.
  const row = Float32Array.from({ length: 1000 }, (_, i) => i * 0.09);
  row[7] = 200;
  const probabilities = softmaxInto(row, new Float32Array(row.length));
  assert.equal(probabilities.filter((p) => p === 0).length, 999, "the case the issue describes");
  const labels = Array.from({ length: 1000 }, (_, i) => `c${i}`);
  const top = rankClasses(row, 3, labels);
  assert.deepEqual(top.map((c) => c.class_id), [7, 999, 998]);
  assert.equal(top[0].class_name, "c7");
  assert.ok(Math.abs(top[0].confidence - 1) < 1e-12);
  // Not rounded to 0: computed in double precision for what is reported.
  assert.ok(top[1].confidence > 0 && top[1].confidence < 1e-40);
});

Deno.test("rankClasses' confidences are the softmax formula at the reported classes", () => {
  fc.assert(
    fc.property(
      fc.array(fc.float({ min: -50, max: 50, noNaN: true }), { minLength: 2, maxLength: 200 }),
      fc.integer({ min: 1, max: 10 }),
      (values, k) => {
        const row = Float32Array.from(values);
        const labels = values.map((_, i) => `c${i}`);
        const max = Math.max(...row);
        const sum = row.reduce((s, v) => s + Math.exp(v - max), 0);
        for (const c of rankClasses(row, k, labels)) {
          const expected = Math.exp(row[c.class_id] - max) / sum;
          assert.ok(Math.abs(c.confidence - expected) <= 1e-12 * Math.max(1, expected), `${c.class_id}`);
        }
      },
    ),
  );
});

Deno.test("a row that already holds probabilities is reported as it is", () => {
  const row = new Float32Array([0.1, 0.6, 0.3]);
  const top = rankClasses(row, 2, ["a", "b", "c"], true);
  assert.deepEqual(top.map((c) => [c.class_id, c.confidence]), [[1, row[1]], [2, row[2]]]);
});
