/**
 * The v2 codec's parsers, by property: what they accept is exactly what the
 * protocol allows (shape × datatype × element count, binary lengths to the
 * byte), and what they refuse is a 400 naming the problem, never a fault.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { ModelState } from "../../model/runtime/state.ts";
import type { ModelInfo } from "../../model/runtime/runner.ts";
import { fixedCatalog } from "../../serving/models.ts";
import {
  BinaryDataError,
  joinBody,
  readBytesElements,
  readFloat32,
  splitBody,
  writeBytesElements,
  writeFloat32,
} from "./binary.ts";
import { classesToRank, parseInferBody, parseInputs, requestedOutputs } from "./codec.ts";
import { V2Error } from "./errors.ts";

const info = { inputName: "input", outputName: "logits", classes: 1000 } as ModelInfo;
const catalog = fixedCatalog("resnet50", new ModelState());
const tensorModel = catalog.find("resnet50")!;
const imageModel = catalog.find("resnet50-image")!;
const MAX = 8;

function refusal(fn: () => unknown): V2Error {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof V2Error, `a protocol error, not ${err}`);
    assert.equal(err.status, 400);
    return err;
  }
  assert.fail("expected a 400");
}

const body = (request: unknown) =>
  parseInferBody(new TextEncoder().encode(JSON.stringify(request)), undefined);

Deno.test("FP32 tensors: accepted exactly for [N,3,224,224], 1 ≤ N ≤ max, with N×150528 values", () => {
  // Small element counts stand in for the real one: any shape but the one allowed is refused before data.
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 5 }),
      fc.constantFrom("FP32", "FP16", "INT8", "BYTES", "fp32"),
      (shape, datatype) => {
        const request = { inputs: [{ name: "input", shape, datatype, data: [0] }] };
        const err = refusal(() => parseInputs(body(request), tensorModel, info, MAX));
        const shapeOk = shape.length === 4 && shape[1] === 3 && shape[2] === 224 && shape[3] === 224;
        if (datatype !== "FP32") assert.match(err.message, /must be FP32/);
        else if (!shapeOk) assert.match(err.message, /must have shape \[N,3,224,224\]/);
        else if (shape[0] < 1 || shape[0] > MAX) assert.match(err.message, /Batch size must be from 1 to 8/);
        else assert.match(err.message, /has 1 values; shape .* needs/);
      },
    ),
  );
});

Deno.test("FP32 element counts: one short, exact and one over, flat or nested", () => {
  const n = 150528;
  const ok = parseInputs(
    body({
      inputs: [{ name: "input", shape: [1, 3, 224, 224], datatype: "FP32", data: new Array(n).fill(0.5) }],
    }),
    tensorModel,
    info,
    MAX,
  );
  assert.equal(ok.length, 1);
  assert.equal(ok[0].kind === "tensor" && ok[0].tensor.length, n);
  for (const count of [n - 1, n + 1]) {
    const err = refusal(() =>
      parseInputs(
        body({
          inputs: [{
            name: "input",
            shape: [1, 3, 224, 224],
            datatype: "FP32",
            data: new Array(count).fill(0),
          }],
        }),
        tensorModel,
        info,
        MAX,
      )
    );
    assert.match(err.message, count < n ? /has 150527 values/ : /more than the 150528 values/);
  }
  const nested = Array.from({ length: 3 }, () => Array.from({ length: 224 }, () => new Array(224).fill(1)));
  const fromNested = parseInputs(
    body({ inputs: [{ name: "input", shape: [1, 3, 224, 224], datatype: "FP32", data: [nested] }] }),
    tensorModel,
    info,
    MAX,
  );
  assert.equal(fromNested[0].kind === "tensor" && fromNested[0].tensor[n - 1], 1);
});

Deno.test("BYTES images: [N] or [N,1], N elements of base64, or the binary layout", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: MAX }),
      fc.boolean(),
      (files, column) => {
        const shape = column ? [files.length, 1] : [files.length];
        const json = parseInputs(
          body({
            inputs: [{ name: "image", shape, datatype: "BYTES", data: files.map((f) => f.toBase64()) }],
          }),
          imageModel,
          info,
          MAX,
        );
        assert.deepEqual(json.map((i) => i.kind === "image" && [...i.bytes]), files.map((f) => [...f]));
        const raw = writeBytesElements(files);
        const header = {
          inputs: [{ name: "image", shape, datatype: "BYTES", parameters: { binary_data_size: raw.length } }],
        };
        const joined = joinBody(header, [raw]);
        const binary = parseInputs(
          parseInferBody(joined.body, String(joined.headerLength)),
          imageModel,
          info,
          MAX,
        );
        assert.deepEqual(binary.map((i) => i.kind === "image" && [...i.bytes]), files.map((f) => [...f]));
        // One element more or fewer than the shape says is refused.
        const wrong = {
          inputs: [{
            name: "image",
            shape: [files.length + 1],
            datatype: "BYTES",
            data: files.map((f) => f.toBase64()),
          }],
        };
        if (files.length + 1 <= MAX) {
          assert.match(
            refusal(() => parseInputs(body(wrong), imageModel, info, MAX)).message,
            /elements; its shape says/,
          );
        }
      },
    ),
  );
});

Deno.test("binary lengths: Inference-Header-Content-Length from 0 to the body's length, exactly", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 70 }), (bytes, n) => {
      if (n <= bytes.length) {
        const { json, binary } = splitBody(bytes, String(n));
        assert.equal(json.length, n);
        assert.equal(binary.length, bytes.length - n);
      } else {
        assert.throws(() => splitBody(bytes, String(n)), BinaryDataError);
      }
    }),
  );
  for (const bad of ["-1", "1e1", "0x2", "", "1.0", "99999999999999999999"]) {
    assert.throws(() => splitBody(new Uint8Array(10), bad), BinaryDataError, bad);
  }
});

Deno.test("binary BYTES and FP32 round-trip, and a length prefix past the end is refused", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 30 }), { maxLength: 10 }), (elements) => {
      const raw = writeBytesElements(elements);
      assert.deepEqual(readBytesElements(raw).map((e) => [...e]), elements.map((e) => [...e]));
      if (raw.length > 0) {
        assert.throws(() => readBytesElements(raw.subarray(0, raw.length - 1)), BinaryDataError);
      }
    }),
  );
  fc.assert(
    fc.property(fc.array(fc.float({ noNaN: true }), { maxLength: 50 }), (values) => {
      const bytes = writeFloat32(values);
      assert.deepEqual([...readFloat32(bytes, values.length)], [...Float32Array.from(values)]);
      assert.throws(() => readFloat32(bytes, values.length + 1), BinaryDataError);
    }),
  );
});

Deno.test("requested outputs: each at most once, and k is the largest classification count", () => {
  const request = (outputs: unknown[]) =>
    body({ inputs: [{ name: "input", shape: [1], datatype: "FP32", data: [0] }], outputs }).request;
  assert.equal(
    classesToRank(
      requestedOutputs(request([{ name: "logits", parameters: { classification: 7 } }]), tensorModel, info),
    ),
    7,
  );
  assert.equal(classesToRank(requestedOutputs(request([{ name: "logits" }]), tensorModel, info)), 1);
  assert.match(
    refusal(() => requestedOutputs(request([{ name: "logits" }, { name: "logits" }]), tensorModel, info))
      .message,
    /more than once/,
  );
  assert.match(
    refusal(() => requestedOutputs(request([{ name: "probs" }]), tensorModel, info)).message,
    /Unknown output "probs"/,
  );
});

Deno.test("a shape of 500,000 dimensions is refused without echoing it back", () => {
  const shape = new Array(500_000).fill(1);
  const err = refusal(() =>
    parseInputs(
      body({ inputs: [{ name: "input", shape, datatype: "FP32", data: [1] }] }),
      tensorModel,
      info,
      MAX,
    )
  );
  assert.match(err.message, /got \[1,1,1,1,1,1,1,1,…\] \(500000 dimensions\)$/);
  assert.ok(err.message.length < 200);
});

Deno.test("names and datatypes are bounded: 256 and 32 characters", () => {
  const request = (name: string, datatype: string) => ({
    inputs: [{ name, shape: [1], datatype, data: ["aGk="] }],
  });
  assert.equal(parseInputs(body(request("image", "BYTES")), imageModel, info, MAX).length, 1);
  // At the limit the name is read, and refused for what it is; one above, for its length.
  assert.match(
    refusal(() => parseInputs(body(request("x".repeat(256), "BYTES")), imageModel, info, MAX)).message,
    /Unknown input/,
  );
  assert.match(
    refusal(() =>
      parseInferBody(new TextEncoder().encode(JSON.stringify(request("x".repeat(257), "BYTES"))), undefined)
    ).message,
    /inputs\.0\.name/,
  );
  assert.match(
    refusal(() =>
      parseInferBody(new TextEncoder().encode(JSON.stringify(request("image", "B".repeat(33)))), undefined)
    ).message,
    /inputs\.0\.datatype/,
  );
});
