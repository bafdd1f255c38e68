import assert from "node:assert/strict";
import fc from "fast-check";
import { planUpload, storeUpload, UploadError } from "./upload.ts";
import { scanRepository } from "./scan.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const upload = (files: Record<string, string>, config?: string) => ({
  files: new Map(Object.entries(files).map(([k, v]) => [k, bytes(v)])),
  ...(config !== undefined ? { config } : {}),
});

Deno.test("planUpload", async (t) => {
  await t.step("version files and labels; versions at the bounds", () => {
    const plan = planUpload(
      upload({ "1/model.onnx": "a", "2147483647/model.onnx": "b", "labels.txt": "x\n" }),
    );
    assert.deepEqual([...plan.versions.keys()], [1, 2147483647]);
    assert.equal(new TextDecoder().decode(plan.labels), "x\n");
    for (
      const path of [
        "0/model.onnx",
        "2147483648/model.onnx",
        "01/model.onnx",
        "1/model.onnx/x",
        "../1/model.onnx",
      ]
    ) {
      assert.throws(() => planUpload(upload({ [path]: "a" })), { name: "UploadError", status: 400 }, path);
    }
    assert.throws(() => planUpload(upload({ "1/model.onnx": "" })), /is empty/);
    assert.throws(() => planUpload(upload({ "labels.txt": "x" })), /hold no model/);
  });

  await t.step("any path is taken only if it is <positive int>/model.onnx or labels.txt", () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.integer().map((n) => `${n}/model.onnx`)), (path) => {
      const ok = /^[1-9][0-9]{0,9}\/model\.onnx$/.test(path) && Number(path.split("/")[0]) <= 2 ** 31 - 1;
      try {
        planUpload(upload({ [path]: "a", ...(path === "labels.txt" ? { "1/model.onnx": "m" } : {}) }));
        assert.ok(ok || path === "labels.txt", `${path} accepted`);
      } catch (err) {
        assert.ok(err instanceof UploadError, String(err));
        assert.ok(!ok, `${path} refused`);
      }
    }));
  });
});

Deno.test("storeUpload", async (t) => {
  const root = `./tests/tmp/upload-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(root, { recursive: true });
  try {
    await t.step(
      "writes versions, labels and config where a scan finds them, nothing hidden left",
      async () => {
        const stored = await storeUpload(
          root,
          "m",
          upload({ "2/model.onnx": "two", "labels.txt": "a\nb\n" }, '{"top_k": 2}'),
        );
        assert.deepEqual(stored.versions, [2]);
        const [model] = (await scanRepository(root)).models;
        assert.equal(model.name, "m");
        assert.deepEqual(model.versions.map((v) => v.version), [2]);
        assert.equal(model.config?.top_k, 2);
        assert.equal(await Deno.readTextFile(`${root}/m/labels.txt`), "a\nb\n");
        const names = [];
        for await (const e of Deno.readDir(`${root}/m`)) names.push(e.name);
        assert.deepEqual(names.sort(), ["2", "config.json", "labels.txt"]);
      },
    );

    await t.step("an existing version is a 409 and is not touched", async () => {
      await assert.rejects(storeUpload(root, "m", upload({ "2/model.onnx": "other" })), { status: 409 });
      assert.equal(await Deno.readTextFile(`${root}/m/2/model.onnx`), "two");
    });

    await t.step("a bad config or model name is a 400 and writes nothing", async () => {
      await assert.rejects(storeUpload(root, "n", upload({ "1/model.onnx": "x" }, '{"topk": 1}')), {
        status: 400,
        message: /unknown field/,
      });
      await assert.rejects(storeUpload(root, "..", upload({ "1/model.onnx": "x" })), { status: 400 });
      await assert.rejects(storeUpload(root, "a/b", upload({ "1/model.onnx": "x" })), { status: 400 });
      assert.deepEqual((await scanRepository(root)).models.map((m) => m.name), ["m"]);
    });

    await t.step("discard removes what the upload wrote, and a model directory it created", async () => {
      const stored = await storeUpload(root, "fresh", upload({ "1/model.onnx": "x" }));
      await stored.discard();
      assert.deepEqual((await scanRepository(root)).models.map((m) => m.name), ["m"]);
      const again = await storeUpload(root, "m", upload({ "3/model.onnx": "x" }));
      await again.discard();
      assert.deepEqual((await scanRepository(root)).models[0].versions.map((v) => v.version), [2]);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
