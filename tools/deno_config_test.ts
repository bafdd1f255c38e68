import assert from "node:assert/strict";
import { importKey } from "./deno_config.ts";

Deno.test("importKey resolves a specifier to its import-map key as Deno does", async (t) => {
  const imports = {
    "@hono/hono": "npm:hono@4.13.19",
    "@hono/hono/": "npm:/hono@4.13.19/",
    "@scope/pkg/": "npm:/@scope/pkg@1.0.0/",
    "@scope/pkg/deep/": "npm:/@scope/deep@1.0.0/",
    zod: "npm:zod@4.6.7",
  };

  await t.step("an exact key wins over a prefix", () => {
    assert.equal(importKey(imports, "@hono/hono"), "@hono/hono");
    assert.equal(importKey(imports, "zod"), "zod");
  });

  await t.step("a subpath goes through the key ending in / that prefixes it", () => {
    assert.equal(importKey(imports, "@hono/hono/cors"), "@hono/hono/");
    assert.equal(importKey(imports, "@scope/pkg/x.js"), "@scope/pkg/");
  });

  await t.step("the longest prefix wins", () => {
    assert.equal(importKey(imports, "@scope/pkg/deep/y.js"), "@scope/pkg/deep/");
  });

  await t.step("a package's key maps its subpaths when it names an npm: or jsr: package", () => {
    assert.equal(importKey(imports, "zod/mini"), "zod");
    assert.equal(importKey({ ...imports, local: "./local.ts" }, "local/x.ts"), undefined);
  });

  await t.step("no key: not mapped; a package's key is no prefix of another name", () => {
    assert.equal(importKey(imports, "zodiac"), undefined);
    assert.equal(importKey(imports, "zodiac/x"), undefined);
    assert.equal(importKey(imports, "yaml"), undefined);
  });
});
