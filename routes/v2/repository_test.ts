/**
 * The model repository over HTTP, in-process with tiny models: several models
 * and versions by name, Triton's repository extension (index, load with and
 * without the files in the request, unload) and `/predict?model=&version=`.
 */
import assert from "node:assert/strict";
import { createRepository } from "../../model/repository/repository.ts";
import { ModelState } from "../../model/runtime/state.ts";
import { modelHooks } from "../../model/repository/metrics.ts";
import { keyDigestHex } from "../../access/credential.ts";
import { openKeyStore } from "../access.ts";
import { createApp } from "../app.ts";
import { captureLogs, fixture, testConfig, testTelemetry } from "../../tests/support/helpers.ts";
import { tinyLabels, tinyModel } from "../../tests/support/tiny_model.ts";

async function put(root: string, model: string, version: number, bytes: Uint8Array, config?: string) {
  await Deno.mkdir(`${root}/${model}/${version}`, { recursive: true });
  await Deno.writeFile(`${root}/${model}/${version}/model.onnx`, bytes);
  await Deno.writeTextFile(`${root}/${model}/labels.txt`, tinyLabels());
  if (config) await Deno.writeTextFile(`${root}/${model}/config.json`, config);
}

/** Management needs an admin key (routes/access.ts): every request here carries one that may also infer. */
const KEY = "igw_repository-test-key";

