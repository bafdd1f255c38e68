/**
 * Each configured request limit through the real app (createApp, the real
 * model): at the limit, one below and one above. An off-by-one in any of them
 * (`>=` for `>`) is a request wrongly refused or a flood wrongly let in.
 */
import assert from "node:assert/strict";
import { fixture, multipart, readyApp } from "../tests/support/helpers.ts";
import { readImageHeader } from "../image/image_header.ts";

const coffee = await fixture("images/coffee.jpg");
const { width, height } = readImageHeader(coffee);
const PIXELS = width * height; // 600 x 400 = 240000

async function status(res: Response): Promise<[number, string | undefined]> {
  const body = await res.json();
  return [res.status, body.code];
}

/** A body that streams in chunks with no Content-Length: the limit must hold while reading. */
function streamed(bytes: Uint8Array, chunk = 4096): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + chunk));
      offset += chunk;
    },
  });
}

Deno.test("MAX_IMAGE_PIXELS: an image of exactly the limit is served, one pixel less is refused", async (t) => {
  assert.equal(PIXELS, 240_000);
  for (
    const [limit, expected] of [
      [PIXELS - 1, [422, "too_many_pixels"]],
      [PIXELS, [200, undefined]],
      [PIXELS + 1, [200, undefined]],
    ] as const
  ) {
    await t.step(`${width}x${height} with MAX_IMAGE_PIXELS=${limit}`, async () => {
      const { app } = await readyApp({ MAX_IMAGE_PIXELS: String(limit) });
      assert.deepEqual(
        await status(await app.request("/predict", { method: "POST", body: coffee })),
        expected,
      );
      // The v2 image model shares the check (the v2 protocol answers every refusal 400, with {"error"}).
      const v2 = await app.request("/v2/models/resnet50-image/infer", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          inputs: [{ name: "image", datatype: "BYTES", shape: [1], data: [coffee.toBase64()] }],
        }),
      });
      const answer = await v2.json();
      if (expected[0] === 200) assert.equal(v2.status, 200, JSON.stringify(answer));
      else {
        assert.equal(v2.status, 400);
        assert.match(answer.error, new RegExp(`\\(${PIXELS} pixels\\); the limit is ${limit} pixels`));
      }
    });
  }
});

Deno.test("MAX_BODY_BYTES: a body of exactly the limit is read, one byte more is refused", async (t) => {
  const n = coffee.byteLength;
  for (
    const [limit, expected] of [
      [n - 1, [413, "payload_too_large"]],
      [n, [200, undefined]],
      [n + 1, [200, undefined]],
    ] as const
  ) {
    await t.step(`${n} bytes with MAX_BODY_BYTES=${limit}`, async () => {
      const { app } = await readyApp({ MAX_BODY_BYTES: String(limit) });
      const declared = await app.request("/predict", {
        method: "POST",
        body: coffee,
        headers: { "content-length": String(n) },
      });
      assert.deepEqual(await status(declared), expected, "declared by Content-Length");
      const chunked = await app.request("/predict", { method: "POST", body: streamed(coffee) });
      assert.deepEqual(await status(chunked), expected, "streamed without a length");
    });
  }
});

Deno.test("MAX_IMAGES_PER_REQUEST: at the limit served, one above refused before any is decoded", async (t) => {
  const LIMIT = 2;
  const { app } = await readyApp({ MAX_IMAGES_PER_REQUEST: String(LIMIT) });
  for (const files of [LIMIT - 1, LIMIT, LIMIT + 1]) {
    await t.step(`${files} files`, async () => {
      const form = multipart(Array.from({ length: files }, () => ({ bytes: coffee })));
      const res = await app.request("/predict", { method: "POST", body: form });
      const body = await res.json();
      if (files <= LIMIT) {
        assert.equal(res.status, 200);
        // One file answers as a single prediction, several as a list.
        if (files > 1) assert.equal(body.results.length, files);
        else assert.equal(body.image.width, width);
      } else {
        assert.deepEqual([res.status, body.code], [400, "too_many_images"]);
        assert.match(body.detail, new RegExp(`${LIMIT}`));
      }

      const v2 = await app.request("/v2/models/resnet50-image/infer", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          inputs: [{
            name: "image",
            datatype: "BYTES",
            shape: [files],
            data: Array.from({ length: files }, () => coffee.toBase64()),
          }],
        }),
      });
      const answer = await v2.json();
      if (files <= LIMIT) {
        assert.equal(v2.status, 200, JSON.stringify(answer));
        assert.deepEqual(answer.outputs[0].shape[0], files);
      } else {
        assert.equal(v2.status, 400);
        assert.equal(typeof answer.error, "string");
      }
    });
  }
});

Deno.test("top_k: 1 and the largest TOP_K accepted, 0 and one more refused", async () => {
  const { app, config } = await readyApp();
  for (const k of [1, 2, 19, 20]) {
    const res = await app.request(`/predict?top_k=${k}`, { method: "POST", body: coffee });
    assert.equal(res.status, 200, `top_k=${k}`);
    assert.equal((await res.json()).top_k.length, k);
  }
  for (const k of [0, 21, -1]) {
    const res = await app.request(`/predict?top_k=${k}`, { method: "POST", body: coffee });
    assert.deepEqual(await status(res), [400, "invalid_parameter"], `top_k=${k}`);
  }
  // The default is TOP_K's.
  const res = await app.request("/predict", { method: "POST", body: coffee });
  assert.equal((await res.json()).top_k.length, config.TOP_K);
});
