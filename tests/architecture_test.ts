/**
 * The layout's rules, checked on every module of the repository:
 * - each file belongs to an area of AREAS, and imports only from its own area
 *   and the areas its row lists (the rows form no cycle, so imports run one way);
 * - no module imports itself back through others (no import cycle);
 * - production code never imports test support (tests/support/).
 * A new folder gets a row here; docs/architecture.md draws the same table.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const ROOT = new URL("../", import.meta.url).pathname;

/** Production areas, bottom first. A row lists what the area may import besides itself. */
const PRODUCTION = {
  /** The bottom layer: coded errors, the Worker RPC, the seeded PRNG. */
  "core": [],
  "config": ["core"],
  "observability": ["core", "config"],
  /** Bytes to tensor. */
  "image": ["core"],
  /** ImageNet labels and turning an output row into ranked classes. */
  "model/classes": ["core"],
  /** Getting a model file: resolve, download, zoo, synthetic builder, ONNX graph helpers. */
  "model/artifact": ["core", "config", "observability"],
  /** int8: calibration, quantization, the quality gate. Never the runtime. */
  "model/quantize": ["core", "config", "observability", "image", "model/classes", "model/artifact"],
  /** Running a model: runner seam, backends, Worker host, batcher, classifier, state. */
  "model/runtime": ["core", "config", "observability", "image", "model/classes", "model/artifact"],
  /** model/start.ts (the one module that imports all three) and the model CLI. */
  "model": [
    "core",
    "config",
    "observability",
    "image",
    "model/classes",
    "model/artifact",
    "model/quantize",
    "model/runtime",
  ],
  /** The model repository: versions on disk, and the registry that starts and retires them (model/start.ts). */
  "model/repository": [
    "core",
    "config",
    "observability",
    "image",
    "model/classes",
    "model/artifact",
    "model/quantize",
    "model/runtime",
    "model",
  ],
  /** API keys and scopes: the key file, its reloads, the check; beneath the transports that enforce them. */
  "access": ["core", "config", "observability"],
  /** What every transport shares, without HTTP: the inference sequence, the list of served models, statistics. */
  "serving": [
    "core",
    "config",
    "observability",
    "image",
    "model/classes",
    "model/artifact",
    "model/runtime",
    "model/repository",
    "access",
  ],
  /** HTTP: the Hono app, its routes, problem bodies, the OpenAPI document. */
  "routes": [
    "core",
    "config",
    "observability",
    "image",
    "model/classes",
    "model/artifact",
    "model/runtime",
    "model/repository",
    "access",
    "serving",
  ],
  /** gRPC (planned): a transport beside routes/, sharing what routes/ shares. */
  "grpc": [
    "core",
    "config",
    "observability",
    "image",
    "model/classes",
    "model/artifact",
    "model/runtime",
    "model/repository",
    "access",
    "serving",
  ],
  /** The public listener: connection guard, Deno.serve, drain. */
  "server": ["core", "config", "observability", "model/runtime", "routes"],
  /** main.ts and edge.ts: they only wire. */
  "entry": [
    "core",
    "config",
    "observability",
    "image",
    "model/classes",
    "model/artifact",
    "model/quantize",
    "model/runtime",
    "model",
    "model/repository",
    "access",
    "serving",
    "routes",
    "grpc",
    "server",
  ],
} as const satisfies Record<string, readonly string[]>;

type ProductionArea = keyof typeof PRODUCTION;
const PRODUCTION_AREAS = Object.keys(PRODUCTION) as ProductionArea[];

/** Tooling and tests: they may import any production area; only these may import test support. */
const TOOLING = {
  /** Helpers shared by tests and the benchmark. */
  "tests/support": [...PRODUCTION_AREAS, "tools"],
  "tests": [...PRODUCTION_AREAS, "tests/support", "bench", "deploy", "tools"],
  "bench": [...PRODUCTION_AREAS, "tests/support"],
  /** Repository tooling (deno.json's generated permission sets). */
  "tools": [...PRODUCTION_AREAS],
  /** deploy/healthcheck.ts runs in the production image: no test support. */
  "deploy": [...PRODUCTION_AREAS],
} as const satisfies Record<string, readonly string[]>;

const AREAS: Record<string, readonly string[]> = { ...PRODUCTION, ...TOOLING };

/** Where a file's area is not its folder's. */
const FILE_AREAS: Record<string, string> = {
  "config.ts": "config",
  "main.ts": "entry",
  "edge.ts": "entry",
};

/**
 * Upward imports that exist today and are being removed (issue 22). Each pair
 * must still occur: once it is gone, delete it here, so the list only shrinks.
 */
