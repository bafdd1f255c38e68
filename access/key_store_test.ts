import assert from "node:assert/strict";
import { keyDigestHex } from "./credential.ts";
import { KeyStore, KeyStoreError } from "./key_store.ts";

const TMP = new URL("../tests/tmp/", import.meta.url);

async function keyFile(ids: string[]): Promise<string> {
  const keys = await Promise.all(
    ids.map(async (id) => ({ id, sha256: await keyDigestHex(`key-${id}`), scopes: ["infer"] })),
  );
  return JSON.stringify({ keys });
}

async function tempDir(): Promise<string> {
  await Deno.mkdir(TMP, { recursive: true });
  return await Deno.makeTempDir({ dir: TMP.pathname, prefix: "keys-" });
}

/** Opens a store that never polls by itself: each test calls poll() when it wants a check. */
async function openStore(path: string) {
  const loads: string[][] = [];
  const errors: string[] = [];
  const store = await KeyStore.open(path, {
    intervalMs: 3_600_000,
    onLoad: (set) => loads.push(set.keys.map((k) => k.id)),
    onError: (message) => errors.push(message),
  });
  return { store, loads, errors };
}

Deno.test("key store", async (t) => {
  const dir = await tempDir();
  const path = `${dir}/keys.json`;
  try {
    await t.step("a missing file at startup is refused, naming API_KEYS_FILE", async () => {
      await assert.rejects(
        KeyStore.open(`${dir}/absent.json`),
        (err: Error) =>
          err instanceof KeyStoreError &&
          /^API_KEYS_FILE=.*absent\.json: the file does not exist$/.test(err.message),
      );
    });

    await t.step("an invalid file at startup is refused, naming API_KEYS_FILE and the field", async () => {
      await Deno.writeTextFile(path, '{"keys": [{"id": "x"}]}');
      await assert.rejects(
        KeyStore.open(path),
        (err: Error) =>
          err instanceof KeyStoreError && /API_KEYS_FILE=.* is invalid: keys\[0\]\.sha256/.test(err.message),
      );
    });

    await Deno.writeTextFile(path, await keyFile(["a"]));
    const { store, loads, errors } = await openStore(path);
    try {
      await t.step("loads the file and reports the first load", () => {
        assert.deepEqual(store.keys.keys.map((k) => k.id), ["a"]);
        assert.deepEqual(loads, [["a"]]);
        assert.equal(store.status.fileValid, true);
      });

      await t.step("an unchanged file is not reloaded", async () => {
        await store.poll();
        assert.equal(loads.length, 1);
      });

      await t.step("an in-place rewrite is picked up", async () => {
        await Deno.writeTextFile(path, await keyFile(["a", "b"]));
        await store.poll();
        assert.deepEqual(store.keys.keys.map((k) => k.id), ["a", "b"]);
      });

      await t.step("an atomic rename over the file (a new inode) is picked up", async () => {
        await Deno.writeTextFile(`${path}.new`, await keyFile(["c"]));
        await Deno.rename(`${path}.new`, path);
        await store.poll();
        assert.deepEqual(store.keys.keys.map((k) => k.id), ["c"]);
      });

      await t.step("a broken file keeps the last good set and is reported once", async () => {
        await Deno.writeTextFile(path, '{"keys": [');
        await store.poll();
        await store.poll();
        await store.poll();
        assert.deepEqual(store.keys.keys.map((k) => k.id), ["c"]);
        assert.equal(errors.length, 1);
        assert.match(errors[0], /API_KEYS_FILE=.*: Not UTF-8 JSON/);
        assert.equal(store.status.fileValid, false);
      });

      await t.step("another broken version is reported again", async () => {
        await Deno.writeTextFile(path, '{"keys": [{"id": "c", "sha256": "nope", "scopes": ["infer"]}]}');
        await store.poll();
        assert.equal(errors.length, 2);
        assert.match(errors[1], /keys\[0\]\.sha256/);
      });

      await t.step("fixed back to the same keys, the file is valid again", async () => {
        await Deno.writeTextFile(path, await keyFile(["c"]));
        await store.poll();
        assert.equal(store.status.fileValid, true);
        assert.deepEqual(store.keys.keys.map((k) => k.id), ["c"]);
      });

      await t.step("a deleted file keeps the last good set and is reported once", async () => {
        await Deno.remove(path);
        await store.poll();
        await store.poll();
        assert.equal(errors.length, 3);
        assert.match(errors[2], /the file does not exist/);
        assert.deepEqual(store.keys.keys.map((k) => k.id), ["c"]);
        await Deno.writeTextFile(path, await keyFile(["d"]));
        await store.poll();
        assert.deepEqual(store.keys.keys.map((k) => k.id), ["d"]);
        assert.equal(store.status.fileValid, true);
      });
    } finally {
      store.close();
    }

    await t.step("polls by itself: a change is served within a few intervals", async () => {
      await Deno.writeTextFile(path, await keyFile(["e"]));
      const polled = await KeyStore.open(path, { intervalMs: 20 });
      try {
        await Deno.writeTextFile(path, await keyFile(["e", "f"]));
        const deadline = Date.now() + 5000;
        while (polled.keys.keys.length !== 2 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.deepEqual(polled.keys.keys.map((k) => k.id), ["e", "f"]);
      } finally {
        polled.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
