/**
 * What Triton's and KServe's own clients and examples call beyond inference
 * (issue 20): the spec's health bodies, `{"error"}` for every answer under
 * /v2, server metadata at `/v2/`, Triton's model configuration, statistics
 * and repository index, and KServe's model list. In-process, real model.
 */
import assert from "node:assert/strict";
import { ModelState } from "../../model/runtime/state.ts";
import { captureLogs, readyApp, testConfig, testTelemetry } from "../../tests/support/helpers.ts";
import { createApp } from "../app.ts";

async function expectError(res: Response, status: number, pattern: RegExp) {
  assert.equal(res.status, status, await res.clone().text());
  assert.equal(res.headers.get("content-type"), "application/json");
  const body = await res.json();
  assert.deepEqual(Object.keys(body), ["error"], "the protocol's error body");
  assert.match(body.error, pattern);
}

const tensorRequest = (value: number) => ({
  inputs: [{ name: "input", shape: [1, 3, 224, 224], datatype: "FP32", data: new Array(150528).fill(value) }],
});

Deno.test("every answer under /v2 is the protocol's {error}, a wrong method a 405 with Allow", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();

  await t.step("an unmatched path: 404", async () => {
    for (const path of ["/v2/nonexistent", "/v2/models/resnet50/explain", "/v2/models/a/b/c/d/e"]) {
      await expectError(await app.request(path), 404, /No route for GET \/v2\//);
    }
  });

  await t.step("a wrong method: 405 naming the allowed ones", async () => {
    const cases: Array<[string, string, string]> = [
      ["GET", "/v2/models/resnet50/infer", "POST"],
      ["PUT", "/v2/models/resnet50/versions/1/infer", "POST"],
      ["DELETE", "/v2/health/live", "GET, HEAD"],
      ["POST", "/v2/models/resnet50/config", "GET, HEAD"],
      ["GET", "/v2/repository/index", "POST"],
    ];
    for (const [method, path, allow] of cases) {
      const res = await app.request(path, { method });
      assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
      await expectError(res, 405, new RegExp(`^${method} is not allowed on `));
    }
  });

  await t.step("outside /v2 the gateway's problem documents stay", async () => {
    const res = await app.request("/nonexistent");
    assert.equal(res.status, 404);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
  });

  await t.step("GET /v2/ is the server metadata, as the spec's YAML spells it", async () => {
    const slash = await app.request("/v2/");
    assert.equal(slash.status, 200);
    assert.deepEqual(await slash.json(), await (await app.request("/v2")).json());
  });

  await t.step("the extensions served are listed", async () => {
    const { extensions } = await (await app.request("/v2")).json();
    for (
      const e of [
        "classification",
        "binary_tensor_data",
        "model_configuration",
        "statistics",
        "model_repository",
      ]
    ) {
      assert.ok(extensions.includes(e), e);
    }
  });
});

