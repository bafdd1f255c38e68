import assert from "node:assert/strict";
import sharp from "sharp";
import { captureLogs, testConfig } from "../../tests/support/helpers.ts";
import { integerConvs, optimizedOpCounts } from "../../tests/support/fusion.ts";
import { choosePrecision, int8CachePath } from "./precision.ts";
import { ensureSynthetic, resolveModel } from "../artifact/resolve.ts";
import { zooPath } from "../artifact/zoo.ts";

const TMP = "./tests/tmp";

async function freshDir(name: string): Promise<string> {
  const dir = `${TMP}/${name}-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

/** A flat gray PNG: calibrating on these gives activation ranges far narrower than real photos'. */
function flatPng(gray: number): Promise<Uint8Array> {
  return sharp({
    create: { width: 320, height: 240, channels: 3, background: { r: gray, g: gray, b: gray } },
  })
    .png().toBuffer().then((b) => new Uint8Array(b));
}

/** A stand-in for the model zoo on loopback: serves `files` by the last segment of the path. */
function serveFiles(files: Record<string, Uint8Array<ArrayBuffer>>) {
  const hits: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const name = new URL(req.url).pathname.split("/").pop()!;
    hits.push(name);
    const body = files[name];
    return body ? new Response(body) : new Response("not found", { status: 404 });
  });
  return {
    url: (name: string) => `http://127.0.0.1:${server.addr.port}/models/${name}`,
    hits,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("MODEL_PRECISION", async (t) => {
  const synthetic = await ensureSynthetic(testConfig());
  let int8Path = "";

  await t.step("fp32 serves the fp32 file untouched", async () => {
    const config = testConfig({ MODEL_SOURCE: "synthetic" });
    assert.deepEqual(await choosePrecision(config, await resolveModel(config)), {
      path: synthetic.path,
      sha256: synthetic.sha256,
      precision: "fp32",
    });
  });

  await t.step("synthetic int8: quantized, gated on held-out photos, fused by onnxruntime", async () => {
    const logs = await captureLogs("info");
    const config = testConfig({ MODEL_SOURCE: "synthetic", MODEL_PRECISION: "int8" });
    const served = await choosePrecision(config, await resolveModel(config));
    const q = served.quantization!;
    assert.equal(served.precision, "int8");
    assert.equal(q.accepted, true);
    assert.equal(q.origin, "quantized-at-startup");
    assert.equal(q.heldOutImages, 40);
    assert.equal(q.heldOutPhotos, 4, "the 40 views come from 4 photos");
    assert.ok(q.top1Agreement! >= 0.9, `agreement ${q.top1Agreement}`);
    assert.ok(q.meanAbsTop1ConfidenceDelta! < 0.01);
    assert.match(q.note!, /describe the quantizer .*not ImageNet accuracy/);
    assert.notEqual(served.sha256, synthetic.sha256);
    const gate = logs.find((l) => String(l.rawMessage).startsWith("int8 quality gate passed"));
    assert.ok(gate, "the startup log carries the gate's figures");
    assert.equal(gate.properties.top1_agreement, +q.top1Agreement!.toFixed(4));
    assert.equal(gate.properties.held_out_photos, 4);
    const small = logs.find((l) =>
      l.level === "warning" && String(l.rawMessage).includes("only {held_out_photos}")
    );
    assert.ok(small, "four held-out photos are called a small sample");
    assert.equal(small.properties.held_out_photos, 4);
    assert.equal(integerConvs(await optimizedOpCounts(served.path, { tmpDir: TMP })), 53);
    int8Path = served.path;
  });

  await t.step("a second start reuses the cached int8 model and gate figures", async () => {
    const logs = await captureLogs("info");
    const config = testConfig({ MODEL_SOURCE: "synthetic", MODEL_PRECISION: "int8" });
    const t0 = performance.now();
    const served = await choosePrecision(config, await resolveModel(config));
    assert.equal(served.path, int8Path);
    assert.ok(logs.some((l) => String(l.rawMessage).startsWith("Using cached int8 model")));
    assert.ok(!logs.some((l) => String(l.rawMessage).startsWith("Quantizing")));
    // No quantization and no fp32 run: reading the photos and hashing the files only.
    assert.ok(performance.now() - t0 < 10_000);
  });

  await t.step("the cache key follows the source, the calibration set and the method", () => {
    const src = { path: "./models/m.onnx", sha256: "a".repeat(64) };
    const base = int8CachePath({ MODEL_DIR: "./models" }, src, { fingerprint: "f1" }, "percentile");
    assert.match(base, /^\.\/models\/m-int8-percentile-[0-9a-f]{12}\.onnx$/);
    assert.notEqual(
      int8CachePath(
        { MODEL_DIR: "./models" },
        { ...src, sha256: "b".repeat(64) },
        { fingerprint: "f1" },
        "percentile",
      ),
      base,
    );
    assert.notEqual(int8CachePath({ MODEL_DIR: "./models" }, src, { fingerprint: "f2" }, "percentile"), base);
    assert.notEqual(
      int8CachePath({ MODEL_DIR: "./models" }, src, { fingerprint: "f1" }, "minmax").replace(
        "minmax",
        "percentile",
      ),
      base,
    );
  });

  await t.step("an already quantized MODEL_PATH is served as it is, and reported as int8", async () => {
    const asked = await choosePrecision(
      testConfig({ MODEL_SOURCE: "file", MODEL_PATH: int8Path, MODEL_PRECISION: "int8" }),
      await resolveModel(testConfig({ MODEL_SOURCE: "file", MODEL_PATH: int8Path })),
    );
    assert.equal(asked.path, int8Path);
    assert.equal(asked.precision, "int8");
    assert.equal(asked.quantization!.origin, "pre-quantized");
    assert.equal(asked.quantization!.top1Agreement, undefined);
    const config = testConfig({ MODEL_SOURCE: "file", MODEL_PATH: int8Path });
    const unasked = await choosePrecision(config, await resolveModel(config));
    assert.equal(unasked.precision, "int8");
  });

  // Calibrated on flat gray images, tested on real photos: the ranges clip real activations.
  const badDir = await freshDir("badcal");
  await Deno.writeFile(`${badDir}/a_flat.png`, await flatPng(128));
  await Deno.writeFile(`${badDir}/b_flat.png`, await flatPng(90));
  await Deno.copyFile("./tests/fixtures/images/chelsea.jpg", `${badDir}/c_chelsea.jpg`);
  await Deno.copyFile("./tests/fixtures/images/rocket.jpg", `${badDir}/c_rocket.jpg`);
  const modelDir = await freshDir("int8-file");
  // MODEL_SOURCE=file: the user's own fp32 model is quantized at startup.
  const badEnv = {
    MODEL_SOURCE: "file",
    MODEL_PATH: synthetic.path,
    MODEL_DIR: modelDir,
    MODEL_PRECISION: "int8",
    CALIBRATION_DIR: badDir,
  };

  await t.step(
    "a badly calibrated int8 model is refused: fp32 is served with a WARN saying why",
    async () => {
      const logs = await captureLogs("info");
      const config = testConfig(badEnv);
      const served = await choosePrecision(config, await resolveModel(config));
      assert.equal(served.precision, "fp32");
      assert.equal(served.path, synthetic.path);
      const q = served.quantization!;
      assert.equal(q.accepted, false);
      assert.equal(q.heldOutImages, 20);
      assert.ok(q.top1Agreement! < 0.9, `agreement ${q.top1Agreement}`);
      assert.match(q.reason!, /held-out top-1 agreement 0\.\d+ is below INT8_MIN_AGREEMENT 0\.9/);
      const warn = logs.find((l) => l.level === "warning" && String(l.rawMessage).startsWith("INT8 REFUSED"));
      assert.ok(warn, "a WARN explains the refusal");
      assert.match(String(warn.properties.reason), /below INT8_MIN_AGREEMENT/);
    },
  );

  await t.step("the same model passes when the bar is set below its agreement", async () => {
    const config = testConfig({ ...badEnv, INT8_MIN_AGREEMENT: "0.5" });
    const served = await choosePrecision(config, await resolveModel(config));
    assert.equal(served.precision, "int8");
    assert.equal(served.quantization!.accepted, true);
    assert.equal(integerConvs(await optimizedOpCounts(served.path, { tmpDir: TMP })), 53);
  });
  await Deno.remove(badDir, { recursive: true });
  await Deno.remove(modelDir, { recursive: true });

  await t.step(
    "zoo: the int8 file is downloaded, checksum-verified and gated against the fp32 file",
    async () => {
      const fp32Bytes = await Deno.readFile(synthetic.path);
      const int8Bytes = await Deno.readFile(int8Path);
      await using zoo = serveFiles({
        "resnet50-v1-12.onnx": fp32Bytes,
        "resnet50-v1-12-int8.onnx": int8Bytes,
      });
      const dir = await freshDir("zoo-int8");
      const config = testConfig({
        MODEL_SOURCE: "zoo",
        MODEL_DIR: dir,
        MODEL_PRECISION: "int8",
        MODEL_ZOO_URL: zoo.url("resnet50-v1-12.onnx"),
        MODEL_ZOO_SHA256: synthetic.sha256,
        MODEL_ZOO_INT8_URL: zoo.url("resnet50-v1-12-int8.onnx"),
        MODEL_ZOO_INT8_SHA256:
          (await resolveModel(testConfig({ MODEL_SOURCE: "file", MODEL_PATH: int8Path }))).sha256,
      });
      const served = await choosePrecision(config, await resolveModel(config));
      assert.equal(served.path, zooPath(config, "int8"));
      assert.equal(served.precision, "int8");
      assert.equal(served.quantization!.origin, "zoo");
      assert.ok(served.quantization!.top1Agreement! >= 0.9);
      assert.deepEqual(zoo.hits, ["resnet50-v1-12.onnx", "resnet50-v1-12-int8.onnx"]);
      await Deno.remove(dir, { recursive: true });
    },
  );
});
