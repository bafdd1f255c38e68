/**
 * The end-to-end /predict and v2 cases on both inference backends, in process
 * through createApp with the real full-size model: the WASM (edge) profile
 * gives the same API, the same errors, the same telemetry, so it cannot rot
 * while the native profile moves on. Then the two profiles side by side.
 */
import assert from "node:assert/strict";
import { SpanKind } from "@opentelemetry/api";
import {
  BACKENDS,
  captureLogs,
  fixture,
  manifest,
  multipart,
  readyApp,
  sharedClassifier,
} from "./support/helpers.ts";

const RUNTIME = { native: "onnxruntime-node", wasm: "onnxruntime-web" } as const;

const b64 = (bytes: Uint8Array) => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
};
const json = (body: unknown): RequestInit => ({
  method: "POST",
  body: JSON.stringify(body),
  headers: { "content-type": "application/json" },
});

for (const backend of BACKENDS) {
  Deno.test(`end to end on the ${backend} backend`, async (t) => {
    await captureLogs("info");
    const { app, spans, telemetry } = await readyApp({ INFERENCE_BACKEND: backend });
    const coffee = await fixture("images/coffee.jpg");
    const chelsea = await fixture("images/chelsea.jpg");

    await t.step("/info names the backend's runtime", async () => {
      const info = await (await app.request("/info")).json();
      assert.equal(info.model.runtime, RUNTIME[backend]);
      assert.equal(info.config.INFERENCE_BACKEND, backend);
    });

    let top1: number;
    await t.step("POST /predict: multipart and raw give the classifier's own answer", async () => {
      const res = await app.request("/predict", { method: "POST", body: multipart([{ bytes: coffee }]) });
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.top_k.length, 5);
      assert.deepEqual(body.prediction, body.top_k[0]);
      const { format, width, height, bytes } = body.image;
      assert.deepEqual({ format, width, height, bytes }, {
        format: "jpeg",
        width: 600,
        height: 400,
        bytes: coffee.byteLength,
      });
      for (const k of ["read_body", "decode", "preprocess", "inference", "postprocess", "total"]) {
        assert.ok(body.timings_ms[k] >= 0, k);
      }
      // Alone on an idle model, the request waits for nothing: its time is the model's.
      assert.ok(
        body.timings_ms.inference > body.timings_ms.queue_wait,
        `inference ${body.timings_ms.inference} ms, queue_wait ${body.timings_ms.queue_wait} ms`,
      );
      const raw = await (await app.request("/predict", {
        method: "POST",
        body: coffee,
        headers: { "content-type": "image/jpeg" },
      })).json();
      assert.deepEqual(raw.top_k, body.top_k);
      const direct = await (await sharedClassifier(backend)).classify(coffee, 5);
      assert.deepEqual(
        body.top_k.map((c: { class_id: number }) => c.class_id),
        direct.top.map((c) => c.class_id),
      );
      top1 = body.prediction.class_id;
    });

    await t.step("several files answer a list in order, batched together", async () => {
      const res = await app.request("/predict", {
        method: "POST",
        body: multipart([{ bytes: coffee }, { bytes: chelsea }, { bytes: coffee }]),
      });
      assert.equal(res.status, 200);
      const { results } = await res.json();
      assert.deepEqual(results.map((r: { index: number }) => r.index), [0, 1, 2]);
      assert.equal(results[0].prediction.class_id, top1);
      assert.deepEqual(results[2].top_k, results[0].top_k);
      assert.equal(results[1].image.width, 451);
    });

    await t.step("bad input gets the same problem responses", async () => {
      const truncated = coffee.slice(0, 600);
      const cases: Array<[Uint8Array<ArrayBuffer>, number, string]> = [
        [truncated, 422, "undecodable_image"],
        [new TextEncoder().encode("not an image at all"), 415, "unsupported_media_type"],
      ];
      for (const [body, status, code] of cases) {
        const res = await app.request("/predict", { method: "POST", body });
        assert.equal(res.status, status);
        assert.equal(res.headers.get("content-type"), "application/problem+json");
        assert.equal((await res.json()).code, code);
      }
    });

    await t.step("v2: a BYTES image answers [1,1000] logits with /predict's top-1", async () => {
      const res = await app.request(
        "/v2/models/resnet50/infer",
        json({ id: "7", inputs: [{ name: "image", shape: [1], datatype: "BYTES", data: [b64(coffee)] }] }),
      );
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.id, "7");
      assert.deepEqual(body.outputs[0].shape, [1, 1000]);
      const logits: number[] = body.outputs[0].data;
      assert.equal(logits.indexOf(Math.max(...logits)), top1);
    });

    await t.step("v2: an FP32 tensor batch of two, with classification output", async () => {
      const zeros = new Array(2 * 150_528).fill(0);
      const res = await app.request(
        "/v2/models/resnet50/infer",
        json({
          inputs: [{ name: "input", shape: [2, 3, 224, 224], datatype: "FP32", data: zeros }],
          outputs: [{ name: "logits", parameters: { classification: 2 } }],
        }),
      );
      assert.equal(res.status, 200);
      const out = (await res.json()).outputs[0];
      assert.deepEqual(out.shape, [2, 2]);
      assert.equal(out.data[0], out.data[2], "the same input gives the same answer in either batch row");
      const bad = await app.request(
        "/v2/models/resnet50/infer",
        json({ inputs: [{ name: "input", shape: [1, 3, 32, 32], datatype: "FP32", data: [1] }] }),
      );
      assert.equal(bad.status, 400);
      assert.match((await bad.json()).error, /shape \[N,3,224,224\]/);
    });

    await t.step("the same traces and metrics", async () => {
      await telemetry.tracing.forceFlush();
      const all = spans.getFinishedSpans();
      const server = all.find((s) => s.kind === SpanKind.SERVER && s.name === "POST /predict")!;
      const children = all.filter((s) => s.parentSpanContext?.spanId === server.spanContext().spanId);
      assert.deepEqual(
        children.map((s) => s.name),
        ["read_body", "decode", "preprocess", "queue_wait", "inference", "postprocess"],
      );
      const traceId = server.spanContext().traceId;
      const batch = all.find((s) =>
        s.name === "inference_batch" && s.links.some((l) => l.context.traceId === traceId)
      );
      assert.ok(batch, "the batch that served the request links to it");
      const text = await (await app.request("/metrics")).text();
      assert.match(text, /^inference_stage_duration_seconds_count\{stage="inference"\} [1-9]\d*$/m);
      assert.match(text, /^inference_batch_size_count [1-9]\d*$/m);
      assert.match(text, /^requests_rejected_total\{reason="[a-z_]+"\} [1-9]/m);
      assert.match(text, /^model_ready 1$/m);
    });
  });
}

