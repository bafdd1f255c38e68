import assert from "node:assert/strict";
import fc from "fast-check";
import { DEFAULT_VERSION_POLICY, ModelConfigError, parseModelConfig } from "./model_config.ts";

Deno.test("parseModelConfig", async (t) => {
  await t.step("an empty object takes every default: the latest version serves", () => {
    assert.deepEqual(parseModelConfig("{}"), { version_policy: DEFAULT_VERSION_POLICY });
  });

  await t.step("every field, in Triton's version policy shapes", () => {
    const c = parseModelConfig(JSON.stringify({
      precision: "int8",
      top_k: 3,
      max_batch_size: 8,
      max_batch_delay_ms: 2,
      max_queue: 64,
      version_policy: { specific: { versions: [1, 3] } },
    }));
    assert.equal(c.precision, "int8");
    assert.equal(c.top_k, 3);
    assert.deepEqual(c.version_policy, { specific: { versions: [1, 3] } });
    assert.deepEqual(parseModelConfig('{"version_policy":{"all":{}}}').version_policy, { all: {} });
    assert.deepEqual(
      parseModelConfig('{"version_policy":{"latest":{"num_versions":2}}}').version_policy,
      { latest: { num_versions: 2 } },
    );
  });

  await t.step("limits: at, below and above", () => {
    for (
      const [field, low, high] of [["top_k", 1, 20], ["max_batch_size", 1, 64], ["max_queue", 1, 100_000]]
    ) {
      assert.equal(parseModelConfig(JSON.stringify({ [field]: low }))[field as "top_k"], low);
      assert.equal(parseModelConfig(JSON.stringify({ [field]: high }))[field as "top_k"], high);
      assert.throws(() => parseModelConfig(JSON.stringify({ [field]: (low as number) - 1 })), {
        message: new RegExp(`field ${field} is invalid`),
      });
      assert.throws(
        () => parseModelConfig(JSON.stringify({ [field]: (high as number) + 1 })),
        ModelConfigError,
      );
    }
    assert.throws(() => parseModelConfig('{"top_k": 2.5}'), ModelConfigError);
    assert.throws(
      () => parseModelConfig('{"version_policy":{"latest":{"num_versions":0}}}'),
      /version_policy/,
    );
    assert.throws(
      () => parseModelConfig('{"version_policy":{"specific":{"versions":[0]}}}'),
      ModelConfigError,
    );
    assert.throws(
      () => parseModelConfig('{"version_policy":{"specific":{"versions":[]}}}'),
      ModelConfigError,
    );
  });

  await t.step("clear errors naming the file and the field", () => {
    assert.throws(
      () => parseModelConfig("{", "m/config.json"),
      /^ModelConfigError: m\/config.json is not JSON/,
    );
    assert.throws(() => parseModelConfig('{"precision":"fp16"}', "m/config.json"), {
      message: "m/config.json field precision is invalid: expected one of fp32, int8",
    });
    // A typo is refused, not silently ignored.
    assert.throws(() => parseModelConfig('{"topk": 3}'), { message: /unknown field\(s\) "topk"/ });
    assert.throws(() => parseModelConfig('{"version_policy":{"newest":{}}}'), /version_policy is invalid/);
    assert.throws(() => parseModelConfig("[]"), ModelConfigError);
    assert.throws(() => parseModelConfig("null"), ModelConfigError);
  });

  await t.step("any text parses or fails with a ModelConfigError, nothing else", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify(v))), (text) => {
        try {
          parseModelConfig(text);
        } catch (err) {
          assert.ok(err instanceof ModelConfigError, String(err));
        }
      }),
    );
  });

  await t.step("a valid config survives a round trip through its own JSON", () => {
    const config = fc.record({
      precision: fc.constantFrom("fp32", "int8"),
      top_k: fc.integer({ min: 1, max: 20 }),
      version_policy: fc.oneof(
        fc.record({ latest: fc.record({ num_versions: fc.integer({ min: 1, max: 1000 }) }) }),
        fc.record({
          specific: fc.record({
            versions: fc.array(fc.integer({ min: 1, max: 2 ** 31 - 1 }), { minLength: 1 }),
          }),
        }),
        fc.constant({ all: {} }),
      ),
    }, { requiredKeys: ["version_policy"] });
    fc.assert(fc.property(config, (c) => {
      assert.deepEqual(parseModelConfig(JSON.stringify(c)), JSON.parse(JSON.stringify(c)));
    }));
  });
});
