import assert from "node:assert/strict";
import { isProbabilityRow, softmaxInto, topK } from "./postprocess.ts";

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

Deno.test("topK ranks best first and keeps ties in class order", () => {
  const labels = ["a", "b", "c", "d", "e"];
  const r = topK(new Float32Array([0.1, 0.4, 0.1, 0.3, 0.1]), 3, labels);
  assert.deepEqual(r.map((c) => c.class_id), [1, 3, 0]);
  assert.equal(r[0].class_name, "b");
  assert.equal(topK(new Float32Array([0.5, 0.5]), 5, ["x", "y"]).length, 2);
});

Deno.test("topK agrees with a full sort on random rows", () => {
  const labels = Array.from({ length: 1000 }, (_, i) => `c${i}`);
  for (let trial = 0; trial < 20; trial++) {
    const row = Float32Array.from({ length: 1000 }, () => Math.random());
    const expected = [...row.keys()].sort((a, b) => row[b] - row[a] || a - b).slice(0, 20);
    assert.deepEqual(topK(row, 20, labels).map((c) => c.class_id), expected);
  }
});
