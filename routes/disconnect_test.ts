/**
 * A client that goes away while its request waits in the queue: through the
 * real listener (connection guard and Deno.serve, as `deno task start` runs
 * them), the queued work is dropped and never reaches the model. Deno.serve
 * alone does not notice such a client once it has read a photo-sized body.
 */
import assert from "node:assert/strict";
import { startServer } from "../server/serve.ts";
import { ControlledRunner } from "../tests/support/controlled_runner.ts";
import {
  captureLogs,
  fixture,
  sharedClassifier,
  stateWithRunner,
  testConfig,
  testTelemetry,
} from "../tests/support/helpers.ts";
import { createApp } from "./app.ts";

const tick = () => new Promise((r) => setTimeout(r, 5));

for (const protocol of ["/predict", "/v2/models/resnet50-image/infer"]) {
  Deno.test(`${protocol}: a client that disconnects while queued leaves the queue; its work never runs`, async () => {
    await captureLogs("info");
    const env = { MAX_BATCH_SIZE: "1", HOST: "127.0.0.1", PORT: "0" };
    const runner = new ControlledRunner(1000, (await sharedClassifier()).info);
    const state = await stateWithRunner(runner, env);
    const config = testConfig(env);
    const { telemetry } = testTelemetry(config);
    const server = await startServer({
      config,
      app: createApp({ config, state, telemetry }),
      state,
      telemetry,
    });
    const url = `http://127.0.0.1:${server.addr.port}${protocol}`;
    const coffee = await fixture("images/coffee.jpg");
    const body = protocol === "/predict" ? coffee : JSON.stringify({
      inputs: [{ name: "image", shape: [1], datatype: "BYTES", data: [coffee.toBase64()] }],
    });
    try {
      const running = fetch(url, { method: "POST", body });
      while (runner.calls.length < 1) await tick();
      const gone = new AbortController();
      const queued = fetch(url, { method: "POST", body, signal: gone.signal });
      const batcher = state.classifier!.batcher;
      while (batcher.queueDepth < 1) await tick();
      gone.abort();
      await assert.rejects(queued);
      for (let i = 0; i < 400 && batcher.queueDepth > 0; i++) await tick();
      assert.equal(batcher.queueDepth, 0, "the abandoned request left the queue");

      runner.finishAll();
      const res = await running;
      assert.equal(res.status, 200, "the request still connected is answered");
      await res.body?.cancel();
      await tick();
      assert.equal(runner.calls.length, 0, "the abandoned request never reached the model");
      const metrics = await (await fetch(`http://127.0.0.1:${server.addr.port}/metrics`)).text();
      assert.match(metrics, /requests_rejected_total\{reason="client_closed"\} 1/);
    } finally {
      runner.finishAll();
      await server.shutdown("test");
    }
  });
}
