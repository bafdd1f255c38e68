import assert from "node:assert/strict";
import {
  connectionBudget,
  openFilesLimit,
  parseOpenFilesLimit,
  RESERVED_DESCRIPTORS,
} from "./descriptors.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 1048576              files
Max locked memory         8388608              8388608              bytes
`;

Deno.test("the open-files limit is the soft one from /proc/self/limits", () => {
  assert.equal(parseOpenFilesLimit(LIMITS), 1024);
  assert.equal(parseOpenFilesLimit(LIMITS.replace("1024   ", "unlimited")), undefined);
  assert.equal(parseOpenFilesLimit("nothing here"), undefined);
  // This process's, as Deno reads it (the test set may read everything in the repo, not /proc: undefined
  // there is the fallback the gateway takes where /proc is absent).
  const own = openFilesLimit();
  assert.ok(own === undefined || own > 0);
});

Deno.test("MAX_CONNECTIONS is clamped to what the limit serves, at the boundary exactly", async (t) => {
  const limit = RESERVED_DESCRIPTORS + 3 * 100;
  await t.step("at the limit and below: kept, no warning", () => {
    assert.deepEqual(connectionBudget(100, 3, limit), { maxConnections: 100 });
    assert.deepEqual(connectionBudget(99, 3, limit), { maxConnections: 99 });
  });
  await t.step("one above: clamped, with a warning naming the variable", () => {
    const budget = connectionBudget(101, 3, limit);
    assert.equal(budget.maxConnections, 100);
    assert.match(budget.warning ?? "", /MAX_CONNECTIONS=101 needs 559 file descriptors .* limit is 556/);
  });
  await t.step("without the guard each connection costs one descriptor", () => {
    assert.deepEqual(connectionBudget(300, 1, limit), { maxConnections: 300 });
  });
  await t.step("a limit with no room for one connection stops startup", () => {
    assert.throws(() => connectionBudget(1, 3, RESERVED_DESCRIPTORS + 2), /raise it above/);
    assert.deepEqual(connectionBudget(1, 3, RESERVED_DESCRIPTORS + 3), { maxConnections: 1 });
  });
  await t.step("no known limit: as configured", () => {
    assert.deepEqual(connectionBudget(5000, 3, undefined), { maxConnections: 5000 });
  });
});
