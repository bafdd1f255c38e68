/**
 * The Open Inference Protocol endpoints, checked field by field against the
 * protocol specification's request and response examples (written out from
 * the spec's text), with the real model.
 */
import assert from "node:assert/strict";
import { decodeImage } from "../image/decode.ts";
import { readImageHeader } from "../image/image_header.ts";
import { preprocess } from "../image/preprocess.ts";
import { ModelState } from "../model/state.ts";
import { captureLogs, fixture, readyApp, testConfig, testTelemetry } from "../tests/helpers.ts";
import { createApp } from "./app.ts";
import { JPEG_MIN_DECODE_SHORT_SIDE } from "../image/prepare.ts";

const b64 = (bytes: Uint8Array) => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
};
const post = (
  app: { request: (p: string, i: RequestInit) => Response | Promise<Response> },
  path: string,
  body: unknown,
) =>
  app.request(path, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });

async function expectError(res: Response, status: number, pattern: RegExp) {
  assert.equal(res.status, status, await res.clone().text());
  assert.equal(res.headers.get("content-type"), "application/json");
  const body = await res.json();
  assert.deepEqual(Object.keys(body), ["error"], "the protocol's error body");
  assert.match(body.error, pattern);
}

Deno.test("Open Inference Protocol v2", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const coffee = await fixture("images/coffee.jpg");
  const meta = await (await app.request("/v2/models/resnet50")).json();
  const version = meta.versions[0];

  await t.step("server metadata: name, version, extensions", async () => {
    const res = await app.request("/v2");
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.deepEqual(Object.keys(body).sort(), ["extensions", "name", "version"]);
    assert.equal(body.name, "inference-gateway");
    assert.ok(body.extensions.includes("classification"));
  });

  await t.step("health: live and ready are 200 with an empty body", async () => {
    for (const path of ["/v2/health/live", "/v2/health/ready", "/v2/models/resnet50/ready"]) {
      const res = await app.request(path);
      assert.equal(res.status, 200, path);
      assert.equal(await res.text(), "");
    }
    assert.equal((await app.request(`/v2/models/resnet50/versions/${version}/ready`)).status, 200);
  });

  await t.step("readiness is a 4xx while the model loads", async () => {
    const config = testConfig();
    const loading = createApp({ config, state: new ModelState(), ...testTelemetry(config) });
    assert.equal((await loading.request("/v2/health/ready")).status, 400);
    assert.equal((await loading.request("/v2/health/live")).status, 200);
  });

  await t.step("model metadata: name, versions, platform, inputs and outputs with datatype and shape", () => {
    assert.deepEqual(Object.keys(meta).sort(), [
      "inputs",
      "name",
      "outputs",
      "parameters",
      "platform",
      "versions",
    ]);
    assert.equal(meta.name, "resnet50");
    assert.deepEqual(meta.parameters, { precision: "fp32", weights: "synthetic" });
    assert.match(version, /^[0-9a-f]{12}$/);
    assert.deepEqual(meta.inputs, [
      { name: "input", datatype: "FP32", shape: [-1, 3, 224, 224] },
      { name: "image", datatype: "BYTES", shape: [-1] },
    ]);
    assert.deepEqual(meta.outputs, [{ name: "logits", datatype: "FP32", shape: [-1, 1000] }]);
  });

  await t.step("unknown model and version answer 404 with an error body", async () => {
    await expectError(await app.request("/v2/models/mymodel"), 404, /Unknown model "mymodel"/);
    await expectError(await app.request("/v2/models/resnet50/versions/2"), 404, /no version "2"/);
    await expectError(await post(app, "/v2/models/mymodel/infer", {}), 404, /Unknown model/);
  });

  await t.step(
    "the specification's example request is refused clearly (its tensors do not fit this model)",
    async () => {
      // From the specification's "Inference Request Examples", verbatim.
      const specExample = {
        id: "42",
        inputs: [
          { name: "input0", shape: [2, 2], datatype: "UINT32", data: [1, 2, 3, 4] },
          { name: "input1", shape: [3], datatype: "BOOL", data: [true] },
        ],
        outputs: [{ name: "output0" }],
      };
      await expectError(await post(app, "/v2/models/resnet50/infer", specExample), 400, /exactly one input/);
      specExample.inputs.pop();
      await expectError(
        await post(app, "/v2/models/resnet50/infer", specExample),
        400,
        /Unknown input "input0"/,
      );
    },
  );

  let reference: number;
  await t.step(
    "a BYTES image answers the spec's response shape: id echoed, model, outputs with shape and data",
    async () => {
      const res = await post(app, "/v2/models/resnet50/infer", {
        id: "42",
        inputs: [{ name: "image", shape: [1], datatype: "BYTES", data: [b64(coffee)] }],
        outputs: [{ name: "logits" }],
      });
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.deepEqual(Object.keys(body).sort(), ["id", "model_name", "model_version", "outputs"]);
      assert.equal(body.id, "42");
      assert.equal(body.model_name, "resnet50");
      assert.equal(body.model_version, version);
      assert.equal(body.outputs.length, 1);
      const out = body.outputs[0];
      assert.equal(out.name, "logits");
      assert.equal(out.datatype, "FP32");
      assert.deepEqual(out.shape, [1, 1000]);
      assert.equal(out.data.length, 1000);
      reference = out.data.indexOf(Math.max(...out.data));
    },
  );

  await t.step("tensor input and BYTES input give /predict's top-1 for the same photo", async () => {
    const predict = await (await app.request("/predict", { method: "POST", body: coffee })).json();
    assert.equal(reference, predict.prediction.class_id);
    const tensor = preprocess(
      await decodeImage(coffee, readImageHeader(coffee), { minShortSide: JPEG_MIN_DECODE_SHORT_SIDE }),
    );
    const res = await post(app, "/v2/models/resnet50/infer", {
      inputs: [{ name: "input", shape: [1, 3, 224, 224], datatype: "FP32", data: Array.from(tensor) }],
      outputs: [{ name: "logits", parameters: { classification: 3 } }],
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.id, undefined, "no id when none was sent");
    const out = body.outputs[0];
    assert.equal(out.datatype, "BYTES");
    assert.deepEqual(out.shape, [1, 3]);
    for (const s of out.data) assert.match(s, /^[0-9.e-]+:\d+:.+$/);
    assert.equal(Number(out.data[0].split(":")[1]), predict.prediction.class_id);
    assert.equal(out.data[0].split(":").slice(2).join(":"), predict.prediction.class_name);
  });

  await t.step("nested tensor data is accepted as well as flat", async () => {
    const tensor = preprocess(
      await decodeImage(coffee, readImageHeader(coffee), { minShortSide: JPEG_MIN_DECODE_SHORT_SIDE }),
    );
    const nested = [
      [0, 1, 2].map((c) =>
        Array.from(
          { length: 224 },
          (_, y) => Array.from(tensor.subarray(c * 50176 + y * 224, c * 50176 + (y + 1) * 224)),
        )
      ),
    ];
    const res = await post(app, "/v2/models/resnet50/infer", {
      inputs: [{ name: "input", shape: [1, 3, 224, 224], datatype: "FP32", data: nested }],
      outputs: [{ name: "logits", parameters: { classification: 1 } }],
    });
    assert.equal(res.status, 200);
    assert.equal(Number((await res.json()).outputs[0].data[0].split(":")[1]), reference);
  });

  await t.step("a batch of two images answers [2,1000]", async () => {
    const chelsea = await fixture("images/chelsea.jpg");
    const res = await post(app, "/v2/models/resnet50/infer", {
      inputs: [{ name: "image", shape: [2], datatype: "BYTES", data: [b64(coffee), b64(chelsea)] }],
    });
    const body = await res.json();
    assert.deepEqual(body.outputs[0].shape, [2, 1000]);
    assert.equal(body.outputs[0].data.length, 2000);
  });

  await t.step("every malformed request answers 400 with an error body", async () => {
    const infer = (input: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      post(app, "/v2/models/resnet50/infer", { inputs: [input], ...extra });
    const img = { name: "image", shape: [1], datatype: "BYTES", data: [b64(coffee)] };
    await expectError(await post(app, "/v2/models/resnet50/infer", "{not json"), 400, /not valid JSON/);
    await expectError(
      await post(app, "/v2/models/resnet50/infer", { inputs: [] }),
      400,
      /Invalid inference request at inputs/,
    );
    await expectError(
      await infer({ name: "input", shape: [1, 3, 32, 32], datatype: "FP32", data: [1] }),
      400,
      /shape \[N,3,224,224\], got \[1,3,32,32\]/,
    );
    await expectError(
      await infer({ name: "input", shape: [1, 3, 224, 224], datatype: "INT32", data: [1] }),
      400,
      /must be FP32/,
    );
    await expectError(
      await infer({ name: "input", shape: [1, 3, 224, 224], datatype: "FP32", data: [1, 2, 3] }),
      400,
      /has 3 values; shape \[1,3,224,224\] needs 150528/,
    );
    await expectError(
      await infer({
        name: "input",
        shape: [1, 3, 224, 224],
        datatype: "FP32",
        data: new Array(150528).fill("x"),
      }),
      400,
      /not a finite number/,
    );
    await expectError(
      await infer({ ...img, data: ["***not base64***"] }),
      400,
      /image 0: element is not valid base64/,
    );
    await expectError(await infer({ ...img, datatype: "FP32" }), 400, /must be BYTES/);
    await expectError(await infer({ ...img, shape: [2] }), 400, /has 1 elements; its shape says 2/);
    await expectError(
      await infer({ ...img, data: [b64(new TextEncoder().encode("GIF89a..."))] }),
      400,
      /image 0: Image format gif/,
    );
    await expectError(
      await infer({ ...img, data: [b64(coffee.slice(0, 500))] }),
      400,
      /image 0: .*(JPEG|decode)/i,
    );
    await expectError(
      await infer({ ...img, shape: [9], data: new Array(9).fill(b64(coffee)) }),
      400,
      /Batch size must be from 1 to 8/,
    );
    await expectError(
      await infer(img, { outputs: [{ name: "probabilities" }] }),
      400,
      /Unknown output "probabilities"/,
    );
    await expectError(
      await infer(img, { outputs: [{ name: "logits", parameters: { classification: 0 } }] }),
      400,
      /Invalid inference request at outputs/,
    );
  });

  await t.step("v2 requests go through the same middleware and metrics", async () => {
    const res = await post(app, "/v2/models/resnet50/infer", {
      inputs: [{ name: "image", shape: [1], datatype: "BYTES", data: [b64(coffee)] }],
    });
    assert.ok(res.headers.get("traceparent"));
    assert.match(res.headers.get("server-timing")!, /inference;dur=/);
    const metrics = await (await app.request("/metrics")).text();
    assert.match(
      metrics,
      /http_requests_total\{method="POST",route="\/v2\/models\/:name\/infer",status="200"\} \d+/,
    );
    assert.match(
      metrics,
      /http_requests_total\{method="POST",route="\/v2\/models\/:name\/infer",status="400"\} \d+/,
    );
  });
});
