import assert from "node:assert/strict";
import { ConfigError } from "../config.ts";
import { ModelState } from "../model/state.ts";
import { edgeConfig, waitForModel } from "./edge.ts";

Deno.test("the edge profile's configuration", async (t) => {
  await t.step("defaults to the WASM backend, inline, and otherwise to the gateway's defaults", () => {
    const { config, notes } = edgeConfig(() => undefined, true);
    assert.equal(config.INFERENCE_BACKEND, "wasm");
    assert.equal(config.INFERENCE_WORKERS, 0);
    assert.equal(config.PREPROCESS_WORKERS, 0);
    assert.equal(config.MAX_BATCH_SIZE, 4);
    assert.deepEqual(notes, []);
  });

  await t.step("what the operator sets wins, as with main.ts", () => {
    const env: Record<string, string> = { INFERENCE_WORKERS: "1", INTRA_OP_THREADS: "1", MAX_QUEUE: "8" };
    const { config } = edgeConfig((n) => env[n], true);
    assert.deepEqual([config.INFERENCE_WORKERS, config.INTRA_OP_THREADS, config.MAX_QUEUE], [1, 1, 8]);
  });

  await t.step("Workers asked for where there are none run inline, with a note to log", () => {
    const env: Record<string, string> = { INFERENCE_WORKERS: "2", PREPROCESS_WORKERS: "1" };
    const { config, notes } = edgeConfig((n) => env[n], false);
    assert.deepEqual([config.INFERENCE_WORKERS, config.PREPROCESS_WORKERS], [0, 0]);
    assert.equal(notes.length, 2);
    assert.match(notes[0], /INFERENCE_WORKERS=2 ignored: this runtime has no Workers/);
  });

  await t.step("a bad value stops startup as it does for main.ts", () => {
    assert.throws(() => edgeConfig((n) => (n === "INFERENCE_BACKEND" ? "gpu" : undefined)), ConfigError);
  });
});

Deno.test("requests during a cold start wait for the model, probes do not", async (t) => {
  const info = {} as Deno.ServeHandlerInfo;
  const seen: string[] = [];
  /** The app's stand-in: records which path it saw and the model's status at that moment. */
  const recorder = (state: ModelState) => (request: Request) => {
    seen.push(`${new URL(request.url).pathname} ${state.status}`);
    return new Response("ok");
  };
  const state = new ModelState();
  let finishLoading!: () => void;
  const loading = new Promise<void>((resolve) => finishLoading = resolve);
  const fetch = waitForModel(recorder(state), state, loading, 5_000);

  await t.step("a probe is answered while loading", async () => {
    await (await fetch(new Request("http://edge/ready"), info)).text();
    await (await fetch(new Request("http://edge/health"), info)).text();
    assert.deepEqual(seen.splice(0), ["/ready loading", "/health loading"]);
  });

  await t.step("a prediction is held until the model is ready, then served", async () => {
    const pending = fetch(new Request("http://edge/predict", { method: "POST" }), info);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen, [], "not passed on while loading");
    state.status = "ready";
    finishLoading();
    await (await pending).text();
    assert.deepEqual(seen.splice(0), ["/predict ready"]);
  });

  await t.step(
    "the wait is bounded: past it the request goes on (and gets 503 not_ready there)",
    async () => {
      const slow = new ModelState();
      const never = new Promise<void>(() => {});
      const bounded = waitForModel(recorder(slow), slow, never, 30);
      const t0 = performance.now();
      await (await bounded(new Request("http://edge/predict", { method: "POST" }), info)).text();
      assert.ok(performance.now() - t0 < 2_000);
      assert.deepEqual(seen.splice(0), ["/predict loading"]);
    },
  );

  await t.step("a failed load releases the waiting requests at once", async () => {
    const failing = new ModelState();
    let fail!: (err: Error) => void;
    const load = new Promise<void>((_, reject) => fail = reject);
    const guarded = waitForModel(recorder(failing), failing, load, 60_000);
    const pending = guarded(new Request("http://edge/v2/models/resnet50/infer", { method: "POST" }), info);
    failing.markFailed("bad model");
    fail(new Error("bad model"));
    await (await pending).text();
    assert.deepEqual(seen.splice(0), ["/v2/models/resnet50/infer failed"]);
  });
});
