import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { captureLogs, testConfig } from "../../tests/support/helpers.ts";
import { ZOO_INT8_MODEL_BYTES, zooPath } from "./zoo.ts";
import { ensureSynthetic, resolveModel, resolveZooInt8, syntheticPath } from "./resolve.ts";
import { DownloadError, downloadVerified, sha256File } from "./download.ts";

const TMP = "./tests/tmp";

/** A local stand-in for the model zoo: a real HTTP server on loopback serving `body`. */
function serveFile(body: Uint8Array<ArrayBuffer>, options: { status?: number } = {}) {
  let hits = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    hits++;
    return new Response(body, { status: options.status ?? 200 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/models/resnet50-v1-12.onnx`,
    hits: () => hits,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

async function freshDir(name: string): Promise<string> {
  const dir = `${TMP}/${name}-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const listDir = async (dir: string) => (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();

Deno.test("model download", async (t) => {
  await captureLogs("info");
  const payload = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 2654435761) >>> 24);

  await t.step("streams, verifies and renames into place, reporting progress", async () => {
    await using zoo = serveFile(payload);
    const dir = await freshDir("dl");
    const progress: number[] = [];
    await downloadVerified({
      url: zoo.url,
      sha256: sha256(payload),
      dest: `${dir}/m.onnx`,
      progressIntervalMs: 0,
      onProgress: (n) => progress.push(n),
    });
    assert.equal(await sha256File(`${dir}/m.onnx`), sha256(payload));
    assert.deepEqual(await listDir(dir), ["m.onnx"]);
    assert.equal(progress.at(-1), payload.length);
    await Deno.remove(dir, { recursive: true });
  });

  await t.step("a checksum mismatch deletes the file and says so", async () => {
    await using zoo = serveFile(payload);
    const dir = await freshDir("dl");
    await assert.rejects(
      downloadVerified({ url: zoo.url, sha256: "0".repeat(64), dest: `${dir}/m.onnx` }),
      (e: unknown) => e instanceof DownloadError && /Checksum mismatch.*file deleted/.test(e.message),
    );
    assert.deepEqual(await listDir(dir), []);
    await Deno.remove(dir, { recursive: true });
  });

  await t.step("an HTTP error and an over-long body fail clearly", async () => {
    await using missing = serveFile(payload, { status: 404 });
    const dir = await freshDir("dl");
    await assert.rejects(
      downloadVerified({ url: missing.url, sha256: sha256(payload), dest: `${dir}/m.onnx` }),
      /HTTP 404/,
    );
    await using zoo = serveFile(payload);
    await assert.rejects(
      downloadVerified({ url: zoo.url, sha256: sha256(payload), dest: `${dir}/m.onnx`, expectedBytes: 1000 }),
      /larger than the expected 1000 bytes/,
    );
    assert.deepEqual(await listDir(dir), []);
    await Deno.remove(dir, { recursive: true });
  });

  await t.step("an unreachable host fails clearly", async () => {
    const dir = await freshDir("dl");
    await assert.rejects(
      downloadVerified({ url: "http://127.0.0.1:9/none", sha256: "0".repeat(64), dest: `${dir}/m.onnx` }),
      /Cannot reach/,
    );
    await Deno.remove(dir, { recursive: true });
  });
});

Deno.test("model sources", async (t) => {
  await captureLogs("info");
  // The zoo file cannot be fetched here, so the "zoo" serves our synthetic model under its checksum.
  const synthetic = await ensureSynthetic(testConfig());
  const bytes = await Deno.readFile(synthetic.path);

  await t.step("file: loads MODEL_PATH and recognises our synthetic weights", async () => {
    const r = await resolveModel(testConfig({ MODEL_SOURCE: "file", MODEL_PATH: synthetic.path }));
    assert.deepEqual(r, {
      path: synthetic.path,
      source: "file",
      weights: "synthetic",
      sha256: synthetic.sha256,
      quantized: false,
    });
  });

  await t.step("file: a missing path fails clearly", async () => {
    await assert.rejects(
      resolveModel(testConfig({ MODEL_SOURCE: "file", MODEL_PATH: `${TMP}/missing.onnx` })),
      /MODEL_PATH .*missing.onnx does not exist/,
    );
  });

  await t.step("file: a path outside the read grant names MODEL_PATH", async () => {
    // The test task, like the gateway, may not read /etc.
    assert.notEqual((await Deno.permissions.query({ name: "read", path: "/etc/hostname" })).state, "granted");
    await assert.rejects(
      resolveModel(testConfig({ MODEL_SOURCE: "file", MODEL_PATH: "/etc/hostname" })),
      /^ModelLoadError: MODEL_PATH \/etc\/hostname may not be read: .*permission set/,
    );
  });

  await t.step("zoo: downloads once, then uses the verified cache", async () => {
    await using zoo = serveFile(bytes);
    const config = testConfig({
      MODEL_SOURCE: "zoo",
      MODEL_DIR: await freshDir("zoo"),
      MODEL_ZOO_URL: zoo.url,
      MODEL_ZOO_SHA256: synthetic.sha256,
    });
    const first = await resolveModel(config);
    assert.equal(first.path, zooPath(config));
    assert.equal(first.source, "zoo");
    assert.equal(first.weights, "pretrained");
    await resolveModel(config);
    assert.equal(zoo.hits(), 1);
    await Deno.remove(config.MODEL_DIR, { recursive: true });
  });

  await t.step("zoo: a mirror serving other bytes is refused", async () => {
    await using zoo = serveFile(payloadOf(1000));
    const config = testConfig({
      MODEL_SOURCE: "zoo",
      MODEL_DIR: await freshDir("zoo"),
      MODEL_ZOO_URL: zoo.url,
      MODEL_ZOO_SHA256: synthetic.sha256,
    });
    await assert.rejects(resolveModel(config), /Checksum mismatch/);
    assert.deepEqual(await listDir(config.MODEL_DIR), []);
    await Deno.remove(config.MODEL_DIR, { recursive: true });
  });

  await t.step("zoo int8: its own file, verified the same way, downloaded once", async () => {
    await using zoo = serveFile(bytes);
    const config = testConfig({
      MODEL_SOURCE: "zoo",
      MODEL_DIR: await freshDir("zoo8"),
      MODEL_ZOO_INT8_URL: zoo.url.replace(".onnx", "-int8.onnx"),
      MODEL_ZOO_INT8_SHA256: synthetic.sha256,
    });
    const first = await resolveZooInt8(config);
    assert.equal(first.path, `${config.MODEL_DIR}/resnet50-v1-12-int8.onnx`);
    assert.equal(first.path, zooPath(config, "int8"));
    assert.notEqual(zooPath(config, "int8"), zooPath(config));
    await resolveZooInt8(config);
    assert.equal(zoo.hits(), 1);
    await Deno.remove(config.MODEL_DIR, { recursive: true });
  });

  await t.step("zoo int8: a wrong checksum or the wrong size is refused and nothing is kept", async () => {
    const dir = await freshDir("zoo8");
    {
      await using zoo = serveFile(payloadOf(1000));
      const config = testConfig({
        MODEL_DIR: dir,
        MODEL_ZOO_INT8_URL: zoo.url,
        MODEL_ZOO_INT8_SHA256: synthetic.sha256,
      });
      await assert.rejects(resolveZooInt8(config), /Checksum mismatch/);
    }
    {
      // The default checksum brings the published size with it: a longer body stops at that size.
      await using zoo = serveFile(payloadOf(ZOO_INT8_MODEL_BYTES + 1));
      await assert.rejects(
        resolveZooInt8(testConfig({ MODEL_DIR: dir, MODEL_ZOO_INT8_URL: zoo.url })),
        /larger than the expected 25816052 bytes/,
      );
    }
    assert.deepEqual(await listDir(dir), []);
    await Deno.remove(dir, { recursive: true });
  });

  await t.step("auto: falls back to synthetic when the zoo is unreachable", async () => {
    const dir = await freshDir("auto");
    // Reuse the synthetic file instead of building another 100 MB model.
    await Deno.copyFile(synthetic.path, syntheticPath(testConfig({ MODEL_DIR: dir })));
    const logs = await captureLogs("info");
    const r = await resolveModel(
      testConfig({ MODEL_DIR: dir, MODEL_ZOO_URL: "http://127.0.0.1:9/none.onnx" }),
    );
    assert.equal(r.source, "synthetic");
    assert.equal(r.weights, "synthetic");
    assert.ok(logs.some((l) => l.level === "warning" && String(l.rawMessage).includes("falling back")));
    await Deno.remove(dir, { recursive: true });
  });

  await t.step("auto: prefers MODEL_PATH, then a cached zoo file", async () => {
    const dir = await freshDir("auto");
    const config = testConfig({ MODEL_DIR: dir, MODEL_ZOO_SHA256: synthetic.sha256 });
    await Deno.copyFile(synthetic.path, zooPath(config));
    const cached = await resolveModel(config);
    assert.equal(cached.source, "zoo");
    const explicit = await resolveModel({ ...config, MODEL_PATH: synthetic.path });
    assert.equal(explicit.source, "file");
    await Deno.remove(dir, { recursive: true });
  });
});

function payloadOf(n: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(n).fill(7);
}
