import assert from "node:assert/strict";
import fc from "fast-check";
import { KEY_ID_PATTERN, KeyFileError, MAX_KEYS, parseKeyFile, SCOPES } from "./key_file.ts";

const HASH_A = "a".repeat(64);
const HASH_B = "b".repeat(64);
const encode = (value: unknown): Uint8Array<ArrayBuffer> =>
  value instanceof Uint8Array
    ? new Uint8Array(value)
    : new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));
const entry = (fields: Record<string, unknown> = {}) => ({
  id: "ci",
  sha256: HASH_A,
  scopes: ["infer"],
  ...fields,
});

async function refusal(value: unknown): Promise<string> {
  try {
    await parseKeyFile(encode(value));
  } catch (err) {
    assert.ok(err instanceof KeyFileError, String(err));
    return err.message;
  }
  assert.fail(`accepted ${JSON.stringify(value)}`);
}

Deno.test("key file", async (t) => {
  await t.step("a valid file gives ids, scopes, 32-byte digests and quotas", async () => {
    const set = await parseKeyFile(encode({
      keys: [
        entry({ rate_per_second: 2.5, burst: 10, max_concurrency: 4 }),
        { id: "ops", sha256: HASH_B, scopes: ["admin", "metrics"] },
      ],
    }));
    assert.equal(set.keys.length, 2);
    assert.deepEqual([...set.keys[0].scopes], ["infer"]);
    assert.deepEqual(set.keys[0].digest, new Uint8Array(32).fill(0xaa));
    assert.deepEqual(set.keys[0].quota, { ratePerSecond: 2.5, burst: 10, maxConcurrency: 4 });
    assert.deepEqual(set.keys[1].quota, {});
    assert.match(set.version, /^[0-9a-f]{64}$/);
  });

  await t.step("no keys is a valid (locked) file", async () => {
    assert.equal((await parseKeyFile(encode({ keys: [] }))).keys.length, 0);
  });

  await t.step("ids: 64 characters at most, a safe alphabet", async () => {
    await parseKeyFile(encode({ keys: [entry({ id: "x".repeat(64) })] }));
    assert.match(await refusal({ keys: [entry({ id: "x".repeat(65) })] }), /keys\[0\]\.id: 1 to 64/);
    assert.match(await refusal({ keys: [entry({ id: "" })] }), /keys\[0\]\.id/);
    assert.match(await refusal({ keys: [entry({ id: 'a"b' })] }), /keys\[0\]\.id/);
  });

  await t.step("digests: exactly 64 lowercase hex digits", async () => {
    assert.match(
      await refusal({ keys: [entry({ sha256: "a".repeat(63) })] }),
      /keys\[0\]\.sha256: the key's SHA-256/,
    );
    assert.match(await refusal({ keys: [entry({ sha256: "a".repeat(65) })] }), /sha256/);
    assert.match(await refusal({ keys: [entry({ sha256: "A".repeat(64) })] }), /sha256/);
  });

  await t.step("scopes: known, at least one, each once", async () => {
    assert.match(
      await refusal({ keys: [entry({ scopes: [] })] }),
      /scopes: at least one of infer, admin, metrics/,
    );
    assert.match(
      await refusal({ keys: [entry({ scopes: ["root"] })] }),
      /scopes\[0\]: one of infer, admin, metrics/,
    );
    assert.match(await refusal({ keys: [entry({ scopes: ["infer", "infer"] })] }), /each scope once/);
  });

  await t.step("ids and keys are unique", async () => {
    assert.match(
      await refusal({ keys: [entry(), entry({ sha256: HASH_B })] }),
      /keys\[1\]\.id: "ci" is also keys\[0\]'s id/,
    );
    assert.match(
      await refusal({ keys: [entry(), entry({ id: "other" })] }),
      /keys\[1\]\.sha256: the same key as keys\[0\]/,
    );
  });

  await t.step("quota fields: at their limits, below and above", async () => {
    const ok = async (fields: Record<string, unknown>) =>
      await parseKeyFile(encode({ keys: [entry(fields)] }));
    await ok({ rate_per_second: 1_000_000, burst: 1, max_concurrency: 1 });
    await ok({ rate_per_second: 0.001, burst: 1_000_000, max_concurrency: 100_000 });
    for (
      const [fields, field] of [
        [{ rate_per_second: 0 }, "rate_per_second"],
        [{ rate_per_second: 1_000_001 }, "rate_per_second"],
        [{ rate_per_second: "5" }, "rate_per_second"],
        [{ rate_per_second: 1, burst: 0 }, "burst"],
        [{ rate_per_second: 1, burst: 1.5 }, "burst"],
        [{ rate_per_second: 1, burst: 1_000_001 }, "burst"],
        [{ max_concurrency: 0 }, "max_concurrency"],
        [{ max_concurrency: 100_001 }, "max_concurrency"],
        [{ burst: 5 }, "burst"],
      ] as const
    ) {
      assert.match(await refusal({ keys: [entry(fields)] }), new RegExp(`keys\\[0\\]\\.${field}`), field);
    }
  });

  await t.step(`at most ${MAX_KEYS} keys`, async () => {
    const keys = (n: number) =>
      Array.from(
        { length: n },
        (_, i) => ({ id: `k${i}`, sha256: i.toString(16).padStart(64, "0"), scopes: ["infer"] }),
      );
    assert.equal((await parseKeyFile(encode({ keys: keys(MAX_KEYS) }))).keys.length, MAX_KEYS);
    assert.match(await refusal({ keys: keys(MAX_KEYS + 1) }), /keys: at most 1000 keys/);
  });

  await t.step("unknown fields are refused (a typo must not silently drop a scope)", async () => {
    assert.match(await refusal({ keys: [entry({ scope: ["admin"] })] }), /keys\[0\]/);
    assert.match(await refusal({ keys: [], extra: 1 }), /the file/);
  });

  await t.step("a key where its hash belongs is refused by name", async () => {
    assert.match(await refusal({ keys: [entry({ key: "igw_secret" })] }), /keys\[0\]\.key holds a key/);
  });

  await t.step("errors never quote the file's text", async () => {
    const secret = "igw_" + "s".repeat(43);
    for (const text of [`{"keys": [${secret}]}`, `${secret}`, `{"keys": "${secret}"}`]) {
      const message = await refusal(text);
      assert.ok(!message.includes(secret), message);
    }
    assert.match(await refusal("{"), /^Not UTF-8 JSON/);
    assert.match(await refusal(new Uint8Array([0xff, 0xfe])), /^Not UTF-8 JSON/);
  });

  await t.step(
    "property: any valid file parses to its entries; anything else is a KeyFileError",
    async () => {
      const validEntry = fc.record({
        id: fc.stringMatching(KEY_ID_PATTERN),
        sha256: fc.stringMatching(/^[0-9a-f]{64}$/),
        scopes: fc.uniqueArray(fc.constantFrom(...SCOPES), { minLength: 1 }),
      });
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(validEntry, { selector: (e) => e.id, maxLength: 8 }).filter((es) =>
            new Set(es.map((e) => e.sha256)).size === es.length
          ),
          async (keys) => {
            const set = await parseKeyFile(encode({ keys }));
            assert.deepEqual(set.keys.map((k) => k.id), keys.map((k) => k.id));
            assert.deepEqual(set.keys.map((k) => [...k.scopes]), keys.map((k) => k.scopes));
          },
        ),
        { numRuns: 200 },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(fc.json(), fc.string(), fc.jsonValue().map((v) => JSON.stringify({ keys: [v] }))),
          async (text) => {
            try {
              await parseKeyFile(encode(text));
            } catch (err) {
              assert.ok(err instanceof KeyFileError, String(err));
            }
          },
        ),
        { numRuns: 500 },
      );
    },
  );
});
