/**
 * The Open Inference Protocol endpoints, checked field by field against the
 * protocol specification's request and response examples (written out from
 * the spec's text), with the real model.
 */
import assert from "node:assert/strict";
import { decodeImage } from "../../image/decode.ts";
import { readImageHeader } from "../../image/image_header.ts";
import { preprocess } from "../../image/preprocess.ts";
import { ModelState } from "../../model/runtime/state.ts";
import { NonFiniteRunner } from "../../tests/support/broken_runner.ts";
import {
  captureLogs,
  fixture,
  multipart,
  readyApp,
  sharedClassifier,
  stateWithRunner,
  testConfig,
  testTelemetry,
} from "../../tests/support/helpers.ts";
import { createApp } from "../app.ts";
import { JPEG_MIN_DECODE_SHORT_SIDE } from "../../image/prepare.ts";

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

  await t.step("health: live and ready answer the spec's bodies, which KServe's client reads", async () => {
    const expected: Array<[string, unknown]> = [
      ["/v2/health/live", { live: true }],
      ["/v2/health/ready", { ready: true }],
      ["/v2/models/resnet50/ready", { name: "resnet50", ready: true }],
      ["/v2/models/resnet50-image/ready", { name: "resnet50-image", ready: true }],
      [`/v2/models/resnet50/versions/${version}/ready`, { name: "resnet50", ready: true }],
    ];
    for (const [path, body] of expected) {
      const res = await app.request(path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get("content-type"), "application/json", path);
      assert.deepEqual(await res.json(), body, path);
    }
  });

  await t.step("readiness is a 4xx while the model loads, with ready false; liveness stays 200", async () => {
    const config = testConfig();
    const loading = createApp({ config, state: new ModelState(), ...testTelemetry(config) });
    const ready = await loading.request("/v2/health/ready");
    assert.equal(ready.status, 400);
    assert.deepEqual(await ready.json(), { ready: false });
    const live = await loading.request("/v2/health/live");
    assert.equal(live.status, 200);
    assert.deepEqual(await live.json(), { live: true });
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
    assert.equal(meta.platform, "onnxruntime_onnx");
    assert.deepEqual(meta.inputs, [{ name: "input", datatype: "FP32", shape: [-1, 3, 224, 224] }]);
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
      await expectError(
        await post(app, "/v2/models/resnet50/infer", specExample),
        400,
        /takes exactly one input/,
      );
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
        inputs: [{ name: "image", shape: [1], datatype: "BYTES", data: [coffee.toBase64()] }],
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
      inputs: [{
        name: "image",
        shape: [2],
        datatype: "BYTES",
        data: [coffee.toBase64(), chelsea.toBase64()],
      }],
    });
    const body = await res.json();
    assert.deepEqual(body.outputs[0].shape, [2, 1000]);
    assert.equal(body.outputs[0].data.length, 2000);
  });

  await t.step("every malformed request answers 400 with an error body", async () => {
    const infer = (input: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      post(app, "/v2/models/resnet50/infer", { inputs: [input], ...extra });
    const img = { name: "image", shape: [1], datatype: "BYTES", data: [coffee.toBase64()] };
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
      /Input "input" value 0 is not a number/,
    );
    await expectError(
      await infer({ ...img, data: ["***not base64***"] }),
      400,
      /image 0: element is not valid base64/,
    );
    // Unpadded ("GIF89a\x01" without its "=="): refused as before, not decoded leniently.
    await expectError(
      await infer({ ...img, data: ["R0lGODlhAQ"] }),
      400,
      /image 0: element is not valid base64/,
    );
    await expectError(await infer({ ...img, datatype: "FP32" }), 400, /must be BYTES/);
    await expectError(await infer({ ...img, shape: [2] }), 400, /has 1 elements; its shape says 2/);
    await expectError(
      await infer({ ...img, data: [new TextEncoder().encode("GIF89a...").toBase64()] }),
      400,
      /image 0: Image format gif/,
    );
    // Photo-sized (9.3 MB of base64, under MAX_BODY_BYTES): judged by its bytes like a small one, not a 500.
    const large = new Uint8Array(7_000_000);
    large.set(new TextEncoder().encode("GIF89a"));
    await expectError(await infer({ ...img, data: [large.toBase64()] }), 400, /image 0: Image format gif/);
    await expectError(
      await infer({ ...img, data: [coffee.slice(0, 500).toBase64()] }),
      400,
      /image 0: .*(JPEG|decode)/i,
    );
    await expectError(
      await infer({ ...img, shape: [9], data: new Array(9).fill(coffee.toBase64()) }),
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
      inputs: [{ name: "image", shape: [1], datatype: "BYTES", data: [coffee.toBase64()] }],
    });
    assert.ok(res.headers.get("traceparent"));
    assert.match(res.headers.get("server-timing")!, /inference;dur=/);
    const metrics = await (await app.request("/metrics")).text();
    assert.match(
      metrics,
      /http_server_request_duration_seconds_count\{http_request_method="POST",http_route="\/v2\/models\/:name\/infer",http_response_status_code="200"\} \d+/,
    );
    assert.match(
      metrics,
      /http_server_request_duration_seconds_count\{http_request_method="POST",http_route="\/v2\/models\/:name\/infer",http_response_status_code="400"\} \d+/,
    );
  });
});

