/**
 * Shutdown as a state machine, in process: loading -> ready -> draining (out
 * of rotation, still serving) -> drained (admitting nothing), with a request
 * in flight across the transitions. Each state is checked as the HTTP layer
 * shows it (/ready, /predict) before the next transition, with a runner the
 * test finishes by hand. tests/shutdown_test.ts does the same to a real
 * process under load, end to end.
 */
import assert from "node:assert/strict";
import { ControlledRunner } from "./support/controlled_runner.ts";
import { captureLogs, fixture, sharedClassifier, testConfig, testTelemetry } from "./support/helpers.ts";
import { buildClassifier } from "../model/runtime/build.ts";
import { loadLabels } from "../model/classes/labels.ts";
import { ModelState } from "../model/runtime/state.ts";
import { createApp } from "../routes/app.ts";

const tick = () => new Promise((r) => setTimeout(r, 5));

/** Waits for `condition`, failing (never hanging) if it does not hold within 20 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 20_000;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await tick();
  }
}

async function setup() {
  await captureLogs("info");
  const shared = await sharedClassifier();
  const runner = new ControlledRunner(1000, shared.info);
  const config = testConfig({ PREPROCESS_WORKERS: "0", MAX_BATCH_SIZE: "1" });
  const state = new ModelState();
  const { telemetry } = testTelemetry(config);
  const app = createApp({ config, state, telemetry });
  const classifier = buildClassifier(config, { runners: [runner], info: shared.info }, await loadLabels());
  const coffee = await fixture("images/coffee.jpg");
  const predict = () => app.request("/predict", { method: "POST", body: coffee });
  const ready = async () => {
    const res = await app.request("/ready");
    await res.body?.cancel();
    return res.status;
  };
  return { app, runner, state, classifier, predict, ready };
}

async function code(res: Response): Promise<[number, string | undefined]> {
  const body = await res.json();
  return [res.status, body.code];
}

Deno.test("loading -> ready -> draining -> drained, with a request in flight across each", async () => {
  const { app, runner, state, classifier, predict, ready } = await setup();

  // loading: alive, not ready, predictions refused with Retry-After.
  assert.equal((await app.request("/health")).status, 200);
  assert.equal(await ready(), 503);
  const early = await predict();
  assert.equal(early.headers.get("retry-after") !== null, true);
  assert.deepEqual(await code(early), [503, "not_ready"]);

  // ready
  state.markReady(classifier, 0, 0);
  assert.equal(await ready(), 200);
  const inFlight = predict();
  await until(() => runner.calls.length >= 1, "the runner is running a batch");

  // draining: out of rotation at once, but a new request is still served (the LB may not know yet).
  state.drain();
  assert.equal(state.status, "draining");
  assert.equal(await ready(), 503);
  const late = predict();
  await until(() => classifier.batcher.queueDepth >= 1, "a request is queued");

  // drained: the classifier's drain stops admission and waits for both.
  let drained = false;
  const drain = classifier.drain().then(() => drained = true);
  assert.deepEqual(await code(await predict()), [503, "not_ready"], "nothing new is admitted");
  await tick();
  assert.equal(drained, false, "one running, one queued");
  runner.finishAll();
  assert.equal((await inFlight).status, 200, "the request in flight at SIGTERM is answered");
  await until(() => runner.calls.length >= 1, "the runner is running a batch");
  await tick();
  assert.equal(drained, false, "the one queued during the drain now runs");
  runner.finishAll();
  assert.equal((await late).status, 200, "and is answered");
  await drain;
  assert.equal(drained, true);
  assert.equal(classifier.batcher.queueDepth, 0);
});

Deno.test("a model that finishes loading during shutdown serves but never reports ready", async () => {
  const { state, classifier, ready, predict, runner } = await setup();
  state.drain();
  assert.equal(await ready(), 503);
  state.markReady(classifier, 0, 0);
  assert.equal(state.status, "draining");
  assert.equal(await ready(), 503, "not back in rotation");
  const res = predict();
  await until(() => runner.calls.length >= 1, "the runner is running a batch");
  runner.finishAll();
  assert.equal((await res).status, 200, "work that reaches it is still served");
});

Deno.test("a failed load: not ready, predictions refused, the reason shown", async () => {
  const { state, ready, predict, app } = await setup();
  state.markFailed("the model file is not ONNX");
  assert.equal(await ready(), 503);
  const [status, problem] = await code(await predict());
  assert.deepEqual([status, problem], [503, "not_ready"]);
  const info = await (await app.request("/ready")).text();
  assert.match(info, /failed|not ONNX/);
});
