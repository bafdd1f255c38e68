import assert from "node:assert/strict";
import { fixture } from "../tests/support/helpers.ts";
import { DecodeError, decodeImage } from "./decode.ts";
import { readImageHeader } from "./image_header.ts";

Deno.test("WebP decoding", async (t) => {
  await t.step("an animation decodes to its first frame, on the canvas its header declares", async () => {
    const bytes = await fixture("images/animated.webp");
    const header = readImageHeader(bytes);
    assert.deepEqual([header.format, header.width, header.height], ["webp", 64, 48]);
    const image = await decodeImage(bytes, header);
    assert.deepEqual([image.width, image.height], [64, 48]);
    // The first frame is red, the second blue.
    assert.deepEqual([...image.data.subarray(0, 3)], [255, 0, 0]);
  });

  await t.step(
    "an extended file whose canvas understates its frame is refused, not decoded larger",
    async () => {
      const bytes = (await fixture("images/coffee_alpha.webp")).slice();
      // VP8X canvas 600x400 -> 300x200: the pixel limit is checked on the canvas, so a frame larger than it
      // must not decode.
      bytes.set([299 & 0xff, 299 >> 8, 0, 199, 0, 0], 24);
      const header = readImageHeader(bytes);
      assert.deepEqual([header.width, header.height], [300, 200]);
      await assert.rejects(decodeImage(bytes, header), DecodeError);
    },
  );
});