Deno.test("Triton's model configuration: what image_client.py reads", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp({ MAX_IMAGES_PER_REQUEST: "6", MAX_BATCH_SIZE: "3", MAX_QUEUE: "17" });
  const version = (await (await app.request("/v2/models/resnet50")).json()).versions[0];

  await t.step(
    "resnet50: FP32 NCHW dims without the batch dimension, the batcher's real limits",
    async () => {
      const res = await app.request("/v2/models/resnet50/config");
      assert.equal(res.status, 200);
      const config = await res.json();
      assert.equal(config.name, "resnet50");
      assert.equal(config.platform, "onnxruntime_onnx");
      assert.equal(config.max_batch_size, 6);
      assert.deepEqual(config.input, [{
        name: "input",
        data_type: "TYPE_FP32",
        format: "FORMAT_NCHW",
        dims: [3, 224, 224],
      }]);
      assert.deepEqual(config.output, [{ name: "logits", data_type: "TYPE_FP32", dims: [1000] }]);
      assert.deepEqual(config.dynamic_batching.preferred_batch_size, [3]);
      assert.equal(config.dynamic_batching.default_queue_policy.max_queue_size, 17);
      assert.equal(config.dynamic_batching.default_queue_policy.default_timeout_microseconds, 5_000_000);
    },
  );

  await t.step("resnet50-image: one BYTES (TYPE_STRING) input, an ensemble", async () => {
    const config = await (await app.request("/v2/models/resnet50-image/config")).json();
    assert.equal(config.platform, "ensemble");
    assert.deepEqual(config.input, [{ name: "image", data_type: "TYPE_STRING", dims: [1] }]);
    assert.equal(config.max_batch_size, 6);
  });

  await t.step("by version; an unknown model or version is a 404 {error}", async () => {
    assert.equal((await app.request(`/v2/models/resnet50/versions/${version}/config`)).status, 200);
    await expectError(
      await app.request("/v2/models/resnet50/versions/nope/config"),
      404,
      /no version "nope"/,
    );
    await expectError(await app.request("/v2/models/resnet18/config"), 404, /Unknown model "resnet18"/);
  });

  await t.step("while the model loads: 503 with Retry-After", async () => {
    const config = testConfig();
    const loading = createApp({ config, state: new ModelState(), ...testTelemetry(config) });
    const res = await loading.request("/v2/models/resnet50/config");
    assert.equal(res.headers.get("retry-after"), "5");
    await expectError(res, 503, /is loading/);
  });
});

Deno.test("Triton's statistics: counted from what the gateway ran", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const stats = async (path: string) => {
    const res = await app.request(path);
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()).model_stats;
  };
  const before = (await stats("/v2/models/resnet50/stats"))[0];

  await t.step("an answered item adds one inference, with its queue and compute times", async () => {
    const res = await app.request("/v2/models/resnet50/infer", {
      method: "POST",
      body: JSON.stringify(tensorRequest(0.5)),
    });
    assert.equal(res.status, 200);
    const after = (await stats("/v2/models/resnet50/stats"))[0];
    assert.equal(after.name, "resnet50");
    assert.equal(after.inference_count, before.inference_count + 1);
    assert.equal(after.inference_stats.success.count, before.inference_stats.success.count + 1);
    assert.ok(after.inference_stats.success.ns > before.inference_stats.success.ns);
    for (const phase of ["queue", "compute_infer", "compute_output"]) {
      assert.equal(after.inference_stats[phase].count, before.inference_stats[phase].count + 1, phase);
    }
    // A preprocessed tensor has no input stage to time.
    assert.equal(after.inference_stats.compute_input.count, before.inference_stats.compute_input.count);
    assert.ok(after.execution_count > before.execution_count);
    const batch1 = after.batch_stats.find((b: { batch_size: number }) => b.batch_size === 1);
    assert.ok(batch1 && batch1.compute_infer.count >= 1 && batch1.compute_infer.ns > 0);
    assert.ok(after.last_inference > 0);
  });

  await t.step("a refused item is a failure, not an inference", async () => {
    const res = await app.request("/v2/models/resnet50/infer", {
      method: "POST",
      body: JSON.stringify(tensorRequest(1e38)),
    });
    assert.equal(res.status, 400);
    const after = (await stats("/v2/models/resnet50/stats"))[0];
    assert.equal(after.inference_stats.fail.count, before.inference_stats.fail.count + 1);
    assert.equal(after.inference_count, before.inference_count + 1);
  });

  await t.step(
    "/predict's images count as resnet50-image's, with their decode and preprocess time",
    async () => {
      const image = (await stats("/v2/models/resnet50-image/stats"))[0];
      const photo = await Deno.readFile(new URL("../../tests/fixtures/images/coffee.jpg", import.meta.url));
      const res = await app.request("/predict", {
        method: "POST",
        body: photo,
        headers: { "content-type": "image/jpeg" },
      });
      assert.equal(res.status, 200);
      const after = (await stats("/v2/models/resnet50-image/stats"))[0];
      assert.equal(after.inference_count, image.inference_count + 1);
      assert.equal(after.inference_stats.compute_input.count, image.inference_stats.compute_input.count + 1);
      assert.ok(after.inference_stats.compute_input.ns > image.inference_stats.compute_input.ns);
    },
  );

  await t.step("every model at /v2/models/stats; an unknown one is a 404", async () => {
    const all = await stats("/v2/models/stats");
    assert.deepEqual(all.map((m: { name: string }) => m.name), ["resnet50", "resnet50-image"]);
    await expectError(await app.request("/v2/models/resnet18/stats"), 404, /Unknown model/);
  });
});

