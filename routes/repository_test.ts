/** The app over a model repository of tiny models, in-process: /ready, /info and /predict across a swap. */
import assert from "node:assert/strict";
import { createRepository } from "../model/repository/repository.ts";
import { ModelState } from "../model/runtime/state.ts";
import { createApp } from "./app.ts";
import { modelHooks } from "../model/repository/metrics.ts";
import { fixture, testConfig, testTelemetry } from "../tests/support/helpers.ts";
import { tinyLabels, tinyModel } from "../tests/support/tiny_model.ts";

async function put(root: string, model: string, version: number, bytes: Uint8Array) {
  await Deno.mkdir(`${root}/${model}/${version}`, { recursive: true });
  await Deno.writeFile(`${root}/${model}/${version}/model.onnx`, bytes);
  await Deno.writeTextFile(`${root}/${model}/labels.txt`, tinyLabels());
}

function repositoryApp(root: string, env: Record<string, string> = {}) {
  const config = testConfig({
    MODEL_REPOSITORY: root,
    MODEL_NAME: "tiny",
    INFERENCE_WORKERS: "0",
    PREPROCESS_WORKERS: "0",
    INTRA_OP_THREADS: "1",
    ...env,
  });
  const state = new ModelState();
  const { telemetry } = testTelemetry(config);
  const repository = createRepository(config, state, modelHooks(telemetry));
  return { app: createApp({ config, state, telemetry, repository }), repository, state, config };
}

Deno.test("app over a model repository", async (t) => {
  const root = `./tests/tmp/app-repo-${crypto.randomUUID().slice(0, 8)}`;
  await put(root, "tiny", 1, tinyModel({ seed: 1 }));
  await put(root, "other", 3, tinyModel({ seed: 2 }));
  const { app, repository } = repositoryApp(root, { MODEL_CONTROL_MODE: "explicit" });
  const jpeg = await fixture("images/chelsea.jpg");
  const predict = async () => {
    const res = await app.request("/predict", {
      method: "POST",
      headers: { "content-type": "image/jpeg" },
      body: jpeg,
    });
    return { status: res.status, body: await res.json() };
  };
  try {
    await t.step("/ready is 503 loading until the startup scan is done", async () => {
      const res = await app.request("/ready");
      assert.equal(res.status, 503);
      assert.deepEqual(await res.json(), { status: "loading", models: [{ name: root, reason: "loading" }] });
    });

    await repository.start();

    await t.step("explicit mode: nothing should serve yet, so /ready is 200; /predict is 503", async () => {
      assert.equal((await app.request("/ready")).status, 200);
      assert.equal((await predict()).status, 503);
      // model_ready says what /ready says: nothing should serve yet, so nothing is missing.
      assert.match(await (await app.request("/metrics")).text(), /^model_ready 1$/m);
    });

    await t.step("after a load: /predict answers with the version; /info lists the repository", async () => {
      await repository.load("tiny");
      const { status, body } = await predict();
      assert.equal(status, 200);
      assert.equal(body.model.name, "tiny");
      assert.equal(body.model.version, "1");
      const info = await (await app.request("/info")).json();
      assert.deepEqual(info.repository, {
        root,
        control_mode: "explicit",
        default_model: "tiny",
        models: [{ name: "tiny", version: "1", state: "READY", reason: "" }],
      });
      assert.equal(info.model.version, "1");
    });

    await t.step("a model that should serve and cannot: /ready 503 failed, naming it and why", async () => {
      await put(root, "broken", 1, new TextEncoder().encode("garbage"));
      await repository.load("broken");
      const res = await app.request("/ready");
      assert.equal(res.status, 503);
      const body = await res.json();
      assert.equal(body.status, "failed");
      assert.equal(body.models.length, 1);
      assert.equal(body.models[0].name, "broken");
      assert.match(body.models[0].reason, /Cannot load ONNX model/);
      const metrics = await (await app.request("/metrics")).text();
      assert.match(metrics, /^model_serving_ready\{model="broken"\} 0$/m);
      assert.match(metrics, /^model_ready 0$/m);
      assert.match(metrics, /^model_serving_ready\{model="tiny"\} 1$/m);
      assert.match(metrics, /^model_version_state\{model="broken",version="1",state="UNAVAILABLE"\} 1$/m);
      assert.match(metrics, /^model_version_state\{model="tiny",version="1",state="READY"\} 1$/m);
      assert.match(metrics, /^model_load_failures_total\{model="broken",reason="corrupt_file"\} 1$/m);
      assert.match(metrics, /^model_repository_events_total\{model="tiny",event="loaded"\} 1$/m);
      // Unloading it means it should no longer serve: ready again.
      await repository.registry.unload("broken");
      assert.equal((await app.request("/ready")).status, 200);
    });

    await t.step("a swap: /predict follows the new version", async () => {
      await put(root, "tiny", 2, tinyModel({ seed: 2 }));
      await repository.load("tiny");
      assert.equal((await predict()).body.model.version, "2");
      await repository.registry.settled();
      const metrics = await (await app.request("/metrics")).text();
      assert.match(metrics, /^model_repository_events_total\{model="tiny",event="switched"\} 2$/m);
      assert.match(metrics, /^model_repository_events_total\{model="tiny",event="unloaded"\} 1$/m);
      assert.match(metrics, /^model_version_state\{model="tiny",version="1",state="UNAVAILABLE"\} 1$/m);
      assert.doesNotMatch(
        metrics,
        /model_serving_ready\{model="broken"\}/,
        "an unloaded model is not expected",
      );
    });
  } finally {
    await repository.close();
    await Deno.remove(root, { recursive: true });
  }
});
