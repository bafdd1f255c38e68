/**
 * image/ is a leaf: bytes to tensor, importing nothing else of the house
 * (model/, routes/, observability/, server/, config.ts), so it can move to a
 * Worker, the edge build or another service as it is.
 */
import assert from "node:assert/strict";

const DIR = new URL("./", import.meta.url);

/** Every module specifier in `source`: static and dynamic imports, re-exports, Worker URLs. */
function specifiers(source: string): string[] {
  const patterns = [
    /\b(?:import|export)\b[^"';]*?\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']/g,
    /new\s+URL\(\s*["']([^"']+)["']\s*,\s*import\.meta\.url/g,
    /@ts-types="([^"]+)"/g,
    /<reference\s+(?:path|types)="([^"]+)"/g,
  ];
  return patterns.flatMap((p) => [...source.matchAll(p)].map((m) => m[1]));
}

Deno.test("image/ imports nothing of the house outside image/", async (t) => {
  const files: string[] = [];
  for await (const entry of Deno.readDir(DIR)) {
    if (entry.isFile && entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) {
      files.push(entry.name);
    }
  }
  assert.ok(files.includes("prepare.ts") && files.includes("preprocess_worker.ts"), "found the modules");

  await t.step("the scanner sees every kind of import", () => {
    const found = specifiers(`
      import { a } from "../model/x.ts";
      import type { B } from "./b.ts";
      export { c } from "../config.ts";
      import "../routes/side_effect.ts";
      await import("../server/late.ts");
      new Worker(new URL("../observability/w.ts", import.meta.url));
      // @ts-types="./d.d.ts"
    `);
    assert.deepEqual(found.sort(), [
      "../config.ts",
      "../model/x.ts",
      "../observability/w.ts",
      "../routes/side_effect.ts",
      "../server/late.ts",
      "./b.ts",
      "./d.d.ts",
    ]);
  });

  for (const file of files.sort()) {
    await t.step(file, async () => {
      const source = await Deno.readTextFile(new URL(file, DIR));
      for (const specifier of specifiers(source)) {
        const local = specifier.startsWith(".") || specifier.startsWith("/") || specifier.startsWith("file:");
        if (!local) continue; // a package (npm, node:), not the house
        const target = new URL(specifier, new URL(file, DIR)).href;
        assert.ok(target.startsWith(DIR.href), `${file} imports ${specifier}, outside image/`);
      }
    });
  }
});
