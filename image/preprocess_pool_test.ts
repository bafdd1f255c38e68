import assert from "node:assert/strict";
import { fixture } from "../tests/support/helpers.ts";
import { DecodeError } from "./decode.ts";
import { readImageHeader } from "./image_header.ts";
import { InlinePreprocessor, PreprocessPool } from "./preprocess_pool.ts";

Deno.test("the preprocessing worker pool gives the inline tensor, and decode errors as DecodeError", async () => {
  const pool = new PreprocessPool(2);
  try {
    for (const file of ["images/coffee.jpg", "images/camera_gray16.png", "images/chelsea_4000x2660.jpg"]) {
      const bytes = await fixture(file);
      const header = readImageHeader(bytes);
      const [a, b] = await Promise.all([
        pool.prepare(bytes, header),
        new InlinePreprocessor().prepare(bytes, header),
      ]);
      assert.deepEqual(a.tensor, b.tensor, file);
      assert.ok(a.decodeMs > 0 && a.preprocessMs > 0);
      assert.equal(bytes.byteLength > 0, true, "the caller's bytes are not detached");
    }
    const truncated = (await fixture("images/coffee.jpg")).slice(0, 600);
    await assert.rejects(pool.prepare(truncated, readImageHeader(truncated)), DecodeError);
  } finally {
    pool.close();
  }
});

Deno.test("the worker pool applies or ignores EXIF orientation as configured, like the inline path", async () => {
  const bytes = await fixture("images/chelsea_orientation_6.png");
  const header = readImageHeader(bytes);
  for (const orientation of ["apply", "ignore"] as const) {
    const pool = new PreprocessPool(1, { orientation });
    try {
      const [a, b] = await Promise.all([
        pool.prepare(bytes, header),
        new InlinePreprocessor({ orientation }).prepare(bytes, header),
      ]);
      assert.deepEqual(a.tensor, b.tensor, orientation);
    } finally {
      pool.close();
    }
  }
  const [applied, ignored] = await Promise.all(
    (["apply", "ignore"] as const).map((orientation) =>
      new InlinePreprocessor({ orientation }).prepare(bytes, header)
    ),
  );
  assert.notDeepEqual(applied.tensor, ignored.tensor);
});

Deno.test("a pool on the WebAssembly codecs gives those codecs' inline tensor", async () => {
  const pool = new PreprocessPool(1, { codecs: "wasm" });
  try {
    for (const file of ["images/coffee.jpg", "images/chelsea_gray.jpg", "images/coffee.webp"]) {
      const bytes = await fixture(file);
      const header = readImageHeader(bytes);
      const [a, b] = await Promise.all([
        pool.prepare(bytes, header),
        new InlinePreprocessor({ codecs: "wasm" }).prepare(bytes, header),
      ]);
      assert.deepEqual(a.tensor, b.tensor, file);
    }
    // Two JPEG decoders, so not bit-identical: the request reached the one asked for.
    const coffee = await fixture("images/coffee.jpg");
    const native = await new InlinePreprocessor().prepare(coffee, readImageHeader(coffee));
    const wasm = await pool.prepare(coffee, readImageHeader(coffee));
    assert.notDeepEqual(wasm.tensor, native.tensor);
  } finally {
    pool.close();
  }
});