Deno.test("the models served: Triton's repository index and KServe's model list", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const index = (body?: string, headers: Record<string, string> = {}) =>
    app.request("/v2/repository/index", { method: "POST", ...(body !== undefined ? { body } : {}), headers });
  const version = (await (await app.request("/v2/models/resnet50")).json()).versions[0];

  await t.step("an empty body (what Triton's client sends): every model, READY", async () => {
    const res = await index();
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), [
      { name: "resnet50", version, state: "READY", reason: "" },
      { name: "resnet50-image", version, state: "READY", reason: "" },
    ]);
  });

  await t.step("while loading: LOADING, and none with ready: true", async () => {
    const config = testConfig();
    const loading = createApp({ config, state: new ModelState(), ...testTelemetry(config) });
    const all = await (await loading.request("/v2/repository/index", { method: "POST" })).json();
    assert.deepEqual(all.map((m: { state: string }) => m.state), ["LOADING", "LOADING"]);
    const ready = await loading.request("/v2/repository/index", { method: "POST", body: '{"ready": true}' });
    assert.deepEqual(await ready.json(), []);
  });

  await t.step("a body that is not the index request: 400; over 4 KiB: 413", async () => {
    await expectError(await index("[1]"), 400, /JSON like/);
    await expectError(await index('{"ready": "yes"}'), 400, /"ready" must be true or false/);
    await expectError(await index("{"), 400, /JSON like/);
    assert.equal((await index(" ".repeat(4096))).status, 200);
    await expectError(await index(" ".repeat(4097)), 413, /exceeds the limit of 4096 bytes/);
  });

  await t.step("GET /v2/models: KServe's {models: [names]}", async () => {
    const res = await app.request("/v2/models");
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { models: ["resnet50", "resnet50-image"] });
  });
});

Deno.test("unbounded request lists are refused, never a 500 (issue 19 item 7, issue 21)", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const post = (body: unknown) =>
    app.request("/v2/models/resnet50/infer", { method: "POST", body: JSON.stringify(body) });

  await t.step("200,000 outputs: a 400, not a stack overflow", async () => {
    const outputs = Array.from({ length: 200_000 }, () => ({ name: "logits" }));
    await expectError(await post({ ...tensorRequest(0), outputs }), 400, /requested more than once/);
  });

  await t.step("one output asked once is fine", async () => {
    const res = await post({
      ...tensorRequest(0.1),
      outputs: [{ name: "logits", parameters: { classification: 2 } }],
    });
    assert.equal(res.status, 200);
  });

  await t.step("the channel dimension is checked: [1,1,224,224] with 150,528 values is a 400", async () => {
    const input = {
      name: "input",
      shape: [1, 1, 224, 224],
      datatype: "FP32",
      data: new Array(150528).fill(0),
    };
    await expectError(
      await post({ inputs: [input] }),
      400,
      /must have shape \[N,3,224,224\], got \[1,1,224,224\]/,
    );
  });
});

