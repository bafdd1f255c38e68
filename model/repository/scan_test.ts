import assert from "node:assert/strict";
import { parseVersion, scanRepository } from "./scan.ts";

async function tree(files: Record<string, string>): Promise<string> {
  const root = `./tests/tmp/repository-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(root, { recursive: true });
  for (const [path, text] of Object.entries(files)) {
    const full = `${root}/${path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    if (!path.endsWith("/")) await Deno.writeTextFile(full, text);
  }
  return root;
}

Deno.test("parseVersion: positive integers only", () => {
  assert.equal(parseVersion("1"), 1);
  assert.equal(parseVersion("2147483647"), 2 ** 31 - 1);
  for (const name of ["0", "-1", "01", "1.5", "2147483648", "v1", "", " 1", "1e3"]) {
    assert.equal(parseVersion(name), undefined, name);
  }
});

Deno.test("scanRepository", async (t) => {
  const root = await tree({
    "resnet50/1/model.onnx": "one",
    "resnet50/2/model.onnx": "two!",
    "resnet50/10/model.onnx": "ten",
    "resnet50/labels.txt": "a\nb\n",
    "resnet50/config.json": '{"top_k": 3}',
    "resnet50/3/": "",
    "resnet50/04/model.onnx": "zero-led",
    "resnet50/.5/model.onnx": "being copied",
    "resnet50/notes.md": "",
    "other/1/model.onnx": "x",
    "other/config.json": '{"top_k": 99}',
    "bad name!/1/model.onnx": "x",
    ".hidden/1/model.onnx": "x",
    "README": "",
  });
  try {
    const scan = await scanRepository(root);

    await t.step("models sorted by name; versions numerically, each with its file's size", () => {
      assert.deepEqual(scan.models.map((m) => m.name), ["other", "resnet50"]);
      const resnet = scan.models[1];
      assert.deepEqual(resnet.versions.map((v) => v.version), [1, 2, 10]);
      assert.equal(resnet.versions[1].bytes, 4);
      assert.equal(resnet.versions[1].path, `${root}/resnet50/2/model.onnx`);
      assert.ok(resnet.versions[1].mtimeMs > 0);
      assert.equal(resnet.labelsPath, `${root}/resnet50/labels.txt`);
      assert.equal(resnet.config?.top_k, 3);
      assert.deepEqual(resnet.config?.version_policy, { latest: { num_versions: 1 } });
    });

    await t.step("a bad config.json makes its model unservable, with the reason, and no other", () => {
      const other = scan.models[0];
      assert.equal(other.config, undefined);
      assert.match(other.configError!, /other\/config.json field top_k is invalid/);
      assert.equal(other.versions.length, 1);
    });

    await t.step("what does not fit is reported; hidden entries are skipped silently", () => {
      const reasons = Object.fromEntries(scan.ignored.map((i) => [i.path.slice(root.length + 1), i.reason]));
      assert.deepEqual(Object.keys(reasons).sort(), [
        "README",
        "bad name!",
        "resnet50/04",
        "resnet50/3",
        "resnet50/notes.md",
      ]);
      assert.match(reasons["resnet50/3"], /no model.onnx/);
      assert.match(reasons["bad name!"], /not a model name/);
    });

    await t.step("an empty repository is no models; a missing one throws", async () => {
      const empty = await tree({});
      assert.deepEqual(await scanRepository(empty), { models: [], ignored: [] });
      await Deno.remove(empty);
      await assert.rejects(scanRepository(`${root}/nope`), Deno.errors.NotFound);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
