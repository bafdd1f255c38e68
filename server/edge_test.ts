import assert from "node:assert/strict";
import { ConfigError } from "../config.ts";
import { ModelState } from "../model/runtime/state.ts";
import { TrustedProxies } from "./client_address.ts";
import { edgeConfig, edgeFetch } from "./edge.ts";
import type { ConnectionInfo } from "../core/connection.ts";

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

Deno.test("the edge fetch handler", async (t) => {
  const info = {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.2", port: 40000 },
  } as Deno.ServeHandlerInfo;
  const seen: string[] = [];
  /** The app's stand-in: records the path, the client it was told of, and the model's status then. */
  const recorder = (state: ModelState) => (request: Request, connection: ConnectionInfo) => {
    seen.push(`${new URL(request.url).pathname} ${connection.client.address} ${state.status}`);
    return new Response("ok");
  };
  const none = new TrustedProxies([]);
  const state = new ModelState();
  let finishLoading!: () => void;
  const loading = new Promise<void>((resolve) => finishLoading = resolve);
  const fetch = edgeFetch(recorder(state), { state, loading, maxWaitMs: 5_000, trusted: none });

  await t.step("a probe is answered while loading, with the connection's peer as the client", async () => {
    await (await fetch(new Request("http://edge/ready"), info)).text();
    await (await fetch(new Request("http://edge/health"), info)).text();
    assert.deepEqual(seen.splice(0), ["/ready 127.0.0.2 loading", "/health 127.0.0.2 loading"]);
  });

  await t.step("a prediction is held until the model is ready, then served", async () => {
    const pending = fetch(new Request("http://edge/predict", { method: "POST" }), info);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen, [], "not passed on while loading");
    state.status = "ready";
    finishLoading();
    await (await pending).text();
    assert.deepEqual(seen.splice(0), ["/predict 127.0.0.2 ready"]);
  });

  await t.step(
    "a trusted proxy's forwarding header names the client, as behind the native server",
    async () => {
      const trusted = new TrustedProxies(["127.0.0.0/8"]);
      const proxied = edgeFetch(recorder(state), { state, loading, maxWaitMs: 5_000, trusted });
      const request = new Request("http://edge/health", { headers: { "x-forwarded-for": "203.0.113.7" } });
      await (await proxied(request, info)).text();
      assert.deepEqual(seen.splice(0), ["/health 203.0.113.7 ready"]);
    },
  );

  await t.step(
    "the wait is bounded: past it the request goes on (and gets 503 not_ready there)",
    async () => {
      const slow = new ModelState();
      const bounded = edgeFetch(recorder(slow), {
        state: slow,
        loading: new Promise(() => {}),
        maxWaitMs: 30,
        trusted: none,
      });
      const t0 = performance.now();
      await (await bounded(new Request("http://edge/predict", { method: "POST" }), info)).text();
      assert.ok(performance.now() - t0 < 2_000);
      assert.deepEqual(seen.splice(0), ["/predict 127.0.0.2 loading"]);
    },
  );

  await t.step("a failed load releases the waiting requests at once", async () => {
    const failing = new ModelState();
    let fail!: (err: Error) => void;
    const load = new Promise<void>((_, reject) => fail = reject);
    const guarded = edgeFetch(recorder(failing), {
      state: failing,
      loading: load,
      maxWaitMs: 60_000,
      trusted: none,
    });
    const pending = guarded(new Request("http://edge/v2/models/resnet50/infer", { method: "POST" }), info);
    failing.markFailed("bad model");
    fail(new Error("bad model"));
    await (await pending).text();
    assert.deepEqual(seen.splice(0), ["/v2/models/resnet50/infer 127.0.0.2 failed"]);
  });
});
