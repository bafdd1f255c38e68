import assert from "node:assert/strict";
import { ModelState } from "../model/runtime/state.ts";
import {
  brokenRunner,
  captureLogs,
  fixture,
  multipart,
  readyApp,
  sharedClassifier,
  stateWithRunner,
  testConfig,
  testTelemetry,
} from "../tests/support/helpers.ts";
import { createApp } from "./app.ts";

const PROBLEM = "application/problem+json";

async function expectProblem(res: Response, status: number, code: string): Promise<Record<string, unknown>> {
  assert.equal(
    res.status,
    status,
    `expected ${status} ${code}, got ${res.status}: ${await res.clone().text()}`,
  );
  assert.equal(res.headers.get("content-type"), PROBLEM);
  const body = await res.json();
  assert.equal(body.code, code);
  assert.equal(body.status, status);
  assert.equal(typeof body.title, "string");
  assert.equal(typeof body.detail, "string");
  assert.ok(!JSON.stringify(body).includes("    at "), "no stack trace in the body");
  return body;
}

/** A PNG whose IHDR declares width x height, with nothing decodable behind it. */
function pngDeclaring(width: number, height: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(64);
  b.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  const v = new DataView(b.buffer);
  v.setUint32(16, width);
  v.setUint32(20, height);
  b.set([8, 2, 0, 0, 0], 24);
  return b;
}

