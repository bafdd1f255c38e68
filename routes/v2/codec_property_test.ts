/**
 * Properties of the Open Inference Protocol codec. The binary extension's
 * pieces on any input (FP32 and length-prefixed BYTES round trips; a header
 * length from 0 to exactly the body's, and one past it), and requests through
 * the in-process app over shape x datatype x data length, each answered as the
 * protocol's rules say: served only for FP32 [N,3,224,224] carrying exactly
 * N x 150528 values, otherwise a 400 with {"error"}.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BinaryDataError,
  joinBody,
  readBytesElements,
  readFloat32,
  splitBody,
  writeBytesElements,
  writeFloat32,
} from "./binary.ts";
import { captureLogs, fixture, readyApp } from "../../tests/support/helpers.ts";
import { TENSOR_SIZE } from "../../image/preprocess.ts";

const RUNS = { numRuns: 300 };

Deno.test("FP32 binary data: exactly 4 bytes a value round-trips; any other length is refused", () => {
  fc.assert(
    fc.property(fc.float32Array({ maxLength: 64 }), fc.integer({ min: -3, max: 3 }), (values, skew) => {
      const bytes = writeFloat32(values);
      assert.equal(bytes.byteLength, values.length * 4);
      assert.deepEqual(readFloat32(bytes, values.length), values);
      // Little-endian on the wire, whatever the host.
      if (values.length) assert.equal(new DataView(bytes.buffer).getFloat32(0, true), values[0]);
      if (skew !== 0 && bytes.byteLength + skew >= 0) {
        const other = new Uint8Array(bytes.byteLength + skew);
        assert.throws(() => readFloat32(other, values.length), BinaryDataError);
      }
    }),
    RUNS,
  );
});

Deno.test("BYTES binary data: any elements round-trip; a prefix past the end or a cut prefix is refused", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 8 }), fc.nat(), (elements, cut) => {
      const bytes = writeBytesElements(elements);
      assert.equal(bytes.byteLength, elements.reduce((n, e) => n + 4 + e.length, 0));
      assert.deepEqual(readBytesElements(bytes).map((e) => [...e]), elements.map((e) => [...e]));
      if (bytes.byteLength === 0) return;
      // Any shorter body ends inside a prefix or an element, unless it ends exactly between elements.
      const at = cut % bytes.byteLength;
      const boundaries = new Set<number>([0]);
      let offset = 0;
      for (const e of elements) boundaries.add(offset += 4 + e.length);
      if (boundaries.has(at)) assert.equal(readBytesElements(bytes.subarray(0, at)).length >= 0, true);
      else assert.throws(() => readBytesElements(bytes.subarray(0, at)), BinaryDataError);
      // One byte more than the last element declares is a new prefix that does not fit.
      assert.throws(() => readBytesElements(Uint8Array.from([...bytes, 0])), BinaryDataError);
    }),
    RUNS,
  );
  // The exact edge: an element that ends at the last byte, and one declared one byte longer.
  assert.equal(readBytesElements(Uint8Array.of(2, 0, 0, 0, 7, 8))[0].length, 2);
  assert.throws(() => readBytesElements(Uint8Array.of(3, 0, 0, 0, 7, 8)), BinaryDataError);
});

Deno.test("Inference-Header-Content-Length: 0 to exactly the body's length splits there; past it is refused", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(70), (body, n) => {
      if (n <= body.byteLength) {
        const { json, binary } = splitBody(body, String(n));
        assert.equal(json.byteLength, n);
        assert.equal(binary.byteLength, body.byteLength - n);
        assert.deepEqual([...json, ...binary], [...body]);
      } else {
        assert.throws(() => splitBody(body, String(n)), BinaryDataError);
      }
      for (const bad of ["-1", "1.5", "x", "", "1e2", String(2 ** 53)]) {
        assert.throws(() => splitBody(body, bad), BinaryDataError, bad);
      }
    }),
    RUNS,
  );
  fc.assert(
    fc.property(
      fc.jsonValue(),
      fc.array(fc.uint8Array({ maxLength: 10 }), { maxLength: 4 }),
      (header, tails) => {
        const { body, headerLength } = joinBody(header, tails);
        const { json, binary } = splitBody(body, String(headerLength));
        assert.deepEqual(JSON.parse(new TextDecoder().decode(json)), JSON.parse(JSON.stringify(header)));
        assert.deepEqual([...binary], tails.flatMap((t) => [...t]));
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("v2 infer over shape x datatype x data length, through the app", async () => {
  await captureLogs("info");
  const { app } = await readyApp({ MAX_IMAGES_PER_REQUEST: "2" });
  const zeros = new Float32Array(3 * TENSOR_SIZE + 1); // up to one batch past the limit
  const valid = (shape: number[], datatype: string, length: number) =>
    datatype === "FP32" && shape.length === 4 && shape[0] >= 1 && shape[0] <= 2 && shape[1] === 3 &&
    shape[2] === 224 && shape[3] === 224 && length === shape.reduce((a, b) => a * b, 1);

  let served = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.tuple(
        fc.constantFrom(1, 2, 3),
        fc.constantFrom(3, 3, 3, 1, 4),
        fc.constantFrom(224, 224, 223, 225),
        fc.constantFrom(224, 224, 1),
      ),
      fc.constantFrom("FP32", "FP32", "FP32", "FP16", "INT8", "BYTES"),
      // How many values are sent: the shape's count, one off, or N x 150528 whatever the shape says (a
      // [1,1,224,224] input carrying a whole image's values must still be refused).
      fc.constantFrom<number | "image">(0, 0, 0, -1, 1, -TENSOR_SIZE, "image"),
      fc.boolean(),
      async ([n, c, h, w], datatype, skew, binary) => {
        const shape = [n, c, h, w];
        const wanted = skew === "image" ? n * TENSOR_SIZE : n * c * h * w + skew;
        const length = Math.max(0, Math.min(zeros.length, wanted));
        const input: Record<string, unknown> = { name: "input", shape, datatype };
        let res: Response;
        if (binary) {
          const tail = datatype === "FP32" ? writeFloat32(zeros.subarray(0, length)) : new Uint8Array(length);
          input.parameters = { binary_data_size: tail.byteLength };
          const { body, headerLength } = joinBody({ inputs: [input] }, [tail]);
          res = await app.request("/v2/models/resnet50/infer", {
            method: "POST",
            body,
            headers: { "inference-header-content-length": String(headerLength) },
          });
        } else {
          input.data = Array.from(zeros.subarray(0, length));
          res = await app.request("/v2/models/resnet50/infer", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ inputs: [input] }),
          });
        }
        const answer = await res.json();
        const ok = valid(shape, datatype, datatype === "FP32" ? length : -1);
        assert.equal(
          res.status,
          ok ? 200 : 400,
          `${JSON.stringify(shape)} ${datatype} ${length}: ${JSON.stringify(answer).slice(0, 200)}`,
        );
        if (ok) {
          served++;
          assert.deepEqual(answer.outputs[0].shape, [n, 1000]);
        } else {
          assert.equal(typeof answer.error, "string");
          assert.ok(answer.error.length > 0);
        }
      },
    ),
    // Each valid case runs the real model; the generator is biased so about one in five is valid.
    {
      numRuns: 50,
      seed: 21,
      // Always tried: the channel dimension wrong with a whole image's values, as JSON and as binary.
      // And the batch at MAX_IMAGES_PER_REQUEST (2) and one above it.
      examples: [
        [[1, 1, 224, 224], "FP32", "image", false],
        [[1, 1, 224, 224], "FP32", "image", true],
        [[2, 3, 224, 224], "FP32", 0, true],
        [[3, 3, 224, 224], "FP32", 0, true],
      ],
    },
  );
  assert.ok(served > 0, "some generated requests were valid");
});

Deno.test("v2 image model: as many BYTES elements as the shape says, not one more or less", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp({ MAX_IMAGES_PER_REQUEST: "4" });
  const coffee = await fixture("images/coffee.jpg");
  const n = 2;
  for (const count of [n - 1, n, n + 1]) {
    await t.step(`shape [${n}], ${count} elements, binary`, async () => {
      const tail = writeBytesElements(Array.from({ length: count }, () => coffee));
      const input = {
        name: "image",
        shape: [n],
        datatype: "BYTES",
        parameters: { binary_data_size: tail.byteLength },
      };
      const { body, headerLength } = joinBody({ inputs: [input] }, [tail]);
      const res = await app.request("/v2/models/resnet50-image/infer", {
        method: "POST",
        body,
        headers: { "inference-header-content-length": String(headerLength) },
      });
      const answer = await res.json();
      assert.equal(res.status, count === n ? 200 : 400, JSON.stringify(answer).slice(0, 200));
      if (count !== n) assert.match(answer.error, new RegExp(`has ${count} elements; its shape says ${n}`));
    });
    await t.step(`shape [${n}], ${count} elements, JSON`, async () => {
      const data = Array.from({ length: count }, () => coffee.toBase64());
      const res = await app.request("/v2/models/resnet50-image/infer", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ inputs: [{ name: "image", shape: [n], datatype: "BYTES", data }] }),
      });
      const answer = await res.json();
      assert.equal(res.status, count === n ? 200 : 400, JSON.stringify(answer).slice(0, 200));
    });
  }
});
