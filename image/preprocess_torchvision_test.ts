/**
 * Differential check of preprocessing against torchvision on odd and extreme
 * sizes (tests/fixtures/preprocess/, made by make_preprocess_fixtures.py): the
 * resize and centre crop must give exactly PIL's 8-bit values, then exactly
 * the normalized floats. Inputs come from a formula both sides compute, so no
 * decoder stands between the two.
 */
import assert from "node:assert/strict";
import { FIXTURES } from "../tests/support/helpers.ts";
import type { RawImage } from "./raw_image.ts";
import { CROP_SIZE, IMAGENET_MEAN, IMAGENET_STD, preprocess, resizedSize } from "./preprocess.ts";

interface Case {
  name: string;
  width: number;
  height: number;
  channels: 1 | 3;
  why: string;
  reference: string;
}

const { cases } = JSON.parse(
  await Deno.readTextFile(new URL("preprocess/manifest.json", FIXTURES)),
) as { cases: Case[] };

/** The generator's formula: (7x + 13y + 61c + 5((x y) mod 17)) mod 256. */
function pattern(width: number, height: number, channels: 1 | 3): RawImage {
  const data = new Uint8Array(width * height * channels);
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) data[i++] = (7 * x + 13 * y + 61 * c + 5 * ((x * y) % 17)) % 256;
    }
  }
  return { width, height, channels, data };
}

async function gunzip(url: URL): Promise<Uint8Array> {
  const stream = (await fetch(url)).body!.pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** ToTensor then Normalize of one 8-bit value, as float32. */
const normalized = (v: number, c: number) => Math.fround((v / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]);

Deno.test("preprocessing equals torchvision exactly on odd and extreme sizes", async (t) => {
  assert.ok(cases.length >= 10);
  for (const c of cases) {
    await t.step(`${c.name}: ${c.why}`, async () => {
      const reference = await gunzip(new URL(c.reference, FIXTURES)); // HWC uint8
      assert.equal(reference.length, CROP_SIZE * CROP_SIZE * 3);
      const tensor = preprocess(pattern(c.width, c.height, c.channels)); // CHW float32
      const plane = CROP_SIZE * CROP_SIZE;
      let mismatches = 0;
      let first = "";
      for (let i = 0; i < plane; i++) {
        for (let ch = 0; ch < 3; ch++) {
          const want = normalized(reference[i * 3 + ch], ch);
          const got = tensor[ch * plane + i];
          if (got !== want) {
            if (mismatches++ === 0) {
              first = `first at row ${Math.floor(i / CROP_SIZE)}, column ${i % CROP_SIZE}, channel ${ch}: ` +
                `${got}, torchvision ${want} (${reference[i * 3 + ch]})`;
            }
          }
        }
      }
      assert.equal(mismatches, 0, `${mismatches} of ${3 * plane} values differ; ${first}`);
    });
  }
});

Deno.test("the centre crop's offset rounds half to even, as Python's round()", async (t) => {
  // A column-numbered image of the resize's own size (no resampling): column 0 of the crop names
  // the source column it started at.
  for (
    const [width, left] of [[384, 80], [385, 80], [386, 81], [387, 82], [388, 82], [389, 82]] as const
  ) {
    await t.step(`resized width ${width} crops from column ${left}`, () => {
      const image: RawImage = { width, height: 256, channels: 1, data: new Uint8Array(width * 256) };
      for (let y = 0; y < 256; y++) for (let x = 0; x < width; x++) image.data[y * width + x] = x % 256;
      assert.deepEqual(resizedSize(width, 256), [width, 256]);
      const tensor = preprocess(image);
      assert.equal(tensor[0], normalized(left, 0));
      assert.equal(tensor[CROP_SIZE - 1], normalized((left + CROP_SIZE - 1) % 256, 0));
    });
    await t.step(`resized height ${width} crops from row ${left}`, () => {
      const image: RawImage = { width: 256, height: width, channels: 1, data: new Uint8Array(width * 256) };
      for (let y = 0; y < width; y++) image.data.fill(y % 256, y * 256, (y + 1) * 256);
      const tensor = preprocess(image);
      assert.equal(tensor[0], normalized(left, 0));
      assert.equal(tensor[(CROP_SIZE - 1) * CROP_SIZE], normalized((left + CROP_SIZE - 1) % 256, 0));
    });
  }
});