Deno.test("POST /predict", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const coffee = await fixture("images/coffee.jpg");

  await t.step("answers a multipart upload with top-5 and every documented field", async () => {
    const res = await app.request("/predict", { method: "POST", body: multipart([{ bytes: coffee }]) });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(typeof body.request_id, "string");
    assert.equal(res.headers.get("x-request-id"), body.request_id);
    assert.deepEqual(Object.keys(body.model).sort(), ["name", "precision", "sha256", "version", "weights"]);
    assert.equal(body.model.name, "resnet50");
    assert.equal(body.model.precision, "fp32");
    assert.equal(body.weights, "synthetic");
    assert.match(body.warning, /synthetic/);
    assert.equal(body.top_k.length, 5);
    assert.deepEqual(body.prediction, body.top_k[0]);
    for (let i = 1; i < 5; i++) assert.ok(body.top_k[i - 1].confidence >= body.top_k[i].confidence);
    assert.equal(typeof body.prediction.class_name, "string");
    assert.ok(body.prediction.confidence > 0 && body.prediction.confidence <= 1);
    assert.deepEqual(body.image, {
      format: "jpeg",
      width: 600,
      height: 400,
      bytes: coffee.byteLength,
      orientation: 1,
    });
    for (const k of ["read_body", "decode", "preprocess", "inference", "postprocess", "total"]) {
      assert.ok(body.timings_ms[k] >= 0, k);
    }
    assert.equal(body.inference_time_ms, body.timings_ms.inference);
  });

  await t.step("gives the same answer for a raw body as for multipart", async () => {
    const a = await (await app.request("/predict", { method: "POST", body: multipart([{ bytes: coffee }]) }))
      .json();
    const b = await (await app.request("/predict", {
      method: "POST",
      body: coffee,
      headers: { "content-type": "image/jpeg" },
    })).json();
    assert.deepEqual(a.top_k, b.top_k);
  });

  await t.step(
    "classifies what `curl --data-binary @photo` sends without -H: the bytes decide, not the declared form type",
    async () => {
      // Header for header what curl 7.88 sends for `curl --data-binary @coffee.jpg URL/predict`
      // (captured from a real curl on a raw socket): the file unchanged, declared as a urlencoded form.
      const curl = {
        "user-agent": "curl/7.88.1",
        accept: "*/*",
        "content-type": "application/x-www-form-urlencoded",
      };
      const expected = await (await app.request("/predict", {
        method: "POST",
        body: coffee,
        headers: { "content-type": "image/jpeg" },
      })).json();
      const res = await app.request("/predict", { method: "POST", body: coffee, headers: curl });
      assert.equal(res.status, 200, await res.clone().text());
      const body = await res.json();
      assert.deepEqual(body.top_k, expected.top_k);
      assert.equal(body.image.format, "jpeg");
      for (const [file, format] of [["coffee_alpha.png", "png"], ["coffee.webp", "webp"]]) {
        const other = await app.request("/predict", {
          method: "POST",
          body: await fixture(`images/${file}`),
          headers: curl,
        });
        assert.equal(other.status, 200, file);
        assert.equal((await other.json()).image.format, format);
      }
      // An image in a format we do not read is still judged as an image: 415, not "send a form".
      const gif = new TextEncoder().encode("GIF89a\x01\x00\x01\x00\x80\x00\x00");
      await expectProblem(
        await app.request("/predict", { method: "POST", body: gif, headers: curl }),
        415,
        "unsupported_media_type",
      );
    },
  );

  await t.step(
    "400 for a form that is not an image (curl -d a=b), naming both ways to send one",
    async () => {
      const res = await app.request("/predict", {
        method: "POST",
        body: "file=coffee.jpg",
        headers: { "content-type": "application/x-www-form-urlencoded" },
      });
      const body = await expectProblem(res, 400, "bad_request");
      assert.ok(String(body.detail).includes("-H 'content-type: image/jpeg'"), String(body.detail));
      assert.ok(String(body.detail).includes("-F file=@photo.jpg"), String(body.detail));
      // An empty form is a missing file, as any empty body is.
      await expectProblem(
        await app.request("/predict", {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
        }),
        400,
        "missing_file",
      );
    },
  );

  await t.step("the prediction matches the classifier run directly", async () => {
    const direct = await (await sharedClassifier()).classify(coffee, 5);
    const body = await (await app.request("/predict", { method: "POST", body: coffee })).json();
    assert.deepEqual(
      body.top_k.map((c: { class_id: number }) => c.class_id),
      direct.top.map((c) => c.class_id),
    );
  });

  await t.step("?top_k= overrides TOP_K", async () => {
    const res = await app.request("/predict?top_k=12", { method: "POST", body: coffee });
    assert.equal((await res.json()).top_k.length, 12);
    for (const bad of ["0", "21", "abc", "1.5", "-3"]) {
      await expectProblem(
        await app.request(`/predict?top_k=${bad}`, { method: "POST", body: coffee }),
        400,
        "invalid_parameter",
      );
    }
  });

  await t.step("every fixture format is served", async () => {
    for (
      const f of ["camera_gray.png", "coffee_alpha.png", "palette.png", "chelsea_cmyk.jpg", "astronaut.png"]
    ) {
      const res = await app.request("/predict", { method: "POST", body: await fixture(`images/${f}`) });
      assert.equal(res.status, 200, f);
      await res.body?.cancel();
    }
  });

  await t.step("400 for a multipart form without a file", async () => {
    const form = new FormData();
    form.append("image", "not a file");
    await expectProblem(await app.request("/predict", { method: "POST", body: form }), 400, "missing_file");
    const textFile = new FormData();
    textFile.append("file", "just text");
    await expectProblem(
      await app.request("/predict", { method: "POST", body: textFile }),
      400,
      "missing_file",
    );
  });

  await t.step("400 for an empty body and for a broken multipart body", async () => {
    await expectProblem(await app.request("/predict", { method: "POST" }), 400, "missing_file");
    await expectProblem(
      await app.request("/predict", {
        method: "POST",
        body: "--xyz\r\ngarbage",
        headers: { "content-type": "multipart/form-data" },
      }),
      400,
      "bad_request",
    );
  });

  await t.step(
    "413 for a body over MAX_BODY_BYTES, refused by Content-Length and while streaming",
    async () => {
      const { app: small } = await readyApp({ MAX_BODY_BYTES: "4096" });
      await expectProblem(
        await small.request("/predict", { method: "POST", body: coffee }),
        413,
        "payload_too_large",
      );
      // A streamed body with no Content-Length is cut off as it crosses the limit.
      let pulled = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          pulled += 1024;
          if (pulled > 1024 * 1024) controller.close();
          else controller.enqueue(new Uint8Array(1024));
        },
      });
      await expectProblem(
        await small.request("/predict", { method: "POST", body: stream }),
        413,
        "payload_too_large",
      );
      assert.ok(pulled < 64 * 1024, `read ${pulled} bytes of an oversize stream`);
    },
  );

  await t.step("415 for formats other than JPEG/PNG, judged by magic bytes", async () => {
    const gif = new TextEncoder().encode("GIF89a\x01\x00\x01\x00\x80\x00\x00");
    const body = await expectProblem(
      await app.request("/predict", { method: "POST", body: gif, headers: { "content-type": "image/jpeg" } }),
      415,
      "unsupported_media_type",
    );
    assert.match(String(body.detail), /gif/);
    await expectProblem(
      await app.request("/predict", {
        method: "POST",
        body: '{"a":1}',
        headers: { "content-type": "image/png" },
      }),
      415,
      "unsupported_media_type",
    );
    // A real JPEG declared as text is still a JPEG.
    const res = await app.request("/predict", {
      method: "POST",
      body: coffee,
      headers: { "content-type": "text/plain" },
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });

  await t.step("422 for a truncated JPEG and a corrupt PNG", async () => {
    await expectProblem(
      await app.request("/predict", { method: "POST", body: coffee.slice(0, 600) }),
      422,
      "undecodable_image",
    );
    const png = (await fixture("images/astronaut.png")).slice(0, 5000);
    await expectProblem(
      await app.request("/predict", { method: "POST", body: png }),
      422,
      "undecodable_image",
    );
  });

  await t.step("422 for an image over MAX_IMAGE_PIXELS, refused from its header", async () => {
    const body = await expectProblem(
      await app.request("/predict", { method: "POST", body: pngDeclaring(100_000, 100_000) }),
      422,
      "too_many_pixels",
    );
    assert.match(String(body.detail), /100000x100000/);
    const { app: tight } = await readyApp({ MAX_IMAGE_PIXELS: "1000" });
    await expectProblem(
      await tight.request("/predict", { method: "POST", body: coffee }),
      422,
      "too_many_pixels",
    );
  });

  await t.step("405 for other methods on /predict and 404 elsewhere", async () => {
    const res = await app.request("/predict");
    await expectProblem(res, 405, "method_not_allowed");
    assert.equal(res.headers.get("allow"), "POST");
    await expectProblem(await app.request("/nope"), 404, "not_found");
  });

  await t.step("keeps answering after bad input", async () => {
    const res = await app.request("/predict", { method: "POST", body: coffee });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });
});