/** The coffee photo as the model's preprocessed FP32 input. */
async function coffeeTensor(): Promise<Float32Array> {
  const coffee = await fixture("images/coffee.jpg");
  return preprocess(
    await decodeImage(coffee, readImageHeader(coffee), { minShortSide: JPEG_MIN_DECODE_SHORT_SIDE }),
  );
}

Deno.test("FP32 values that are not finite in FP32, or drive the model to non-finite outputs, are a 400 naming the input", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const tensor = Array.from(await coffeeTensor());
  const infer = (data: number[], extra: Record<string, unknown> = {}) =>
    post(app, "/v2/models/resnet50/infer", {
      inputs: [{ name: "input", shape: [data.length / 150528, 3, 224, 224], datatype: "FP32", data }],
      outputs: [{ name: "logits", parameters: { classification: 3 } }],
      ...extra,
    });
  const rejected = async () =>
    Number(
      /^requests_rejected_total\{reason="bad_request"\} (\d+)$/m.exec(
        await (await app.request("/metrics")).text(),
      )?.[1] ?? 0,
    );

  await t.step("1e39 is finite as a double but Infinity in FP32: 400", async () => {
    const data = tensor.slice();
    data[17] = 1e39;
    await expectError(
      await infer(data),
      400,
      /Input "input" value 17 \(1e\+39\) is not a finite FP32 number/,
    );
    data[17] = -3.5e38;
    await expectError(await infer(data), 400, /Input "input" value 17 .* not a finite FP32 number/);
  });

  const drives =
    /^Input "input" drives the model to non-finite outputs; preprocessed image tensors lie within about ±3$/;
  const huge = new Array(150528).fill(1e38);

  await t.step(
    "all values 1e38 (finite in FP32) drive the model to NaN: 400 naming the input, counted",
    async () => {
      const before = await rejected();
      await expectError(await infer(huge), 400, drives);
      // The raw output, as JSON and as binary data: never a 200 carrying null or NaN.
      await expectError(await infer(huge, { outputs: [{ name: "logits" }] }), 400, drives);
      await expectError(
        await infer(huge, { outputs: [{ name: "logits" }], parameters: { binary_data_output: true } }),
        400,
        drives,
      );
      assert.equal(await rejected(), before + 3, "requests_rejected_total{reason=bad_request}");
    },
  );

  await t.step("in a batch, the message names the item", async () => {
    await expectError(
      await infer([...tensor, ...huge]),
      400,
      /^Input "input" \(item 1\) drives the model to non-finite outputs/,
    );
  });

  await t.step("and the server keeps answering", async () => {
    assert.equal((await infer(tensor)).status, 200);
  });
});