Deno.test("the classification extension ranks the output's values, even where softmax underflows", async () => {
  await captureLogs("info");
  const { app, state } = await readyApp();
  // Every element 120: one logit leads by more than ~104, so every other probability is 0 in FP32.
  const infer = async (outputs?: unknown[]) => {
    const res = await app.request("/v2/models/resnet50/infer", {
      method: "POST",
      body: JSON.stringify({ ...tensorRequest(120), ...(outputs ? { outputs } : {}) }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()).outputs[0].data;
  };
  const logits: number[] = await infer();
  const expected = [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b).slice(0, 3);
  assert.ok(logits[expected[0]] - logits[expected[1]] > 104, "the logits are the issue's case");
  const top: string[] = await infer([{ name: "logits", parameters: { classification: 3 } }]);
  assert.deepEqual(top.map((s) => Number(s.split(":")[1])), expected);
  assert.deepEqual(top.map((s) => Number(s.split(":")[0])), expected.map((i) => logits[i]));

  // /predict's ranking is the same code: the classifier's top k for that tensor.
  const tensor = new Float32Array(150528).fill(120);
  const result = await state.serving!.classifyTensor(tensor, 3);
  assert.deepEqual(result.top.map((c) => c.class_id), expected);
  assert.ok(result.top[1].confidence > 0, "the runner-up's confidence is computed, not underflowed");
});

Deno.test("compressed requests, as Triton's client sends them with request_compression_algorithm", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const compress = async (text: string | Uint8Array, format: CompressionFormat) => {
    const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
      new CompressionStream(format),
    );
    return new Uint8Array(await new Response(stream).arrayBuffer());
  };
  const json = JSON.stringify(tensorRequest(0.25));
  const plain = await (await app.request("/v2/models/resnet50/infer", { method: "POST", body: json })).json();

  await t.step("v2: gzip and deflate bodies answer as the plain one", async () => {
    for (const format of ["gzip", "deflate"] as const) {
      const res = await app.request("/v2/models/resnet50/infer", {
        method: "POST",
        body: await compress(json, format),
        headers: { "content-encoding": format },
      });
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual((await res.json()).outputs, plain.outputs);
    }
  });

  await t.step("v2: another coding is a 415 {error}", async () => {
    const res = await app.request("/v2/models/resnet50/infer", {
      method: "POST",
      body: json,
      headers: { "content-encoding": "br" },
    });
    await expectError(res, 415, /Content-Encoding "br" is not supported/);
  });

  await t.step("/predict: a gzip photo classifies as the plain one; br is a 415 problem", async () => {
    const photo = await Deno.readFile(new URL("../../tests/fixtures/images/coffee.jpg", import.meta.url));
    const send = async (body: Uint8Array, headers: Record<string, string>) =>
      await app.request("/predict", {
        method: "POST",
        body: body as Uint8Array<ArrayBuffer>,
        headers: { "content-type": "image/jpeg", ...headers },
      });
    const expected = await (await send(photo, {})).json();
    const res = await send(await compress(photo, "gzip"), { "content-encoding": "gzip" });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual((await res.json()).top_k, expected.top_k);
    const refused = await send(photo, { "content-encoding": "br" });
    assert.equal(refused.status, 415);
    assert.equal(refused.headers.get("content-type"), "application/problem+json");
    assert.equal((await refused.json()).code, "unsupported_encoding");
  });

  await t.step("a 1 GiB deflate bomb is a 413 and the server keeps answering", async () => {
    const zeros = new Uint8Array(1 << 20);
    let left = 1024;
    const stream = new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull(controller) {
        if (left-- > 0) controller.enqueue(zeros);
        else controller.close();
      },
    }).pipeThrough(new CompressionStream("deflate"));
    const body = new Uint8Array(await new Response(stream).arrayBuffer());
    const res = await app.request("/v2/models/resnet50/infer", {
      method: "POST",
      body,
      headers: { "content-encoding": "deflate" },
    });
    await expectError(res, 413, /exceeds the limit of 10485760 bytes/);
    assert.equal((await app.request("/v2/health/ready")).status, 200);
  });
});