async function app(root: string, env: Record<string, string>) {
  const keysFile = `${root}/keys.json`;
  const entry = { id: "repository-test", sha256: await keyDigestHex(KEY), scopes: ["admin", "infer"] };
  await Deno.writeTextFile(keysFile, JSON.stringify({ keys: [entry] }));
  const config = testConfig({
    API_KEYS_FILE: keysFile,
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
  const keys = await openKeyStore(config, telemetry.metrics, { watch: false });
  const hono = createApp({ config, state, telemetry, repository, keys });
  const request = (path: string, init: RequestInit = {}) =>
    hono.request(path, {
      ...init,
      headers: { authorization: `Bearer ${KEY}`, ...init.headers as Record<string, string> },
    });
  return { app: { request }, repository };
}

const post = (a: Awaited<ReturnType<typeof app>>["app"], path: string, body?: unknown, raw?: string) =>
  a.request(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    ...(raw !== undefined ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
  });

async function error(res: Response, status: number, message: RegExp) {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(JSON.parse(text).error, message);
}

Deno.test("model repository over HTTP", async (t) => {
  const root = `./tests/tmp/v2-repo-${crypto.randomUUID().slice(0, 8)}`;
  await put(root, "tiny", 1, tinyModel({ seed: 1 }), '{"version_policy": {"all": {}}}');
  await put(root, "tiny", 2, tinyModel({ seed: 2 }));
  await put(root, "other", 3, tinyModel({ seed: 3 }), '{"top_k": 2}');
  const jpeg = await fixture("images/chelsea.jpg");
  const image = (name: string) => ({
    inputs: [{ name, shape: [1], datatype: "BYTES", data: [jpeg.toBase64()] }],
  });
  const logs = await captureLogs("info");

  const { app: gw, repository } = await app(root, {
    MODEL_CONTROL_MODE: "explicit",
    MAX_LOAD_REQUEST_BYTES: "4096",
  });
  await repository.start();
  try {
    await t.step("management answers only with a control mode", async () => {
      const off = await app(root, { MODEL_CONTROL_MODE: "none" });
      await error(
        await post(off.app, "/v2/repository/models/tiny/load"),
        403,
        /MODEL_CONTROL_MODE=explicit or poll/,
      );
      await error(await post(off.app, "/v2/repository/models/tiny/unload"), 403, /Model control is off/);
      await off.repository.close();
    });

    await t.step("load: every version the policy serves; metadata lists them", async () => {
      const res = await post(gw, "/v2/repository/models/tiny/load");
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(await res.json(), { name: "tiny", versions: ["2", "1"] });
      assert.equal((await post(gw, "/v2/repository/models/other/load")).status, 200);
      const meta = await (await gw.request("/v2/models/tiny")).json();
      assert.deepEqual(meta.versions, ["2", "1"]);
      await error(await post(gw, "/v2/repository/models/nope/load"), 404, /no model "nope"/);
    });

    await t.step("infer by model and version; every answer names the version that computed it", async () => {
      const one = await (await post(gw, "/v2/models/tiny-image/versions/1/infer", image("image"))).json();
      assert.equal(one.model_version, "1");
      const latest = await (await post(gw, "/v2/models/tiny-image/infer", image("image"))).json();
      assert.equal(latest.model_version, "2", "the default version is the highest");
      await error(
        await post(gw, "/v2/models/tiny-image/versions/7/infer", image("image")),
        404,
        /no version "7"/,
      );
      await error(await post(gw, "/v2/models/unknown/infer", image("image")), 404, /Unknown model "unknown"/);
      assert.equal((await gw.request("/v2/models/tiny/versions/1/ready")).status, 200);
      assert.equal((await gw.request("/v2/models/tiny/versions/7/ready")).status, 404);
    });

    await t.step(
      "/predict?model=&version=: the model's own top k; 404 naming what is not served",
      async () => {
        const predict = (query: string) =>
          gw.request(`/predict${query}`, {
            method: "POST",
            headers: { "content-type": "image/jpeg" },
            body: jpeg,
          });
        const other = await (await predict("?model=other")).json();
        assert.deepEqual([other.model.name, other.model.version, other.top_k.length], ["other", "3", 2]);
        const v1 = await (await predict("?model=tiny&version=1")).json();
        assert.equal(v1.model.version, "1");
        assert.equal((await (await predict("")).json()).model.version, "2");
        const missing = await predict("?model=tiny&version=9");
        assert.equal(missing.status, 404);
        assert.match((await missing.json()).detail, /Model "tiny" has no version "9"/);
        assert.equal((await predict("?model=nope")).status, 404);
      },
    );

    await t.step("the access log and the server span name the model and version", () => {
      const line = logs.findLast((r) => r.properties.route === "/predict" && r.properties.status === 200);
      assert.equal(line?.properties.model, "tiny");
      assert.equal(line?.properties.model_version, "2");
    });

    await t.step("the repository index: every version, both names, states and reasons", async () => {
      const index = await (await post(gw, "/v2/repository/index")).json();
      assert.deepEqual(index.filter((e: { name: string }) => e.name === "tiny"), [
        { name: "tiny", version: "1", state: "READY", reason: "" },
        { name: "tiny", version: "2", state: "READY", reason: "" },
      ]);
      assert.ok(index.some((e: { name: string }) => e.name === "tiny-image"));
    });

    await t.step("a load carrying the model file: stored, loaded, serving", async () => {
      const res = await post(gw, "/v2/repository/models/tiny/load", {
        parameters: { "file:3/model.onnx": tinyModel({ seed: 3 }).toBase64() },
      });
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual((await res.json()).versions, ["3", "2", "1"]);
      assert.equal(
        (await (await post(gw, "/v2/models/tiny-image/infer", image("image"))).json()).model_version,
        "3",
      );
    });

    await t.step(
      "a load whose file is corrupt or the wrong shape: 400 with the reason, nothing left behind",
      async () => {
        const send = (bytes: Uint8Array) =>
          post(gw, "/v2/repository/models/tiny/load", {
            parameters: { "file:4/model.onnx": bytes.toBase64() },
          });
        await error(
          await send(new TextEncoder().encode("garbage")),
          400,
          /version 4: Cannot load ONNX model/,
        );
        await error(
          await send(tinyModel({ input: [1, 28, 28] })),
          400,
          /version 4: Model input "input" has shape/,
        );
        await assert.rejects(Deno.stat(`${root}/tiny/4`), Deno.errors.NotFound);
        assert.equal(
          (await (await post(gw, "/v2/models/tiny-image/infer", image("image"))).json()).model_version,
          "3",
        );
        const index = await (await post(gw, "/v2/repository/index")).json();
        const v4 = index.find((e: { name: string; version: string }) =>
          e.name === "tiny" && e.version === "4"
        );
        assert.equal(v4.state, "UNAVAILABLE");
      },
    );

    await t.step(
      "a load request's limits: an existing version 409, bad parameters 400, too large 413",
      async () => {
        const file = (v: number) => ({ [`file:${v}/model.onnx`]: tinyModel({ seed: v }).toBase64() });
        await error(
          await post(gw, "/v2/repository/models/tiny/load", { parameters: file(3) }),
          409,
          /already has/,
        );
        await error(
          await post(gw, "/v2/repository/models/tiny/load", { parameters: { "file:x/model.onnx": "AA==" } }),
          400,
          /not a file a model may have/,
        );
        await error(
          await post(gw, "/v2/repository/models/tiny/load", { parameters: { mystery: "1" } }),
          400,
          /Unknown/,
        );
        await error(await post(gw, "/v2/repository/models/tiny/load", undefined, "{"), 400, /must be JSON/);
        await error(
          await post(gw, "/v2/repository/models/tiny/load", { parameters: { config: '{"topk": 1}' } }),
          400,
          /unknown field/,
        );
        const big = { parameters: { "file:9/model.onnx": new Uint8Array(4096).toBase64() } };
        assert.equal((await post(gw, "/v2/repository/models/tiny/load", big)).status, 413);
      },
    );

    await t.step(
      "unload: then 404 naming the model, on v2 and /predict; the index says unloaded",
      async () => {
        const res = await post(gw, "/v2/repository/models/other/unload");
        assert.deepEqual(await res.json(), { name: "other" });
        await error(
          await post(gw, "/v2/models/other-image/infer", image("image")),
          404,
          /Unknown model "other-image"/,
        );
        const predict = await gw.request("/predict?model=other", {
          method: "POST",
          headers: { "content-type": "image/jpeg" },
          body: jpeg,
        });
        assert.equal(predict.status, 404);
        assert.match((await predict.json()).detail, /Model "other"/);
        const index = await (await post(gw, "/v2/repository/index")).json();
        assert.deepEqual(index.filter((e: { name: string }) => e.name === "other"), [
          { name: "other", version: "3", state: "UNAVAILABLE", reason: "it was unloaded" },
        ]);
        assert.deepEqual(
          await (await post(gw, "/v2/repository/index", { ready: true })).json().then((i) =>
            i.map((e: { name: string }) => e.name).filter((n: string) => n.startsWith("other"))
          ),
          [],
        );
        await error(await post(gw, "/v2/repository/models/never/unload"), 404, /Model "never" is not served/);
        // And it can come back.
        assert.equal((await post(gw, "/v2/repository/models/other/load")).status, 200);
      },
    );
  } finally {
    await repository.close();
    await Deno.remove(root, { recursive: true });
  }
});
