import assert from "node:assert/strict";
import { connectionBudget, freeDescriptors, RESERVED_DESCRIPTORS } from "./descriptors.ts";

Deno.test("free descriptors are counted up to what is wanted, and all given back", () => {
  assert.equal(freeDescriptors(50), 50);
  // Given back: counting again finds as many.
  assert.equal(freeDescriptors(50), 50);
  assert.equal(freeDescriptors(0), 0);
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
    assert.match(budget.warning ?? "", /MAX_CONNECTIONS=101 needs 559 file descriptors but 556 are free/);
  });
  await t.step("without the guard each connection costs one descriptor", () => {
    assert.deepEqual(connectionBudget(300, 1, limit), { maxConnections: 300 });
  });
  await t.step("a limit with no room for one connection stops startup", () => {
    assert.throws(() => connectionBudget(1, 3, RESERVED_DESCRIPTORS + 2), /too few for one connection/);
    assert.deepEqual(connectionBudget(1, 3, RESERVED_DESCRIPTORS + 3), { maxConnections: 1 });
  });
  await t.step("no known limit: as configured", () => {
    assert.deepEqual(connectionBudget(5000, 3, undefined), { maxConnections: 5000 });
  });
});
