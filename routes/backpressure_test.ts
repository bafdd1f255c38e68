/**
 * Back-pressure through the real HTTP path and the real batcher, with a
 * runner the test finishes by hand so timing is deterministic.
 */
import assert from "node:assert/strict";
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

async function setup(env: Record<string, string>) {
  await captureLogs("info");
  const shared = await sharedClassifier();
  const runner = new ControlledRunner(1000, shared.info);
  const config = testConfig(env);
  const state = await stateWithRunner(runner, env);
  const { telemetry } = testTelemetry(config);
  const app = createApp({ config, state, telemetry });
  const coffee = await fixture("images/coffee.jpg");
  const predict = () => app.request("/predict", { method: "POST", body: coffee });
  return { app, runner, state, predict };
}

Deno.test("a full queue answers 503 overloaded at once, with Retry-After", async () => {
  const { app, runner, state, predict } = await setup({ MAX_QUEUE: "1", MAX_BATCH_SIZE: "1" });
  const running = predict();
  while (runner.calls.length < 1) await tick();
  const queued = predict();
  while (state.classifier!.batcher.queueDepth < 1) await tick();
  // Refused before its body is even read: the queue place is taken at arrival.
  const refused = await predict();
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("retry-after"), "1");
  assert.equal((await refused.json()).code, "overloaded");
  const health = await app.request("/health");
  assert.equal(health.status, 200, "liveness answers while inference is saturated");
  runner.finishAll();
  assert.equal((await running).status, 200);
  while (runner.calls.length < 1) await tick();
  runner.finishAll();
  assert.equal((await queued).status, 200);
  const metrics = await (await app.request("/metrics")).text();
  assert.match(metrics, /requests_rejected_total\{reason="overloaded"\} 1/);
  assert.match(metrics, /inference_queue_limit 1/);
});

Deno.test("a request that cannot reach the model in time answers 504 and is never run", async () => {
  const { runner, predict } = await setup({ REQUEST_TIMEOUT_MS: "30", MAX_BATCH_SIZE: "1" });
  const running = predict();
  while (runner.calls.length < 1) await tick();
  const late = await predict();
  assert.equal(late.status, 504);
  assert.equal((await late.json()).code, "timeout");
  runner.finishAll();
  assert.equal((await running).status, 200);
  await tick();
  assert.equal(runner.calls.length, 0, "the timed-out request never reached the model");
});

Deno.test("while draining, /ready is 503 and new predictions are refused; in-flight ones finish", async () => {
  const { app, runner, state, predict } = await setup({});
  const running = predict();
  while (runner.calls.length < 1) await tick();
  state.drain();
  const drained = state.classifier!.batcher.drain();
  assert.equal((await app.request("/ready")).status, 503);
  const refused = await predict();
  assert.equal(refused.status, 503);
  assert.equal((await refused.json()).code, "not_ready");
  runner.finishAll();
  assert.equal((await running).status, 200);
  await drained;
});
