import assert from "node:assert/strict";
import { fixture, manifest } from "../tests/support/helpers.ts";
import { JPEG_MIN_DECODE_SHORT_SIDE } from "./prepare.ts";
import { decodeImage } from "./decode.ts";
import { readImageHeader } from "./image_header.ts";
import {
  IMAGENET_MEAN,
  IMAGENET_STD,
  preprocess,
  preprocessInto,
  resizedSize,
  TENSOR_SIZE,
} from "./preprocess.ts";

/** Parity tolerances from the issue, in normalized units (mean absolute difference). */
const TOLERANCE = { PNG: 0.01, WEBP: 0.01, JPEG: 0.03 } as const;

Deno.test("preprocessing matches torchvision", async (t) => {
  for (const img of await manifest()) {
    await t.step(`${img.file} (${img.mode} ${img.format}, ${img.width}x${img.height})`, async () => {
      const bytes = await fixture(img.file);
      const header = readImageHeader(bytes);
      const ref = new Float32Array((await fixture(img.reference)).buffer);
      assert.equal(ref.length, TENSOR_SIZE);
      // Full-size decode, and the path the server takes (large JPEGs decoded at a reduced scale),
      // with the native decoder and the WASM-only one of the edge profile.
      for (const codecs of ["native", "wasm"] as const) {
        for (const minShortSide of [Infinity, JPEG_MIN_DECODE_SHORT_SIDE]) {
          const tensor = preprocess(await decodeImage(bytes, header, { minShortSide, codecs }));
          let sum = 0;
          for (let i = 0; i < ref.length; i++) sum += Math.abs(ref[i] - tensor[i]);
          const mad = sum / ref.length;
          assert.ok(
            mad <= TOLERANCE[img.format],
            `mean abs difference ${mad} > ${
              TOLERANCE[img.format]
            } (${codecs} codecs, minShortSide ${minShortSide})`,
          );
        }
      }
    });
  }
});

Deno.test("resizedSize truncates the long side as torchvision does", () => {
  assert.deepEqual(resizedSize(600, 400), [384, 256]);
  assert.deepEqual(resizedSize(451, 300), [384, 256]);
  assert.deepEqual(resizedSize(300, 451), [256, 384]);
  assert.deepEqual(resizedSize(10, 10), [256, 256]);
});

Deno.test("preprocessInto writes at an offset and nowhere else", () => {
  const gray = { width: 300, height: 300, channels: 1 as const, data: new Uint8Array(300 * 300).fill(128) };
  const out = new Float32Array(TENSOR_SIZE * 2).fill(99);
  preprocessInto(gray, out, TENSOR_SIZE);
  assert.equal(out[0], 99);
  assert.equal(out[TENSOR_SIZE - 1], 99);
  // 128/255 normalized by the red channel's mean and std.
  assert.ok(Math.abs(out[TENSOR_SIZE] - (128 / 255 - 0.485) / 0.229) < 1e-5);
  assert.throws(() => preprocessInto(gray, new Float32Array(10)), RangeError);
});

Deno.test("extreme aspect ratios stay in bounds and keep a flat image's exact value", () => {
  // A flat image resizes to itself under any filter whose weights sum to one: every output value is the
  // normalized input value, exactly (varied content is checked against torchvision in preprocess_torchvision_test).
  for (const [width, height] of [[5000, 2], [2, 5000], [1, 1], [16383, 1]]) {
    const rgb = [7, 128, 250];
    const data = new Uint8Array(width * height * 3);
    for (let i = 0; i < data.length; i++) data[i] = rgb[i % 3];
    const t = preprocess({ width, height, channels: 3, data });
    const plane = t.length / 3;
    for (let c = 0; c < 3; c++) {
      const want = Math.fround((rgb[c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]);
      for (const i of [0, 1, 223, plane / 2, plane - 1]) {
        assert.equal(t[c * plane + i], want, `${width}x${height}`);
      }
      assert.ok(
        t.subarray(c * plane, (c + 1) * plane).every((v) => v === want),
        `${width}x${height} channel ${c}`,
      );
    }
  }
});