Deno.test("health, readiness and info", async (t) => {
  await captureLogs("info");
  const config = testConfig();

  await t.step("/ready is 503 while loading, /health is 200", async () => {
    const state = new ModelState();
    const app = createApp({ config, state, ...testTelemetry(config) });
    assert.equal((await app.request("/health")).status, 200);
    const ready = await app.request("/ready");
    assert.equal(ready.status, 503);
    assert.equal((await ready.json()).status, "loading");
    await expectProblem(
      await app.request("/predict", { method: "POST", body: await fixture("images/coffee.jpg") }),
      503,
      "not_ready",
    );
  });

  await t.step("/ready is 200 when ready and 503 again while draining", async () => {
    const { app, state } = await readyApp();
    assert.equal((await app.request("/ready")).status, 200);
    state.drain();
    assert.equal((await app.request("/ready")).status, 503);
  });

  await t.step("/info announces synthetic weights and shows the effective config", async () => {
    const { app } = await readyApp();
    const info = await (await app.request("/info")).json();
    assert.equal(info.model.weights, "synthetic");
    assert.match(info.model.warning, /synthetic/);
    assert.equal(info.model.input.name, "input");
    assert.deepEqual(info.model.input.shape, ["N", 3, 224, 224]);
    assert.equal(info.model.output.softmax_applied_by, "gateway");
    assert.equal(info.config.TOP_K, 5);
    assert.equal(typeof info.deno, "string");
  });

  await t.step("a well-formed X-Request-ID is honoured, a hostile one replaced", async () => {
    const { app } = await readyApp();
    const ok = await app.request("/health", { headers: { "x-request-id": "abc-123" } });
    assert.equal(ok.headers.get("x-request-id"), "abc-123");
    const bad = await app.request("/health", { headers: { "x-request-id": "a b <script>" } });
    assert.match(bad.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);
  });
});

Deno.test("unexpected errors are 500 problems without internals, and logged", async () => {
  const logs = await captureLogs("info");
  const config = testConfig();
  const app = createApp({
    config,
    state: await stateWithRunner(await brokenRunner()),
    ...testTelemetry(config),
  });
  const res = await app.request("/predict", { method: "POST", body: await fixture("images/coffee.jpg") });
  const body = await expectProblem(res, 500, "internal");
  assert.ok(!String(body.detail).includes("deadbeef"));
  assert.ok(logs.some((r) => r.level === "error" && JSON.stringify(r.properties).includes("deadbeef")));
});

Deno.test("POST /predict with several files answers a list in upload order; a bad image fails only its entry", async () => {
  await captureLogs("info");
  const { app } = await readyApp({ MAX_IMAGES_PER_REQUEST: "3" });
  const coffee = await fixture("images/coffee.jpg");
  const chelsea = await fixture("images/chelsea.jpg");
  const res = await app.request("/predict?top_k=2", {
    method: "POST",
    body: multipart([{ bytes: coffee }, { bytes: new TextEncoder().encode("GIF89a....") }, {
      bytes: chelsea,
    }]),
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.weights, "synthetic");
  assert.equal(body.results.length, 3);
  assert.deepEqual(body.results.map((r: { index: number }) => r.index), [0, 1, 2]);
  assert.equal(body.results[0].image.width, 600);
  assert.equal(body.results[0].top_k.length, 2);
  assert.equal(body.results[1].error.code, "unsupported_media_type");
  assert.equal(body.results[1].error.status, 415);
  assert.equal(body.results[2].image.width, 451);
  const single = await (await app.request("/predict?top_k=2", { method: "POST", body: coffee })).json();
  assert.deepEqual(body.results[0].top_k, single.top_k, "same answer as a single upload");

  const tooMany = await app.request("/predict", {
    method: "POST",
    body: multipart([{ bytes: coffee }, { bytes: coffee }, { bytes: coffee }, { bytes: coffee }]),
  });
  await expectProblem(tooMany, 400, "too_many_images");
});