Deno.test("a non-finite output for an image the gateway preprocessed is a fault: 500, logged, never a 200", async (t) => {
  const logs = await captureLogs("info");
  const config = testConfig();
  const shared = await sharedClassifier();
  const app = createApp({
    config,
    state: await stateWithRunner(new NonFiniteRunner(shared.info)),
    ...testTelemetry(config),
  });
  const coffee = await fixture("images/coffee.jpg");

  await t.step("v2 BYTES image input: 500 with the protocol's error body", async () => {
    const res = await post(app, "/v2/models/resnet50-image/infer", {
      inputs: [{ name: "image", shape: [1], datatype: "BYTES", data: [coffee.toBase64()] }],
    });
    await expectError(res, 500, /^An unexpected error occurred/);
    assert.ok(
      logs.some((r) => r.level === "error" && JSON.stringify(r.properties).includes("non-finite outputs")),
      "the fault is logged",
    );
  });

  await t.step("/predict: a 500 problem, for one image and for a batch", async () => {
    const one = await app.request("/predict", { method: "POST", body: coffee });
    assert.equal(one.status, 500, await one.clone().text());
    assert.equal((await one.json()).code, "internal");
    const batch = await app.request("/predict", {
      method: "POST",
      body: multipart([{ bytes: coffee }, { bytes: coffee }]),
    });
    assert.equal(batch.status, 500, await batch.clone().text());
  });

  await t.step("counted as internal", async () => {
    const text = await (await app.request("/metrics")).text();
    assert.match(text, /^requests_rejected_total\{reason="internal"\} 3$/m);
  });
});

Deno.test("model metadata tells the truth: a client that builds its request from it succeeds", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const coffee = await fixture("images/coffee.jpg");
  const tensor = Array.from(await coffeeTensor());
  const dataFor = (input: { datatype: string }) => input.datatype === "BYTES" ? [coffee.toBase64()] : tensor;

  for (const name of ["resnet50", "resnet50-image"]) {
    await t.step(`${name}: every input its metadata lists, sent together, is accepted`, async () => {
      const meta = await (await app.request(`/v2/models/${name}`)).json();
      assert.equal(meta.name, name);
      const inputs = meta.inputs.map((i: { name: string; datatype: string; shape: number[] }) => ({
        name: i.name,
        datatype: i.datatype,
        shape: i.shape.map((d) => (d === -1 ? 1 : d)),
        data: dataFor(i),
      }));
      const outputs = meta.outputs.map((o: { name: string }) => ({ name: o.name }));
      const res = await post(app, `/v2/models/${name}/infer`, { inputs, outputs });
      assert.equal(res.status, 200, await res.clone().text());
      const body = await res.json();
      assert.equal(body.model_name, name);
      assert.deepEqual(body.outputs[0].shape, [1, 1000]);
    });
  }

  await t.step("resnet50-image lists only the BYTES input image", async () => {
    const meta = await (await app.request("/v2/models/resnet50-image")).json();
    assert.deepEqual(meta.inputs, [{ name: "image", datatype: "BYTES", shape: [-1] }]);
    assert.deepEqual(meta.outputs, [{ name: "logits", datatype: "FP32", shape: [-1, 1000] }]);
    assert.equal(
      (await app.request(`/v2/models/resnet50-image/versions/${meta.versions[0]}/ready`)).status,
      200,
    );
  });

  await t.step(
    "resnet50 still accepts image for compatibility; resnet50-image refuses the tensor",
    async () => {
      const image = { name: "image", shape: [1], datatype: "BYTES", data: [coffee.toBase64()] };
      assert.equal((await post(app, "/v2/models/resnet50/infer", { inputs: [image] })).status, 200);
      await expectError(
        await post(app, "/v2/models/resnet50-image/infer", {
          inputs: [{ name: "input", shape: [1, 3, 224, 224], datatype: "FP32", data: tensor }],
        }),
        400,
        /Unknown input "input"; model "resnet50-image" takes "image"/,
      );
    },
  );
});