Deno.test("the two profiles side by side", async (t) => {
  await captureLogs("info");
  const native = (await readyApp({ INFERENCE_BACKEND: "native" })).app;
  const wasm = (await readyApp({ INFERENCE_BACKEND: "wasm" })).app;

  await t.step("the same FP32 tensor gives the same logits over v2 (max |Δ| <= 1e-3)", async () => {
    const data = Array.from({ length: 150_528 }, (_, i) => Math.sin(i * 0.013) * 1.5);
    const request = json({ inputs: [{ name: "input", shape: [1, 3, 224, 224], datatype: "FP32", data }] });
    const [a, b] = await Promise.all([native, wasm].map(async (app) => {
      const res = await app.request("/v2/models/resnet50/infer", request);
      assert.equal(res.status, 200);
      return (await res.json()).outputs[0].data as number[];
    }));
    const delta = Math.max(...a.map((v, i) => Math.abs(v - b[i])));
    assert.ok(delta <= 1e-3, `max |Δlogit| ${delta}`);
  });

  await t.step(
    "every fixture photo is served by both, with the same top-1 (decoder and runtime together)",
    async () => {
      const rows: string[] = [];
      let agree = 0;
      const images = await manifest();
      for (const img of images) {
        const body = await fixture(img.file);
        const [a, b] = await Promise.all([native, wasm].map(async (app) => {
          const res = await app.request("/predict", { method: "POST", body });
          assert.equal(res.status, 200, img.file);
          return (await res.json()).prediction as { class_id: number; confidence: number };
        }));
        if (a.class_id === b.class_id) agree++;
        rows.push(
          `${img.file}: ${a.class_id} (${a.confidence.toFixed(4)}) / ${b.class_id} (${
            b.confidence.toFixed(4)
          })`,
        );
      }
      console.log(`top-1 agreement native/wasm profile: ${agree}/${images.length}\n  ${rows.join("\n  ")}`);
      assert.equal(agree, images.length, rows.join("\n"));
    },
  );
});
