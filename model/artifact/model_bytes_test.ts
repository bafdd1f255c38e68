import assert from "node:assert/strict";
import { captureLogs, testConfig } from "../../tests/support/helpers.ts";
import { fetchModelBytes, readModelFile, sha256Hex } from "./model_bytes.ts";
import { ensureSynthetic, resolveModel } from "./resolve.ts";
import { sha256File } from "./download.ts";
import { DownloadError } from "./download.ts";

/** A model host on loopback: serves `body` (optionally without a Content-Length, as chunked streams). */
function serveModel(body: Uint8Array<ArrayBuffer>, options: { status?: number; chunked?: boolean } = {}) {
  let hits = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    hits++;
    const payload = options.chunked
      ? new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < body.length; i += 65_536) controller.enqueue(body.slice(i, i + 65_536));
          controller.close();
        },
      })
      : body;
    return new Response(payload, { status: options.status ?? 200 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/models/resnet50.onnx`,
    hits: () => hits,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

async function emptyDir(): Promise<string> {
  const dir = `./tests/tmp/nodisk-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}
const entries = async (dir: string) => (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);

Deno.test("fetching a model into memory", async (t) => {
  await captureLogs("info");
  const payload = Uint8Array.from({ length: 700_000 }, (_, i) => (i * 2654435761) >>> 24);
  const sha256 = sha256Hex(payload);

  for (const chunked of [false, true]) {
    await t.step(
      `verifies and returns the bytes (${chunked ? "chunked" : "with Content-Length"})`,
      async () => {
        await using host = serveModel(payload, { chunked });
        const got = await fetchModelBytes({ url: host.url, sha256 });
        assert.equal(got.sha256, sha256);
        assert.deepEqual(got.bytes, payload);
      },
    );
  }

  await t.step("a checksum mismatch is refused before anything parses it", async () => {
    await using host = serveModel(payload);
    await assert.rejects(
      fetchModelBytes({ url: host.url, sha256: "0".repeat(64) }),
      (e: unknown) => e instanceof DownloadError && /Checksum mismatch.*not loaded/.test(e.message),
    );
  });

  await t.step("HTTP errors, over-long bodies and unreachable hosts fail clearly", async () => {
    await using missing = serveModel(payload, { status: 404 });
    await assert.rejects(fetchModelBytes({ url: missing.url, sha256 }), /HTTP 404/);
    await using host = serveModel(payload);
    await assert.rejects(fetchModelBytes({ url: host.url, sha256, maxBytes: 1000 }), /declares 700000 bytes/);
    await using chunked = serveModel(payload, { chunked: true });
    await assert.rejects(
      fetchModelBytes({ url: chunked.url, sha256, maxBytes: 100_000 }),
      /larger than 100000 bytes/,
    );
    await assert.rejects(fetchModelBytes({ url: "http://127.0.0.1:9/none", sha256 }), /Cannot reach/);
  });
});

Deno.test("readModelFile reads the whole file into one buffer of its size", async () => {
  const path = `./tests/tmp/model-bytes-${crypto.randomUUID().slice(0, 8)}.bin`;
  const payload = Uint8Array.from({ length: 3_000_001 }, (_, i) => (i * 31) & 0xff);
  await Deno.writeFile(path, payload);
  try {
    const bytes = await readModelFile(path);
    assert.equal(bytes.buffer.byteLength, payload.length);
    assert.deepEqual(bytes, payload);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("models without a disk", async (t) => {
  await captureLogs("info");
  const onDisk = await ensureSynthetic(testConfig());
  const model = await Deno.readFile(onDisk.path);

  await t.step(
    "MODEL_URL: fetched into memory and verified, writable disk or not; nothing written",
    async () => {
      await using host = serveModel(model);
      const dir = await emptyDir();
      for (const disk of [true, false]) {
        const r = await resolveModel(
          testConfig({ MODEL_URL: host.url, MODEL_SHA256: onDisk.sha256, MODEL_DIR: dir }),
          undefined,
          { disk },
        );
        assert.equal(r.source, "url");
        assert.equal(r.path, host.url);
        assert.equal(r.weights, "synthetic", "recognised from the bytes' producer field");
        assert.equal(r.sha256, onDisk.sha256);
        assert.deepEqual(r.bytes, model);
      }
      assert.deepEqual(await entries(dir), []);
      await Deno.remove(dir);
    },
  );

  await t.step("MODEL_URL with the wrong checksum stops the load, even under auto", async () => {
    await using host = serveModel(model);
    await assert.rejects(
      resolveModel(testConfig({ MODEL_URL: host.url, MODEL_SHA256: "1".repeat(64) }), undefined, {
        disk: false,
      }),
      /Checksum mismatch/,
    );
  });

  await t.step("synthetic: built in memory, the same bytes as the file", async () => {
    const dir = await emptyDir();
    const r = await resolveModel(testConfig({ MODEL_SOURCE: "synthetic", MODEL_DIR: dir }), undefined, {
      disk: false,
    });
    assert.equal(r.source, "synthetic");
    assert.match(r.path, /^memory:/);
    assert.equal(r.sha256, onDisk.sha256);
    assert.deepEqual(await entries(dir), []);
    await Deno.remove(dir);
  });

  await t.step("synthetic: a file shipped in MODEL_DIR is read, not rebuilt", async () => {
    const r = await resolveModel(testConfig({ MODEL_SOURCE: "synthetic" }), undefined, { disk: false });
    assert.equal(r.path, onDisk.path);
    assert.equal(r.bytes, undefined);
  });

  await t.step("zoo: downloaded into memory when nothing may be written", async () => {
    await using zoo = serveModel(model);
    const dir = await emptyDir();
    const config = testConfig({
      MODEL_SOURCE: "zoo",
      MODEL_ZOO_URL: zoo.url,
      MODEL_ZOO_SHA256: onDisk.sha256,
      MODEL_DIR: dir,
    });
    const r = await resolveModel(config, undefined, { disk: false });
    assert.equal(r.source, "zoo");
    assert.equal(r.sha256, onDisk.sha256);
    assert.equal(r.bytes?.byteLength, model.byteLength);
    assert.equal(zoo.hits(), 1);
    assert.deepEqual(await entries(dir), []);
    await Deno.remove(dir);
  });

  await t.step("file: a read-only MODEL_PATH is only read", async () => {
    const path = `./tests/tmp/readonly-${crypto.randomUUID().slice(0, 8)}.onnx`;
    await Deno.copyFile(onDisk.path, path);
    await Deno.chmod(path, 0o444);
    try {
      const r = await resolveModel(testConfig({ MODEL_PATH: path }), undefined, { disk: false });
      assert.deepEqual([r.source, r.path, r.sha256, r.bytes], [
        "file",
        path,
        await sha256File(path),
        undefined,
      ]);
    } finally {
      await Deno.remove(path);
    }
  });
});
