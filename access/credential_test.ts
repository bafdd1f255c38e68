import assert from "node:assert/strict";
import fc from "fast-check";
import { findKey, keyDigestHex, presentedKey } from "./credential.ts";
import { parseKeyFile } from "./key_file.ts";

const headers = (init: Record<string, string>) => new Headers(init);

Deno.test("presented key", async (t) => {
  await t.step("Authorization: Bearer, the scheme in any case, one or more spaces", () => {
    for (const value of ["Bearer k1", "bearer k1", "BEARER   k1", "  Bearer k1  "]) {
      assert.deepEqual(presentedKey(headers({ authorization: value })), { kind: "key", key: "k1" }, value);
    }
  });

  await t.step("X-API-Key", () => {
    assert.deepEqual(presentedKey(headers({ "x-api-key": " k2 " })), { kind: "key", key: "k2" });
  });

  await t.step("nothing, another scheme, or an empty X-API-Key is missing", () => {
    assert.deepEqual(presentedKey(headers({})), { kind: "missing" });
    assert.deepEqual(presentedKey(headers({ authorization: "Basic dXNlcjpwYXNz" })), { kind: "missing" });
    assert.deepEqual(presentedKey(headers({ authorization: "Bearerk1" })), { kind: "missing" });
    assert.deepEqual(presentedKey(headers({ "x-api-key": "" })), { kind: "missing" });
  });

  await t.step("an empty bearer token is invalid, not missing", () => {
    assert.equal(presentedKey(headers({ authorization: "Bearer" })).kind, "invalid");
    assert.equal(presentedKey(headers({ authorization: "Bearer   " })).kind, "invalid");
  });

  await t.step("both headers: the same key is fine, different keys are refused", () => {
    assert.deepEqual(presentedKey(headers({ authorization: "Bearer k", "x-api-key": "k" })), {
      kind: "key",
      key: "k",
    });
    assert.equal(presentedKey(headers({ authorization: "Bearer k", "x-api-key": "j" })).kind, "invalid");
    assert.equal(presentedKey(headers({ authorization: "Bearer k", "x-api-key": "kk" })).kind, "invalid");
  });

  await t.step("property: any header value gives a key, missing or invalid, never a throw", () => {
    fc.assert(
      fc.property(
        fc.option(fc.string().filter((s) => !/[\r\n\0]/.test(s))),
        fc.option(fc.string().filter((s) => !/[\r\n\0]/.test(s))),
        (auth, api) => {
          const init: Record<string, string> = {};
          if (auth !== null) init.authorization = auth;
          if (api !== null) init["x-api-key"] = api;
          let h: Headers;
          try {
            h = new Headers(init);
          } catch {
            return; // not a header value a client can send
          }
          const p = presentedKey(h);
          if (p.kind === "key") assert.ok(p.key.length > 0 && p.key === p.key.trim());
        },
      ),
      { numRuns: 1000 },
    );
  });
});

Deno.test("key lookup", async (t) => {
  const keys = ["igw_one", "igw_two", "igw_three"];
  const file = {
    keys: await Promise.all(
      keys.map(async (k, i) => ({ id: `k${i}`, sha256: await keyDigestHex(k), scopes: ["infer"] })),
    ),
  };
  const set = await parseKeyFile(new TextEncoder().encode(JSON.stringify(file)));

  await t.step("each key finds its own entry, whatever its position", async () => {
    for (const [i, key] of keys.entries()) assert.equal((await findKey(set, key))?.id, `k${i}`);
  });

  await t.step("a key that differs anywhere, a prefix, or its hash is not found", async () => {
    for (const wrong of ["igw_onf", "Igw_one", "igw_on", "igw_one ", "", await keyDigestHex("igw_one")]) {
      assert.equal(await findKey(set, wrong), undefined, wrong);
    }
  });

  await t.step("the digest is SHA-256 in lowercase hex, as sha256sum prints it", async () => {
    assert.equal(
      await keyDigestHex("abc"),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  });

  await t.step("property: found exactly when the key is in the set", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string(), async (candidate) => {
        const found = await findKey(set, candidate);
        assert.equal(found?.id, keys.includes(candidate) ? `k${keys.indexOf(candidate)}` : undefined);
      }),
      { numRuns: 300 },
    );
  });
});
