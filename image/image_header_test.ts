import assert from "node:assert/strict";
import { fixture, manifest } from "../tests/helpers.ts";
import { ImageHeaderError, readImageHeader } from "./image_header.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

Deno.test("readImageHeader", async (t) => {
  for (const img of await manifest()) {
    await t.step(`reads ${img.file} without decoding`, async () => {
      const h = readImageHeader(await fixture(img.file));
      assert.equal(h.format, img.format.toLowerCase());
      assert.equal(h.width, img.width);
      assert.equal(h.height, img.height);
      if (h.format === "jpeg") assert.equal(h.progressive, img.progressive);
    });
  }

  await t.step("names formats it recognises but does not serve", () => {
    for (
      const [bytes, name] of [
        [ascii("GIF89a\x01\x00\x01\x00"), "gif"],
        [ascii("RIFF\0\0\0\0WEBPVP8 "), "webp"],
        [ascii("BM\0\0\0\0"), "bmp"],
        [ascii("II*\0\0\0"), "tiff"],
      ] as const
    ) {
      assert.throws(
        () => readImageHeader(bytes),
        (e: unknown) => e instanceof ImageHeaderError && e.kind === "unsupported" && e.detected === name,
      );
    }
  });

  await t.step("text is unsupported, not malformed", () => {
    assert.throws(
      () => readImageHeader(ascii("hello world")),
      (e: unknown) => e instanceof ImageHeaderError && e.kind === "unsupported",
    );
    assert.throws(
      () => readImageHeader(new Uint8Array(0)),
      (e: unknown) => e instanceof ImageHeaderError && e.kind === "unsupported",
    );
  });

  await t.step("a JPEG cut before its frame header is malformed", async () => {
    const jpeg = await fixture("images/chelsea.jpg");
    assert.throws(
      () => readImageHeader(jpeg.subarray(0, 20)),
      (e: unknown) => e instanceof ImageHeaderError && e.kind === "malformed",
    );
  });

  await t.step("a PNG with a zero width is malformed", async () => {
    const png = (await fixture("images/palette.png")).slice();
    png.fill(0, 16, 20);
    assert.throws(
      () => readImageHeader(png),
      (e: unknown) => e instanceof ImageHeaderError && e.kind === "malformed",
    );
  });
});
