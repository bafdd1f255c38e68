import assert from "node:assert/strict";
import { captureLogs, testConfig } from "../../tests/support/helpers.ts";
import { Batcher } from "./batcher.ts";
import { ensureSynthetic } from "../artifact/resolve.ts";
import { superviseWorkers } from "./build.ts";
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import type { OrtRunnerOptions } from "./ort_runner.ts";
import { WorkerCrashedError, WorkerRunner } from "./worker_runner.ts";

async function options(): Promise<OrtRunnerOptions> {
  const resolved = await ensureSynthetic(testConfig());
  return { ...resolved, name: "resnet50", precision: "fp32", intraOpThreads: 1 };
}

Deno.test("inference worker", async (t) => {
  await captureLogs("info");
  const opts = await options();

  await t.step("runs the model off the main thread with the same results as in-process", async () => {
    const w = await WorkerRunner.create(opts, 1);
    try {
      assert.equal(w.info.inputName, "input");
      const input = new Float32Array(2 * TENSOR_SIZE).map((_, i) => (i % 97) / 97);
      const copy = input.slice();
      const out = await w.run(input, 2);
      assert.equal(out.length, 2 * 1000);
      const again = await w.run(copy, 2);
      assert.deepEqual([...out.slice(0, 10)], [...again.slice(0, 10)]);
    } finally {
      await w.close();
    }
  });

  await t.step("a worker killed mid-run answers its in-flight call with an error at once", async () => {
    const w = await WorkerRunner.create(opts, 1);
    const pending = w.run(new Float32Array(4 * TENSOR_SIZE), 4);
    w.kill();
    await assert.rejects(pending, WorkerCrashedError);
    await assert.rejects(w.run(new Float32Array(TENSOR_SIZE), 1), WorkerCrashedError);
    assert.match(w.dead!, /terminated/);
  });

  await t.step("a dead worker is replaced and queued requests complete on the replacement", async () => {
    const w = await WorkerRunner.create(opts, 1);
    const batcher = new Batcher([w], { maxBatchSize: 1, maxBatchDelayMs: 0, maxQueue: 8, classes: 1000 });
    const restarts: string[] = [];
    let replacement: WorkerRunner | undefined;
    superviseWorkers(batcher, opts, (reason) => restarts.push(reason), async (o) => {
      replacement = await WorkerRunner.create(o, 1);
      return replacement;
    });
    const inFlight = batcher.submit(new Float32Array(TENSOR_SIZE));
    const queued = batcher.submit(new Float32Array(TENSOR_SIZE));
    await new Promise((r) => setTimeout(r, 0));
    w.kill();
    await assert.rejects(inFlight, WorkerCrashedError);
    const result = await queued;
    assert.equal(result.row.length, 1000);
    assert.equal(restarts.length, 1);
    assert.equal(batcher.runners.length, 1);
    assert.equal(batcher.runners[0], replacement);
    await replacement!.close();
  });

  await t.step("a model the worker cannot load fails creation with the reason", async () => {
    await assert.rejects(
      WorkerRunner.create({ ...opts, path: "./models/does-not-exist.onnx" }, 1),
      /Cannot load ONNX model .*does-not-exist/,
    );
  });
});
