import assert from "node:assert/strict";
import fc from "fast-check";
import { selectVersions } from "./version_policy.ts";

Deno.test("selectVersions", async (t) => {
  await t.step("latest N: the N highest, at, below and above the count present", () => {
    const present = [3, 1, 10, 2];
    assert.deepEqual(selectVersions(present, { latest: { num_versions: 1 } }).serve, [10]);
    assert.deepEqual(selectVersions(present, { latest: { num_versions: 3 } }).serve, [10, 3, 2]);
    assert.deepEqual(selectVersions(present, { latest: { num_versions: 4 } }).serve, [10, 3, 2, 1]);
    assert.deepEqual(selectVersions(present, { latest: { num_versions: 5 } }).serve, [10, 3, 2, 1]);
    // Numeric, not lexical: 10 is above 9.
    assert.deepEqual(selectVersions([9, 10], { latest: { num_versions: 1 } }).serve, [10]);
  });

  await t.step("specific: the named ones present; the absent ones reported", () => {
    assert.deepEqual(selectVersions([1, 2, 3], { specific: { versions: [3, 1, 7] } }), {
      serve: [3, 1],
      missing: [7],
    });
  });

  await t.step("all, and an empty repository", () => {
    assert.deepEqual(selectVersions([2, 1, 2], { all: {} }).serve, [2, 1]);
    assert.deepEqual(selectVersions([], { latest: { num_versions: 1 } }), { serve: [], missing: [] });
  });

  await t.step("latest N never serves more than N nor skips a higher version for a lower", () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 50 })),
      fc.integer({ min: 1, max: 60 }),
      (present, n) => {
        const { serve } = selectVersions(present, { latest: { num_versions: n } });
        assert.equal(serve.length, Math.min(n, new Set(present).size));
        const left = present.filter((v) => !serve.includes(v));
        for (const v of left) assert.ok(serve.every((s) => s > v));
      },
    ));
  });
});
