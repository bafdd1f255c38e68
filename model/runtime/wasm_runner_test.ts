import assert from "node:assert/strict";
import { fixture, manifest, testConfig } from "../../tests/support/helpers.ts";
import { PreprocessPool } from "../../image/preprocess_pool.ts";
import { readImageHeader } from "../../image/image_header.ts";
import { prepareImage } from "../../image/prepare.ts";
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import { createRunner } from "./backends.ts";
import { type LocalRunner, ModelShapeError, type RunnerOptions } from "./runner.ts";
import { ensureSynthetic } from "../artifact/resolve.ts";
import { wasmThreads } from "./wasm_runner.ts";

/** The bound for the same model on the same tensor: kernels differ, the maths must not. */
const MAX_LOGIT_DELTA = 1e-3;

function maxAbsDelta(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Every fixture photo, decoded and preprocessed once by the native profile's path. */
async function fixtureTensors(): Promise<Array<{ file: string; tensor: Float32Array }>> {
  const out = [];
  for (const img of await manifest()) {
    const bytes = await fixture(img.file);
    const { tensor } = await prepareImage(bytes, readImageHeader(bytes));
    out.push({ file: img.file, tensor });
  }
  return out;
}

Deno.test("wasm fp32 gives native fp32's logits on the same tensor", async (t) => {
  const resolved = await ensureSynthetic(testConfig());
  const options: RunnerOptions = { ...resolved, name: "resnet50", intraOpThreads: 2, precision: "fp32" };
  const native = await createRunner({ ...options, backend: "native" });
  const wasm = await createRunner({ ...options, backend: "wasm" });
  try {
    await t.step("both describe the same model; each names its runtime", () => {
      assert.equal(native.info.runtime, "onnxruntime-node");
      assert.equal(wasm.info.runtime, "onnxruntime-web");
      assert.match(wasm.info.runtimeVersion, /^\d+\.\d+\.\d+/);
      for (const key of ["inputName", "outputName", "classes", "sha256", "weights"] as const) {
        assert.deepEqual(wasm.info[key], native.info[key], key);
      }
      assert.equal(wasm.info.intraOpThreads, 2, "WebAssembly threads run here (Deno has Workers)");
    });

    const tensors = await fixtureTensors();
    await t.step(
      `every fixture photo's tensor, one at a time (max |Δlogit| <= ${MAX_LOGIT_DELTA})`,
      async () => {
        for (const { file, tensor } of tensors) {
          const delta = maxAbsDelta(await native.run(tensor, 1), await wasm.run(tensor, 1));
          assert.ok(delta <= MAX_LOGIT_DELTA, `${file}: max |Δlogit| ${delta}`);
        }
      },
    );

    await t.step("a batch of 3 equals its rows run alone", async () => {
      const batch = new Float32Array(3 * TENSOR_SIZE);
      for (let i = 0; i < 3; i++) batch.set(tensors[i].tensor, i * TENSOR_SIZE);
      const rows = (await wasm.run(batch, 3)).slice();
      assert.equal(rows.length, 3 * wasm.info.classes);
      assert.ok(maxAbsDelta(rows, (await native.run(batch, 3)).slice()) <= MAX_LOGIT_DELTA);
      const second = (await wasm.run(tensors[1].tensor, 1)).slice();
      assert.ok(maxAbsDelta(rows.subarray(wasm.info.classes, 2 * wasm.info.classes), second) <= 1e-4);
    });

    await t.step("warm-up decides softmax the same way", async () => {
      await Promise.all([native.warmup(1), wasm.warmup(1)]);
      assert.equal(wasm.info.outputsProbabilities, native.info.outputsProbabilities);
    });

    await t.step("an input shorter than its batch is refused", async () => {
      await assert.rejects(wasm.run(new Float32Array(TENSOR_SIZE), 2), RangeError);
    });
  } finally {
    await Promise.all([native.close(), wasm.close()]);
  }
});

Deno.test("the wasm backend loads bytes held in memory and refuses what is not a classifier", async () => {
  const resolved = await ensureSynthetic(testConfig());
  const bytes = await Deno.readFile(resolved.path);
  const base = {
    ...resolved,
    name: "resnet50",
    intraOpThreads: 2,
    precision: "fp32" as const,
    backend: "wasm" as const,
  };
  let runner: LocalRunner | undefined = await createRunner({ ...base, path: "memory:test", bytes });
  try {
    assert.equal(runner.info.path, "memory:test");
    assert.equal((await runner.run(new Float32Array(TENSOR_SIZE), 1)).length, 1000);
  } finally {
    await runner.close();
    runner = undefined;
  }
  await assert.rejects(
    createRunner({ ...base, path: "memory:garbage", bytes: new Uint8Array([1, 2, 3, 4]) }),
    (err: unknown) =>
      err instanceof ModelShapeError && /Cannot load ONNX model memory:garbage/.test(err.message),
  );
  await assert.rejects(
    createRunner({ ...base, path: "./tests/tmp/no-such-model.onnx" }),
    (err: unknown) => err instanceof ModelShapeError && /No such file|not found/i.test(err.message),
  );
});

Deno.test("Deno Workers still start after onnxruntime-web has loaded (its glue swaps the global Worker)", async () => {
  const resolved = await ensureSynthetic(testConfig());
  const runner = await createRunner({
    ...resolved,
    name: "resnet50",
    intraOpThreads: 2,
    precision: "fp32",
    backend: "wasm",
  });
  const pool = new PreprocessPool(1, { codecs: "wasm" });
  try {
    const bytes = await fixture("images/coffee.jpg");
    const prepared = await pool.prepare(bytes, readImageHeader(bytes));
    assert.equal(prepared.tensor.length, TENSOR_SIZE);
    // And the runtime's own threads keep working next to it.
    assert.equal((await runner.run(prepared.tensor, 1)).length, 1000);
  } finally {
    pool.close();
    await runner.close();
  }
});

Deno.test("WebAssembly threads: as asked where there are Workers, one where there are none", () => {
  assert.equal(wasmThreads(2, true), 2);
  assert.equal(wasmThreads(3, true), 3);
  assert.equal(wasmThreads(2, false), 1);
  assert.equal(wasmThreads(0, false), 1);
  const auto = wasmThreads(0, true);
  assert.ok(auto >= 1 && auto <= 4, `onnxruntime's own choice: ${auto}`);
});
