/**
 * int8 on the WASM profile: the same quantized file gives the same top-1 on
 * onnxruntime-web as on onnxruntime-node, and where nothing may be quantized
 * (the edge entry, a model held in memory) a file quantized ahead is served
 * as int8 while an fp32 one under MODEL_PRECISION=int8 is refused plainly.
 */
import assert from "node:assert/strict";
import { captureLogs, fixture, manifest, testConfig } from "../tests/support/helpers.ts";
import { readImageHeader } from "../image/image_header.ts";
import { prepareImage } from "../image/prepare.ts";
import { choosePrecision, servedAsIs } from "./quantize/precision.ts";
import { createRunner } from "./runtime/backends.ts";
import type { RunnerOptions } from "./runtime/runner.ts";
import { ensureSynthetic, ModelLoadError, resolveModel } from "./artifact/resolve.ts";

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** The int8 model the gateway makes from the synthetic ResNet-50 (quantized once, cached in ./models). */
async function int8Model() {
  const config = testConfig({ MODEL_SOURCE: "synthetic", MODEL_PRECISION: "int8" });
  const served = await choosePrecision(config, await resolveModel(config));
  assert.equal(served.precision, "int8", served.quantization?.reason ?? "int8 refused");
  return served;
}

Deno.test("wasm int8 gives native int8's top-1 on the same file, for every fixture photo", async () => {
  await captureLogs("info");
  const served = await int8Model();
  const options: RunnerOptions = {
    path: served.path,
    sha256: served.sha256,
    name: "resnet50",
    weights: "synthetic",
    source: "synthetic",
    precision: "int8",
    intraOpThreads: 2,
  };
  const native = await createRunner({ ...options, backend: "native" });
  const wasm = await createRunner({ ...options, backend: "wasm" });
  try {
    const rows: string[] = [];
    let agree = 0;
    let maxDelta = 0;
    const images = await manifest();
    for (const img of images) {
      const bytes = await fixture(img.file);
      const { tensor } = await prepareImage(bytes, readImageHeader(bytes));
      const a = (await native.run(tensor, 1)).slice();
      const b = (await wasm.run(tensor, 1)).slice();
      for (let i = 0; i < a.length; i++) maxDelta = Math.max(maxDelta, Math.abs(a[i] - b[i]));
      if (argmax(a) === argmax(b)) agree++;
      rows.push(`${img.file}: ${argmax(a)} / ${argmax(b)}`);
    }
    console.log(`int8 top-1 native/wasm: ${agree}/${images.length}; max |Δlogit| ${maxDelta.toFixed(4)}`);
    assert.equal(agree, images.length, rows.join("\n"));
  } finally {
    await Promise.all([native.close(), wasm.close()]);
  }
});

Deno.test("where nothing may be quantized, the model is served as it is", async (t) => {
  await captureLogs("info");
  const fp32 = await ensureSynthetic(testConfig());
  const int8 = await int8Model();

  await t.step("a file quantized ahead is served as int8, said to be pre-quantized", async () => {
    for (const precision of ["fp32", "int8"] as const) {
      const config = testConfig({ MODEL_PATH: int8.path, MODEL_PRECISION: precision });
      const resolved = await resolveModel(config, undefined, { disk: false });
      const served = servedAsIs(config, resolved, "no-disk");
      assert.equal(served.precision, "int8", precision);
      assert.equal(served.path, int8.path);
      if (precision === "int8") assert.equal(served.quantization?.origin, "pre-quantized");
    }
  });

  await t.step("held in memory, the bytes are what is inspected", async () => {
    const config = testConfig({
      MODEL_PRECISION: "int8",
      MODEL_SOURCE: "url",
      MODEL_URL: "http://models.example/int8.onnx",
      MODEL_SHA256: int8.sha256,
    });
    const bytes = await Deno.readFile(int8.path);
    // MODEL_URL's model is fetched into memory and inspected there, never written.
    const resolved = await resolveModel(config, () => Promise.resolve(new Response(bytes)));
    assert.ok(resolved.bytes && resolved.weights === "synthetic" && resolved.quantized);
    const served = servedAsIs(config, resolved, "in-memory");
    assert.equal(served.precision, "int8");
  });

  await t.step("fp32 is served as fp32 when fp32 is asked", async () => {
    const config = testConfig({ MODEL_PATH: fp32.path });
    const served = servedAsIs(config, await resolveModel(config), "no-disk");
    assert.deepEqual(served, { path: fp32.path, sha256: fp32.sha256, precision: "fp32" });
  });

  await t.step("MODEL_PRECISION=int8 over an fp32 model says how to quantize ahead", async () => {
    const config = testConfig({ MODEL_PATH: fp32.path, MODEL_PRECISION: "int8" });
    const resolved = await resolveModel(config);
    assert.throws(
      () => servedAsIs(config, resolved, "no-disk"),
      (err: unknown) =>
        err instanceof ModelLoadError &&
        /needs a writable MODEL_DIR and the native runtime/.test(err.message) &&
        /deno task model:synth/.test(err.message),
    );
  });
});
