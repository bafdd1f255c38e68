import assert from "node:assert/strict";
import fc from "fast-check";
import { testConfig } from "../../tests/support/helpers.ts";
import { sha256File } from "./download.ts";
import { inspectModel, inspectModelBytes, inspectModelFile, QUANTIZED_OPS } from "./inspect.ts";
import { readModelFile, sha256Hex } from "./model_bytes.ts";
import { decodeModel, encodeModel, isQuantized, type onnx, proto } from "./onnx_graph.ts";
import { ensureSynthetic } from "./resolve.ts";

/** `bytes` cut into chunks at `cuts` (sorted offsets), as a stream would deliver them. */
function chunked(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const p of [...points, bytes.length]) {
    if (p > at) chunks.push(bytes.subarray(at, p));
    at = Math.max(at, p);
  }
  return chunks;
}

const OPS = ["Conv", "Relu", "Add", "Gemm", "Softmax", ...QUANTIZED_OPS];

/** Random ONNX models, encoded by onnx-proto: the reference the walker must agree with. */
const models: fc.Arbitrary<onnx.IModelProto> = fc.record({
  irVersion: fc.integer({ min: 0, max: 10 }),
  producerName: fc.string(),
  producerVersion: fc.oneof(fc.string(), fc.constant("synthetic-resnet50")),
  docString: fc.string({ maxLength: 600 }),
  opsetImport: fc.array(fc.record({ domain: fc.string(), version: fc.integer({ min: 1, max: 20 }) }), {
    maxLength: 2,
  }),
  graph: fc.record({
    name: fc.string(),
    node: fc.array(
      fc.record({
        opType: fc.oneof(fc.constantFrom(...OPS), fc.string({ maxLength: 40 })),
        name: fc.string(),
        input: fc.array(fc.string(), { maxLength: 3 }),
        output: fc.array(fc.string(), { maxLength: 2 }),
        domain: fc.string({ maxLength: 8 }),
        attribute: fc.array(
          fc.record({
            name: fc.string(),
            type: fc.constant(2),
            i: fc.integer(),
            ints: fc.array(fc.integer()),
          }),
          { maxLength: 2 },
        ),
      }),
      { maxLength: 12 },
    ),
    initializer: fc.array(
      fc.record({
        name: fc.string(),
        dims: fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 3 }),
        dataType: fc.constant(1),
        rawData: fc.uint8Array({ maxLength: 5000 }),
      }),
      { maxLength: 4 },
    ),
  }),
});

Deno.test("inspectModel: one streaming pass agrees with decoding the whole model", async (t) => {
  await t.step("random models, delivered in random chunks", async () => {
    await fc.assert(
      fc.asyncProperty(models, fc.array(fc.nat(), { maxLength: 8 }), async (model, cuts) => {
        const bytes = encodeModel(proto.ModelProto.fromObject(model));
        const reference = decodeModel(bytes);
        const facts = await inspectModel(chunked(bytes, cuts));
        assert.deepEqual(facts.operators, (reference.graph?.node ?? []).map((n) => n.opType ?? ""));
        assert.equal(facts.quantized, isQuantized(reference));
        assert.equal(facts.sha256, sha256Hex(bytes));
        assert.equal(facts.size, bytes.length);
        const head = new TextDecoder("latin1").decode(bytes.subarray(0, 512));
        assert.equal(facts.weights, head.includes("synthetic-resnet50") ? "synthetic" : "pretrained");
      }),
      { numRuns: 300 },
    );
  });

  await t.step(
    "a truncated model: what the walker reads, onnx-proto reads the same; else not quantized",
    async () => {
      await fc.assert(
        fc.asyncProperty(models, fc.nat(), async (model, cut) => {
          const whole = encodeModel(proto.ModelProto.fromObject(model));
          const bytes = whole.subarray(0, cut % (whole.length + 1));
          const facts = await inspectModel([bytes]);
          // The walker is the stricter reader (onnx-proto lets a string run past the end).
          if (facts.operators) {
            const reference = decodeModel(bytes);
            assert.deepEqual(facts.operators, (reference.graph?.node ?? []).map((n) => n.opType ?? ""));
            assert.equal(facts.quantized, isQuantized(reference));
          } else assert.equal(facts.quantized, false);
          assert.equal(facts.sha256, sha256Hex(bytes));
        }),
        { numRuns: 300 },
      );
    },
  );

  await t.step("bytes that are no model: no throw, not quantized, hashed in full", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), async (bytes) => {
        const facts = await inspectModelBytes(bytes);
        assert.equal(facts.sha256, sha256Hex(bytes));
        assert.equal(facts.size, bytes.length);
        let quantized = false;
        try {
          quantized = isQuantized(decodeModel(bytes));
        } catch { /* not a model */ }
        if (!quantized) assert.equal(facts.quantized, false);
      }),
      { numRuns: 500 },
    );
  });

  await t.step("an operator type one byte under, at and over the length limit", async () => {
    for (const [length, read] of [[255, true], [256, true], [257, false]] as const) {
      const bytes = encodeModel({
        graph: { node: [{ opType: "Q".repeat(length) }, { opType: "QuantizeLinear" }] },
      });
      const facts = await inspectModel([bytes]);
      assert.equal(facts.quantized, read, `op_type of ${length} bytes`);
    }
  });

  await t.step("the synthetic ResNet-50 file: as sha256File and a full decode say", async () => {
    const { path } = await ensureSynthetic(testConfig());
    const facts = await inspectModelFile(path);
    assert.equal(facts.sha256, await sha256File(path));
    assert.equal(facts.weights, "synthetic");
    assert.equal(facts.quantized, false);
    assert.equal(facts.size, (await Deno.stat(path)).size);
    using file = await Deno.open(path);
    const { operators } = await inspectModel(file.readable);
    const reference = decodeModel(await readModelFile(path));
    assert.deepEqual(operators, reference.graph!.node!.map((n) => n.opType));
  });
});