const KNOWN_EXCEPTIONS: ReadonlyArray<readonly [from: string, to: string, removedBy: string]> = [];

/** Cycles that exist today and are being removed, under the same rule. */
const KNOWN_CYCLES: ReadonlyArray<readonly [modules: readonly string[], removedBy: string]> = [];

const SKIP_DIRS = new Set([
  ".git",
  "node_modules",
  "models",
  "web",
  "docs",
  "tests/fixtures",
  "tests/tmp",
  "bench/tmp",
]);

/** Every .ts file of the repository, relative to its root. */
async function sourceFiles(dir = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(join(ROOT, dir))) {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory && !SKIP_DIRS.has(path)) files.push(...await sourceFiles(path));
    if (entry.isFile && entry.name.endsWith(".ts")) files.push(path);
  }
  return files.sort();
}

/** Test files are tooling wherever they sit: colocated `*_test.ts` may import test support. */
function isTest(file: string): boolean {
  return file.endsWith("_test.ts");
}

/** The area `file` belongs to: its longest folder prefix with a row, or undefined. */
function areaOf(file: string): string | undefined {
  if (FILE_AREAS[file]) return FILE_AREAS[file];
  let best: string | undefined;
  for (const area of Object.keys(AREAS)) {
    if (file.startsWith(`${area}/`) && (!best || area.length > best.length)) best = area;
  }
  return best;
}

/** Every module specifier in `source`: static and dynamic imports, re-exports, Worker URLs, type directives. */
export function specifiers(source: string): string[] {
  // Lines of comments are not code (a doc comment may show an import); directives live in comments.
  const code = source.split("\n").filter((line) => !/^\s*(\/\/|\/\*|\*)/.test(line)).join("\n");
  const inCode = [
    /\b(?:import|export)\b[^"';]*?\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']/g,
    /new\s+URL\(\s*["']([^"']+)["']\s*,\s*import\.meta\.url/g,
  ];
  const inComments = [/@ts-types="([^"]+)"/g, /<reference\s+(?:path|types)="([^"]+)"/g];
  return [
    ...inCode.flatMap((p) => [...code.matchAll(p)].map((m) => m[1])),
    ...inComments.flatMap((p) => [...source.matchAll(p)].map((m) => m[1])),
  ];
}

/** The repository file a relative specifier of `file` names, if it is a module of ours. */
function target(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return undefined; // a package
  if (!/\.(ts|js|mjs)$/.test(specifier)) return undefined; // a data file read by URL, not a module
  return normalize(join(dirname(file), specifier));
}

/** Every module's local imports. */
async function importGraph(files: readonly string[]): Promise<Map<string, string[]>> {
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const source = await Deno.readTextFile(join(ROOT, file));
    const targets = specifiers(source)
      .map((s) => target(file, s))
      .filter((t): t is string => t !== undefined && known.has(t));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Strongly connected components with more than one module, or a module importing itself (Tarjan). */
export function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string) => {
    indices.set(node, index);
    low.set(node, index);
    index++;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!indices.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, indices.get(next)!));
      }
    }
    if (low.get(node) === indices.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (graph.get(node) ?? []).includes(node)) found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!indices.has(node)) visit(node);
  return found;
}

/** The imports of `graph` that the table forbids, as "from -> to (area -> area)". */
function violations(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const wrong: string[] = [];
  for (const [file, targets] of graph) {
    const from = isTest(file) ? "tests" : areaOf(file);
    for (const to of targets) {
      const toArea = areaOf(to);
      if (from === undefined || toArea === undefined) continue; // reported by the area step
      if (from === toArea || AREAS[from].includes(toArea)) continue;
      wrong.push(`${file} -> ${to} (${from} may not import ${toArea})`);
    }
  }
  return wrong;
}

