import assert from "node:assert/strict";
import { Gauge, Registry } from "prom-client";
import { captureLogs, fixture, readyApp } from "../tests/support/helpers.ts";
import { RequestStages } from "./stages.ts";
import { droppedTelemetry, guarded, recordSafely } from "./telemetry_guard.ts";

const dropped = (signal: string) => droppedTelemetry().get(signal) ?? 0;

Deno.test("the telemetry guard", async (t) => {
  const logs = await captureLogs("info");
  const warnings = (signal: string) =>
    logs.filter((l) =>
      String(l.rawMessage).startsWith("Dropped a {signal}") && l.properties.signal === signal
    );

  await t.step("an observation that throws is dropped, counted and logged once", () => {
    const before = dropped("guard_test_throw");
    const boom = () => {
      throw new Error("registry gone");
    };
    assert.equal(recordSafely("guard_test_throw", [1], boom), false);
    assert.equal(recordSafely("guard_test_throw", [2], boom), false);
    assert.equal(dropped("guard_test_throw") - before, 2);
    assert.equal(warnings("guard_test_throw").length, 1);
    assert.equal(warnings("guard_test_throw")[0].properties.error, "registry gone");
  });

  await t.step("a value that is not finite never reaches the metric", () => {
    const gauge = new Gauge({ name: "guard_test_gauge", help: "h", registers: [new Registry()] });
    const set = guarded("guard_test_nan", (v: number) => gauge.set(v))!;
    const before = dropped("guard_test_nan");
    set(5);
    set(NaN);
    set(Infinity);
    assert.equal(dropped("guard_test_nan") - before, 2);
    assert.equal((gauge as unknown as { hashMap: Record<string, { value: number }> }).hashMap[""].value, 5);
  });

  await t.step("numbers inside an object argument are checked too", () => {
    const seen: unknown[] = [];
    const hook = guarded(
      "guard_test_object",
      (image: { format: string; bytes: number }) => seen.push(image),
    )!;
    hook({ format: "jpeg", bytes: 10 });
    hook({ format: "jpeg", bytes: NaN });
    assert.deepEqual(seen, [{ format: "jpeg", bytes: 10 }]);
  });

  await t.step("no hook stays no hook", () => {
    assert.equal(guarded("guard_test_none", undefined), undefined);
  });
});

Deno.test("telemetry that throws or gets NaN never fails a request", async (t) => {
  await captureLogs("info");
  const { app, state, telemetry } = await readyApp();
  const { metrics } = telemetry;
  const boom = () => {
    throw new Error("metric broken");
  };
  // The real catalogue, broken where each hook and observation writes.
  const setQueueDepth = metrics.queueDepth.set.bind(metrics.queueDepth);
  metrics.inputBytes.observe = boom;
  metrics.queueDepth.set = boom;
  metrics.batchSize.observe = boom;
  metrics.stageDuration.observe = boom;
  metrics.httpDuration.observe = boom;
  const coffee = await fixture("images/coffee.jpg");

  await t.step("the classifier answers when its hooks throw", async () => {
    const before = ["image_input", "queue_depth", "batch_size"].map(dropped);
    const result = await state.classifier!.classify(coffee, 5);
    assert.equal(result.top.length, 5);
    assert.equal(result.image.format, "jpeg");
    ["image_input", "queue_depth", "batch_size"].forEach((signal, i) =>
      assert.ok(dropped(signal) > before[i], signal)
    );
  });

  await t.step("a request is answered when its observations throw", async () => {
    // The routes record no input metrics of their own once the classifier's hook is the only one.
    metrics.inputBytes.observe = () => {};
    const before = ["stage_duration", "http_request"].map(dropped);
    const res = await app.request("/predict", { method: "POST", body: coffee });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).top_k.length, 5);
    ["stage_duration", "http_request"].forEach((signal, i) => assert.ok(dropped(signal) > before[i], signal));
    // /metrics sets the queue depth gauge itself at scrape time.
    metrics.queueDepth.set = setQueueDepth;
    const text = await (await app.request("/metrics")).text();
    assert.match(text, /telemetry_dropped_total\{signal="image_input"\} [1-9]/);
    assert.match(text, /telemetry_dropped_total\{signal="stage_duration"\} [1-9]/);
  });

  await t.step("a stage timed in a worker with a NaN duration is dropped, not recorded", () => {
    const stages = new RequestStages(telemetry.tracing.tracer, metrics, () => undefined);
    const previous = dropped("stage_duration");
    stages.record("decode", performance.now(), NaN);
    assert.equal(dropped("stage_duration"), previous + 1);
  });
});

Deno.test("each image's bytes, pixels and format are recorded by the classifier", async () => {
  await captureLogs("info");
  const { state, telemetry } = await readyApp();
  const coffee = await fixture("images/coffee.jpg");
  await state.classifier!.classify(coffee, 5);
  const text = await (await telemetry.metrics.registry.metrics());
  assert.match(text, /image_input_bytes_count\{format="jpeg"\} 1\n/);
  assert.match(text, new RegExp(`image_input_bytes_sum\\{format="jpeg"\\} ${coffee.byteLength}\\n`));
  assert.match(text, /image_input_pixels_sum\{format="jpeg"\} 240000\n/);
});
