/** POST /predict with photos as people send them: WebP, and phone photos stored sideways with an EXIF tag. */
import assert from "node:assert/strict";
import { captureLogs, fixture, readyApp } from "../tests/support/helpers.ts";

async function predict(app: Awaited<ReturnType<typeof readyApp>>["app"], bytes: Uint8Array<ArrayBuffer>) {
  const res = await app.request("/predict", { method: "POST", body: bytes });
  return { status: res.status, type: res.headers.get("content-type"), body: await res.json() };
}

Deno.test("POST /predict takes photos as clients send them", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();

  await t.step("WebP: lossy, lossless and with alpha", async () => {
    for (
      const [file, width] of [["coffee.webp", 600], ["palette.webp", 10], ["coffee_alpha.webp", 600]] as const
    ) {
      const { status, body } = await predict(app, await fixture(`images/${file}`));
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.image.format, "webp");
      assert.equal(body.image.width, width);
      assert.equal(body.top_k.length, 5);
    }
  });

  await t.step("a WebP over the pixel limit is refused from its header, before decoding", async () => {
    const { app: small } = await readyApp({ MAX_IMAGE_PIXELS: "100000" });
    const { status, type, body } = await predict(small, await fixture("images/coffee.webp"));
    assert.equal(status, 422);
    assert.equal(type, "application/problem+json");
    assert.equal(body.code, "too_many_pixels");
    assert.match(body.detail, /600x400 \(240000 pixels\); the limit is 100000 pixels/);
  });

  await t.step("a truncated WebP is undecodable, and the server stays healthy", async () => {
    const { status, body } = await predict(app, (await fixture("images/coffee.webp")).slice(0, 4000));
    assert.equal(status, 422);
    assert.equal(body.code, "undecodable_image");
    assert.equal((await predict(app, await fixture("images/coffee.webp"))).status, 200);
  });

  await t.step("formats it does not read get 415 with the accepted list", async () => {
    const { status, body } = await predict(
      app,
      new TextEncoder().encode("GIF89a\x01\x00\x01\x00\x80\x00\x00"),
    );
    assert.equal(status, 415);
    assert.equal(body.detail, "Image format gif is not supported; send JPEG, PNG or WebP");
  });

  // The PNG stores chelsea.jpg's decoded pixels turned sideways, losslessly, with Orientation 6: turned
  // upright it is exactly the photo libjpeg-turbo decodes from chelsea.jpg, so the answers are equal.
  const upright = (await predict(app, await fixture("images/chelsea.jpg"))).body;
  const sideways = await fixture("images/chelsea_orientation_6.png");

  await t.step("EXIF_ORIENTATION=apply (default): a sideways photo answers as the upright one", async () => {
    const { status, body } = await predict(app, sideways);
    assert.equal(status, 200);
    assert.deepEqual(body.top_k, upright.top_k);
    // The image as stored, so the numbers match what the client sent, and the tag that was applied.
    assert.deepEqual([body.image.width, body.image.height, body.image.orientation], [300, 451, 6]);
  });

  await t.step("EXIF_ORIENTATION=ignore: classified as stored, as torchvision would", async () => {
    const { app: ignoring } = await readyApp({ EXIF_ORIENTATION: "ignore" });
    const { status, body } = await predict(ignoring, sideways);
    assert.equal(status, 200);
    assert.notDeepEqual(body.top_k, upright.top_k);
  });
});