Deno.test("architecture: imports run one way", async (t) => {
  const files = await sourceFiles();
  assert.ok(files.includes("model/start.ts") && files.includes("core/errors.ts"), "found the modules");
  const graph = await importGraph(files);

  await t.step("the scanner sees every kind of import", () => {
    const found = specifiers(`
      import { a } from "../model/x.ts";
      import type { B } from "./b.ts";
      export { c } from "../config.ts";
      import {
        d,
        e,
      } from "./multi_line.ts";
      import "../routes/side_effect.ts";
      await import("../server/late.ts");
      new Worker(new URL("../observability/w.ts", import.meta.url));
      // @ts-types="./d.d.ts"
      /// <reference types="./e.d.ts" />
       * import { shown } from "./in_a_doc_comment.ts";
    `);
    assert.deepEqual(found.sort(), [
      "../config.ts",
      "../model/x.ts",
      "../observability/w.ts",
      "../routes/side_effect.ts",
      "../server/late.ts",
      "./b.ts",
      "./d.d.ts",
      "./e.d.ts",
      "./multi_line.ts",
    ]);
  });

  await t.step("the scanner agrees with Deno's module graph", async () => {
    // deno info resolves main.ts's static and dynamic imports; each must be one the scanner found.
    const info = new Deno.Command("deno", {
      args: ["info", "--json", "main.ts"],
      cwd: ROOT,
      stdout: "piped",
    });
    const { stdout, success } = await info.output();
    assert.ok(success, "deno info ran");
    const modules = JSON.parse(new TextDecoder().decode(stdout)).modules as Array<{
      specifier: string;
      dependencies?: Array<{ code?: { specifier?: string }; type?: { specifier?: string } }>;
    }>;
    let checked = 0;
    for (const module of modules) {
      if (!module.specifier.startsWith(`file://${ROOT}`)) continue;
      const file = relative(ROOT, new URL(module.specifier).pathname);
      if (file.startsWith("node_modules/")) continue;
      for (const dep of module.dependencies ?? []) {
        for (const resolved of [dep.code?.specifier, dep.type?.specifier]) {
          if (!resolved?.startsWith(`file://${ROOT}`)) continue;
          const to = relative(ROOT, new URL(resolved).pathname);
          // deno.json's nodeModulesDir is "manual", so npm packages resolve into node_modules.
          if (!to.endsWith(".ts") || to.startsWith("node_modules/")) continue;
          assert.ok(graph.get(file)?.includes(to), `the scanner missed ${file} -> ${to}`);
          checked++;
        }
      }
    }
    assert.ok(checked > 50, `compared ${checked} imports`);
  });

  await t.step("cycle detection finds a cycle and passes a tree", () => {
    const cyclic = new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["a"]], ["e", ["e"]]]);
    assert.deepEqual(cycles(cyclic), [["a", "b", "c"], ["e"]]);
    assert.deepEqual(cycles(new Map([["a", ["b", "c"]], ["b", ["c"]], ["c", []]])), []);
  });

  await t.step("the table itself runs one way", () => {
    assert.deepEqual(cycles(new Map(Object.entries(AREAS).map(([a, deps]) => [a, [...deps]]))), []);
    for (const [area, deps] of Object.entries(AREAS)) {
      for (const dep of deps) assert.ok(dep in AREAS, `${area} lists ${dep}, which has no row`);
    }
  });

  await t.step("every module belongs to an area", () => {
    const homeless = files.filter((f) => !isTest(f) && areaOf(f) === undefined);
    assert.deepEqual(homeless, [], "add a row to AREAS for the folder of each of these");
  });

  await t.step("no import cycles", () => {
    const known = new Set(KNOWN_CYCLES.map(([modules]) => [...modules].sort().join(" <-> ")));
    const found = cycles(graph).map((c) => c.join(" <-> "));
    assert.deepEqual(found.filter((c) => !known.has(c)), []);
    const stale = [...known].filter((c) => !found.includes(c));
    assert.deepEqual(stale, [], "these known cycles are gone: delete them from KNOWN_CYCLES");
  });

  await t.step("every import is one the table allows", () => {
    const exceptions = new Set(KNOWN_EXCEPTIONS.map(([from, to]) => `${from} -> ${to}`));
    const wrong = violations(graph);
    assert.deepEqual(wrong.filter((w) => !exceptions.has(w.split(" (")[0])), []);
    const stale = [...exceptions].filter((e) => !wrong.some((w) => w.startsWith(`${e} (`)));
    assert.deepEqual(stale, [], "these known exceptions are gone: delete them from KNOWN_EXCEPTIONS");
  });

  await t.step("a wrong import is caught", () => {
    const upward = new Map([["image/decode.ts", ["model/runtime/runner.ts"]], ["core/errors.ts", [
      "config.ts",
    ]]]);
    assert.deepEqual(violations(upward), [
      "image/decode.ts -> model/runtime/runner.ts (image may not import model/runtime)",
      "core/errors.ts -> config.ts (core may not import config)",
    ]);
  });

  await t.step("production never imports test support", () => {
    const leaks = [...graph].flatMap(([file, targets]) =>
      !isTest(file) && (PRODUCTION_AREAS as string[]).includes(areaOf(file) ?? "")
        ? targets.filter((to) => to.startsWith("tests/")).map((to) => `${file} -> ${to}`)
        : []
    );
    assert.deepEqual(leaks, []);
  });
});