Deno.test("classification extension values are the model's output (logits), as Triton defines them", async () => {
  await captureLogs("info");
  const { app } = await readyApp();
  const image = {
    name: "image",
    shape: [1],
    datatype: "BYTES",
    data: [(await fixture("images/coffee.jpg")).toBase64()],
  };
  const raw = (await (await post(app, "/v2/models/resnet50-image/infer", { inputs: [image] })).json())
    .outputs[0]
    .data as number[];
  const classified = await (await post(app, "/v2/models/resnet50-image/infer", {
    inputs: [image],
    outputs: [{ name: "logits", parameters: { classification: 5 } }],
  })).json();
  const entries = (classified.outputs[0].data as string[]).map((s) => s.split(":"));
  const sorted = raw.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]);
  for (let r = 0; r < 5; r++) {
    const [value, index] = entries[r];
    assert.equal(Number(index), sorted[r][1], `rank ${r} index`);
    assert.ok(Math.abs(Number(value) - raw[Number(index)]) < 1e-6, `rank ${r}: ${value} is the logit`);
  }
  // Logits of this model are not probabilities: some lie outside [0, 1].
  assert.ok(entries.some(([v]) => Number(v) > 1 || Number(v) < 0));
});

Deno.test("while the model loads, v2 models are known and not ready", async (t) => {
  await captureLogs("info");
  const config = testConfig();
  const app = createApp({ config, state: new ModelState(), ...testTelemetry(config) });

  await t.step("model ready: 400 with the spec's body, ready false", async () => {
    for (const name of ["resnet50", "resnet50-image"]) {
      const res = await app.request(`/v2/models/${name}/ready`);
      assert.equal(res.status, 400, name);
      assert.deepEqual(await res.json(), { name, ready: false });
    }
  });

  await t.step("infer: 503 with Retry-After and the protocol's error body", async () => {
    const res = await post(app, "/v2/models/resnet50/infer", {
      inputs: [{ name: "image", shape: [1], datatype: "BYTES", data: ["aGk="] }],
    });
    assert.equal(res.headers.get("retry-after"), "5");
    await expectError(res, 503, /Model "resnet50" is loading/);
  });

  await t.step("metadata: 503 with Retry-After", async () => {
    const res = await app.request("/v2/models/resnet50-image");
    assert.equal(res.headers.get("retry-after"), "5");
    await expectError(res, 503, /is loading/);
  });

  await t.step("an unknown model is still 404", async () => {
    await expectError(await app.request("/v2/models/resnet18/ready"), 404, /Unknown model "resnet18"/);
  });
});

/** A request in the binary tensor data extension's layout: JSON header, then the tensors' bytes. */
function binaryRequest(header: unknown, tail: Uint8Array): { body: Uint8Array<ArrayBuffer>; length: number } {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = new Uint8Array(json.length + tail.length);
  body.set(json);
  body.set(tail, json.length);
  return { body, length: json.length };
}

/** Splits a binary response into its JSON header and the bytes after it. */
async function binaryResponse(res: Response) {
  const length = Number(res.headers.get("inference-header-content-length"));
  const bytes = new Uint8Array(await res.arrayBuffer());
  return {
    header: JSON.parse(new TextDecoder().decode(bytes.subarray(0, length))),
    tail: bytes.subarray(length),
  };
}

