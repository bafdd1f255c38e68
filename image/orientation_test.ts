import assert from "node:assert/strict";
import { fixture } from "../tests/support/helpers.ts";
import { JPEG_MIN_DECODE_SHORT_SIDE } from "./prepare.ts";
import { decodeImage } from "./decode.ts";
import type { RawImage } from "./raw_image.ts";
import { readImageHeader } from "./image_header.ts";
import { applyOrientation, type Orientation, readExifOrientation } from "./orientation.ts";
import { preprocess, TENSOR_SIZE } from "./preprocess.ts";

/** The JPEG parity tolerance of preprocess_test.ts (mean absolute difference, normalized units). */
const JPEG_TOLERANCE = 0.03;

function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

/** A TIFF structure with one IFD entry, as cameras write it. */
function tiff(order: "II" | "MM", tag: number, type: number, value: number): Uint8Array {
  const bytes = new Uint8Array(26);
  const view = new DataView(bytes.buffer);
  const little = order === "II";
  bytes.set(new TextEncoder().encode(order));
  view.setUint16(2, 42, little);
  view.setUint32(4, 8, little);
  view.setUint16(8, 1, little);
  view.setUint16(10, tag, little);
  view.setUint16(12, type, little);
  view.setUint32(14, 1, little);
  if (type === 3) view.setUint16(18, value, little);
  else view.setUint32(18, value, little);
  return bytes;
}

Deno.test("readExifOrientation", async (t) => {
  await t.step("reads the tag in either byte order, as SHORT or LONG", () => {
    assert.equal(readExifOrientation(tiff("II", 0x0112, 3, 6)), 6);
    assert.equal(readExifOrientation(tiff("MM", 0x0112, 3, 8)), 8);
    assert.equal(readExifOrientation(tiff("MM", 0x0112, 4, 3)), 3);
  });

  await t.step("anything odd means upright, never an error", () => {
    assert.equal(readExifOrientation(tiff("II", 0x0112, 3, 9)), 1);
    assert.equal(readExifOrientation(tiff("II", 0x0112, 3, 0)), 1);
    assert.equal(readExifOrientation(tiff("II", 0x0110, 3, 6)), 1, "another tag");
    assert.equal(readExifOrientation(tiff("II", 0x0112, 3, 6).subarray(0, 20)), 1, "cut inside the entry");
    assert.equal(readExifOrientation(new TextEncoder().encode("XX*\0\0\0\0\x08")), 1);
    assert.equal(readExifOrientation(new Uint8Array(0)), 1);
    const farOffset = tiff("II", 0x0112, 3, 6);
    new DataView(farOffset.buffer).setUint32(4, 0xffff_fff0, true);
    assert.equal(readExifOrientation(farOffset), 1);
  });
});

Deno.test("applyOrientation turns all eight orientations upright", async (t) => {
  // Stored 3x2:  1 2 3
  //              4 5 6
  const expected: Record<Orientation, [number, number, number[]]> = {
    1: [3, 2, [1, 2, 3, 4, 5, 6]],
    2: [3, 2, [3, 2, 1, 6, 5, 4]], // mirrored
    3: [3, 2, [6, 5, 4, 3, 2, 1]], // upside down
    4: [3, 2, [4, 5, 6, 1, 2, 3]], // mirrored upside down
    5: [2, 3, [1, 4, 2, 5, 3, 6]], // transposed
    6: [2, 3, [4, 1, 5, 2, 6, 3]], // shown turned 90° clockwise
    7: [2, 3, [6, 3, 5, 2, 4, 1]], // transverse
    8: [2, 3, [3, 6, 2, 5, 1, 4]], // shown turned 90° counter-clockwise
  };
  for (const channels of [1, 3, 4] as const) {
    await t.step(`${channels} channel(s)`, () => {
      // Each pixel's channels are (v, v + 10, v + 20, ...) so a swapped channel would show.
      const pixel = (v: number) => Array.from({ length: channels }, (_, c) => v + 10 * c);
      const stored: RawImage = {
        width: 3,
        height: 2,
        channels,
        data: new Uint8Array([1, 2, 3, 4, 5, 6].flatMap(pixel)),
      };
      for (const [tag, [width, height, values]] of Object.entries(expected)) {
        const upright = applyOrientation(stored, Number(tag) as Orientation);
        assert.deepEqual(
          {
            width: upright.width,
            height: upright.height,
            channels: upright.channels,
            data: [...upright.data],
          },
          { width, height, channels, data: values.flatMap(pixel) },
          `orientation ${tag}`,
        );
      }
      assert.equal(applyOrientation(stored, 1), stored, "upright needs no copy");
    });
  }
});

