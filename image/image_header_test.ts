import assert from "node:assert/strict";
import { fixture, manifest } from "../tests/support/helpers.ts";
import { formatList, ImageHeaderError, readImageHeader } from "./image_header.ts";

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
        [ascii("BM\0\0\0\0"), "bmp"],
        [ascii("II*\0\0\0"), "tiff"],
      ] as const
    ) {
      assert.throws(
        () => readImageHeader(bytes),
        (e: unknown) =>
          e instanceof ImageHeaderError && e.kind === "unsupported" && e.detected === name &&
          e.message === `Image format ${name} is not supported; send JPEG, PNG or WebP`,
      );
    }
  });

  await t.step("reads each kind of WebP header: lossy, lossless, extended", async () => {
    for (
      const [file, chunk, width, height, components] of [
        ["images/coffee.webp", "VP8 ", 600, 400, 3],
        ["images/palette.webp", "VP8L", 10, 10, 3],
        ["images/coffee_alpha.webp", "VP8X", 600, 400, 4],
        ["images/chelsea_orientation_8.webp", "VP8X", 300, 451, 3],
      ] as const
    ) {
      const bytes = await fixture(file);
      assert.equal(String.fromCharCode(...bytes.subarray(12, 16)), chunk, file);
      const h = readImageHeader(bytes);
      assert.deepEqual(
        [h.format, h.width, h.height, h.components],
        ["webp", width, height, components],
        file,
      );
    }
  });

  await t.step("a decoder without WebP refuses it as unsupported, naming what it takes", async () => {
    const webp = await fixture("images/coffee.webp");
    assert.throws(
      () => readImageHeader(webp, { formats: ["jpeg", "png"] }),
      (e: unknown) =>
        e instanceof ImageHeaderError && e.kind === "unsupported" && e.detected === "webp" &&
        /send JPEG or PNG$/.test(e.message),
    );
    assert.equal(formatList(["jpeg"]), "JPEG");
    assert.equal(formatList(["jpeg", "png", "webp"]), "JPEG, PNG or WebP");
  });

  await t.step("broken WebP headers are malformed", async () => {
    const lossy = await fixture("images/coffee.webp");
    const lossless = await fixture("images/palette.webp");
    const broken = (bytes: Uint8Array, at: number, value: number) => {
      const copy = bytes.slice();
      copy[at] = value;
      return copy;
    };
    for (
      const bytes of [
        lossy.subarray(0, 20), // cut inside the header
        broken(lossy, 23, 0), // VP8 start code
        broken(lossy, 12, 0x41), // unknown first chunk
        broken(lossless, 20, 0), // VP8L signature
      ]
    ) {
      assert.throws(
        () => readImageHeader(bytes),
        (e: unknown) => e instanceof ImageHeaderError && e.kind === "malformed" && e.detected === "webp",
      );
    }
  });

  await t.step("text is unsupported, not malformed", () => {
    assert.throws(
      () => readImageHeader(ascii("hello world")),
      (e: unknown) =>
        e instanceof ImageHeaderError && e.kind === "unsupported" &&
        e.message === "Body is not an image in a supported format; send JPEG, PNG or WebP",
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