Deno.test("binary tensor data extension, as Triton's client sends it", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const coffee = await fixture("images/coffee.jpg");
  const tensor = await coffeeTensor();
  const send = (path: string, header: unknown, tail: Uint8Array, headers: Record<string, string> = {}) => {
    const { body, length } = binaryRequest(header, tail);
    // Triton's Python client declares no Content-Type.
    return app.request(path, {
      method: "POST",
      body,
      headers: { "inference-header-content-length": String(length), ...headers },
    });
  };
  const json = await (await post(app, "/v2/models/resnet50/infer", {
    inputs: [{ name: "input", shape: [1, 3, 224, 224], datatype: "FP32", data: Array.from(tensor) }],
  })).json();

  await t.step("the server metadata announces it", async () => {
    const body = await (await app.request("/v2")).json();
    assert.ok(body.extensions.includes("binary_tensor_data"));
  });

  await t.step("an FP32 input as binary, outputs as binary: the same logits as JSON", async () => {
    const bytes = new Uint8Array(tensor.buffer.slice(0));
    const res = await send("/v2/models/resnet50/infer", {
      inputs: [{
        name: "input",
        shape: [1, 3, 224, 224],
        datatype: "FP32",
        parameters: { binary_data_size: bytes.length },
      }],
      outputs: [{ name: "logits", parameters: { binary_data: true } }],
    }, bytes);
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get("content-type"), "application/octet-stream");
    const { header, tail } = await binaryResponse(res);
    const out = header.outputs[0];
    assert.equal(out.data, undefined);
    assert.equal(out.parameters.binary_data_size, 4000);
    assert.equal(tail.length, 4000);
    const logits = new Float32Array(tail.slice().buffer);
    for (let i = 0; i < 1000; i++) {
      assert.ok(Math.abs(logits[i] - json.outputs[0].data[i]) < 1e-5, `logit ${i}`);
    }
  });

  await t.step(
    "BYTES images as binary (length-prefixed raw files), binary_data_output for all outputs",
    async () => {
      const chelsea = await fixture("images/chelsea.jpg");
      const tail = new Uint8Array(8 + coffee.length + chelsea.length);
      const view = new DataView(tail.buffer);
      view.setUint32(0, coffee.length, true);
      tail.set(coffee, 4);
      view.setUint32(4 + coffee.length, chelsea.length, true);
      tail.set(chelsea, 8 + coffee.length);
      const res = await send(
        "/v2/models/resnet50-image/infer",
        {
          parameters: { binary_data_output: true },
          inputs: [{
            name: "image",
            shape: [2],
            datatype: "BYTES",
            parameters: { binary_data_size: tail.length },
          }],
          outputs: [{ name: "logits", parameters: { classification: 2 } }],
        },
        tail,
        { "content-type": "application/octet-stream" },
      );
      assert.equal(res.status, 200, await res.clone().text());
      const { header, tail: out } = await binaryResponse(res);
      assert.deepEqual(header.outputs[0].shape, [2, 2]);
      assert.equal(header.outputs[0].datatype, "BYTES");
      const strings: string[] = [];
      const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
      for (let at = 0; at < out.length;) {
        const n = v.getUint32(at, true);
        strings.push(new TextDecoder().decode(out.subarray(at + 4, at + 4 + n)));
        at += 4 + n;
      }
      assert.equal(strings.length, 4);
      const top1 = json.outputs[0].data.indexOf(Math.max(...json.outputs[0].data));
      assert.equal(Number(strings[0].split(":")[1]), top1, "coffee's top-1 as over JSON");
    },
  );

  await t.step("malformed binary requests answer 400 with a message that says what is wrong", async () => {
    const header = {
      inputs: [{
        name: "input",
        shape: [1, 3, 224, 224],
        datatype: "FP32",
        parameters: { binary_data_size: 16 },
      }],
    };
    await expectError(
      await send("/v2/models/resnet50/infer", header, new Uint8Array(16)),
      400,
      /binary data holds 16 bytes; 150528 FP32 values need 602112/,
    );
    await expectError(
      await send("/v2/models/resnet50/infer", header, new Uint8Array(20)),
      400,
      /declares binary_data_size 16, but 20 bytes follow/,
    );
    const { body } = binaryRequest(header, new Uint8Array(16));
    await expectError(
      await app.request("/v2/models/resnet50/infer", {
        method: "POST",
        body,
        headers: { "inference-header-content-length": "999999" },
      }),
      400,
      /Inference-Header-Content-Length must be a byte count/,
    );
    // A binary body sent without the header: the message names what is missing.
    await expectError(
      await app.request("/v2/models/resnet50/infer", {
        method: "POST",
        body,
        headers: { "content-type": "application/octet-stream" },
      }),
      400,
      /not valid JSON \(binary tensor data needs the Inference-Header-Content-Length header\)/,
    );
    const nan = new Float32Array(150528);
    nan[3] = NaN;
    await expectError(
      await send("/v2/models/resnet50/infer", {
        inputs: [{
          name: "input",
          shape: [1, 3, 224, 224],
          datatype: "FP32",
          parameters: { binary_data_size: 602112 },
        }],
      }, new Uint8Array(nan.buffer)),
      400,
      /Input "input" value 3 \(NaN\) is not a finite FP32 number/,
    );
  });
});