Deno.test("EXIF orientation of real photos", async (t) => {
  // torchvision's tensor of the upright photo.
  const upright = new Float32Array((await fixture("reference/chelsea.jpg.f32")).buffer);
  assert.equal(upright.length, TENSOR_SIZE);

  for (const orientation of [1, 2, 3, 4, 5, 6, 7, 8] as const) {
    await t.step(`JPEG with orientation ${orientation} classifies as the upright photo`, async () => {
      const bytes = await fixture(`images/chelsea_orientation_${orientation}.jpg`);
      const header = readImageHeader(bytes);
      assert.equal(header.orientation, orientation);
      assert.deepEqual([header.width, header.height], orientation >= 5 ? [300, 451] : [451, 300]);
      for (const minShortSide of [Infinity, JPEG_MIN_DECODE_SHORT_SIDE]) {
        const image = await decodeImage(bytes, header, { minShortSide });
        assert.deepEqual([image.width, image.height], [451, 300]);
        const mad = meanAbsDiff(preprocess(image), upright);
        assert.ok(mad <= JPEG_TOLERANCE, `mean abs difference ${mad} > ${JPEG_TOLERANCE}`);
      }
      if (orientation !== 1) {
        // The test can fail: kept as stored, the same photo is far from upright.
        const asStored = await decodeImage(bytes, header, { orientation: "ignore" });
        const mad = meanAbsDiff(preprocess(asStored), upright);
        assert.ok(mad > 0.2, `as stored, mean abs difference is only ${mad}`);
      }
    });
  }

  // One tag on each of the other decode paths: each must give the same upright photo. The PNG holds
  // PIL's decode of chelsea.jpg losslessly, so turned upright it is torchvision's input exactly.
  for (
    const [file, orientation, path, tolerance] of [
      ["images/chelsea_orientation_6.png", 6, "PNG, imagescript", 1e-6],
      ["images/chelsea_orientation_8.webp", 8, "WebP, libwebp", JPEG_TOLERANCE],
      ["images/chelsea_cmyk_orientation_7.jpg", 7, "CMYK JPEG, imagescript", JPEG_TOLERANCE],
    ] as const
  ) {
    await t.step(`${path}: orientation ${orientation} is read and applied`, async () => {
      const bytes = await fixture(file);
      const header = readImageHeader(bytes);
      assert.equal(header.orientation, orientation);
      const image = await decodeImage(bytes, header, { minShortSide: JPEG_MIN_DECODE_SHORT_SIDE });
      assert.deepEqual([image.width, image.height], [451, 300]);
      const mad = meanAbsDiff(preprocess(image), upright);
      assert.ok(mad <= tolerance, `mean abs difference ${mad} > ${tolerance}`);
    });
  }

  await t.step("a large JPEG decoded at a reduced scale, then turned upright", async () => {
    const bytes = await fixture("images/coffee_1536x1024_orientation_6.jpg");
    const header = readImageHeader(bytes);
    assert.deepEqual([header.width, header.height, header.orientation], [1024, 1536, 6]);
    const image = await decodeImage(bytes, header, { minShortSide: JPEG_MIN_DECODE_SHORT_SIDE });
    assert.deepEqual([image.width, image.height], [768, 512], "decoded at 1/2 scale, then turned");
    const reference = await fixture("images/coffee_1536x1024.jpg");
    const straight = preprocess(
      await decodeImage(reference, readImageHeader(reference), { minShortSide: JPEG_MIN_DECODE_SHORT_SIDE }),
    );
    const mad = meanAbsDiff(preprocess(image), straight);
    assert.ok(mad <= JPEG_TOLERANCE, `mean abs difference ${mad} > ${JPEG_TOLERANCE}`);
  });

  await t.step("photos without a tag are upright", async () => {
    for (const file of ["images/coffee.jpg", "images/astronaut.png", "images/coffee.webp"]) {
      assert.equal(readImageHeader(await fixture(file)).orientation, 1, file);
    }
  });
});
