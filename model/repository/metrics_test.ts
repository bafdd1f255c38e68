import assert from "node:assert/strict";
import { ModelState } from "../runtime/state.ts";
import { createApp } from "../../routes/app.ts";
import { captureLogs, sharedClassifier, testConfig, testTelemetry } from "../../tests/support/helpers.ts";
import { bindModelMetrics, modelReadings } from "./metrics.ts";

const scrape = async (app: { request(path: string): Response | Promise<Response> }) =>
  await (await app.request("/metrics")).text();

Deno.test("model gauges are read from the state at each scrape", async (t) => {
  await captureLogs("info");
  const config = testConfig({ MAX_QUEUE: "7" });
  const { telemetry } = testTelemetry(config);
  const state = new ModelState();
  const app = createApp({ config, state, telemetry });

  await t.step(
    "loading: not ready, nothing loaded yet; the fixed gauges are there from the start",
    async () => {
      const text = await scrape(app);
      assert.match(text, /^model_ready 0$/m);
      assert.match(text, /^inference_queue_limit 7$/m);
      assert.match(
        text,
        /^build_info\{version="0\.0\.0-test",deno="[^"]+",v8="[^"]+",typescript="[^"]+"\} 1$/m,
      );
      assert.doesNotMatch(text, /^model_info\{/m);
    },
  );

  await t.step("ready: no hook is called, yet the next scrape says so", async () => {
    const shared = await sharedClassifier();
    state.markReady(shared, 1.25, 3);
    const text = await scrape(app);
    assert.match(text, /^model_ready 1$/m);
    assert.match(text, /^model_load_duration_seconds 1\.25$/m);
    assert.match(text, /^inference_workers 1$/m);
    assert.match(text, /^inference_queue_depth 0$/m);
    assert.match(text, /^model_info\{name="resnet50",[^}]*weights="synthetic",precision="fp32"[^}]*\} 1$/m);
  });

  await t.step("draining and failed: not ready", async () => {
    state.drain();
    assert.match(await scrape(app), /^model_ready 0$/m);
    const failed = new ModelState();
    failed.markFailed("broken");
    assert.equal(modelReadings(failed).ready, false);
  });

  await t.step("a reading that throws or is not finite is dropped; the scrape still answers", async () => {
    const { telemetry } = testTelemetry(config);
    const app = createApp({ config, state: new ModelState(), telemetry });
    const broken = { status: "ready", loadSeconds: NaN } as unknown as ModelState;
    bindModelMetrics(telemetry.metrics, broken);
    let text = await scrape(app);
    assert.match(text, /^model_ready 1$/m);
    assert.doesNotMatch(text, /^model_load_duration_seconds NaN$/m);
    assert.match(text, /^telemetry_dropped_total\{signal="model_readings"\} [1-9]/m);
    const throwing = {
      get status(): never {
        throw new Error("state unreadable");
      },
    } as unknown as ModelState;
    bindModelMetrics(telemetry.metrics, throwing);
    const res = await app.request("/metrics");
    assert.equal(res.status, 200);
    text = await res.text();
    assert.match(text, /^model_ready 0$/m, "what cannot be read is not ready");
  });
});
