/**
 * `deno task config:sync`: writes the parts of the Deno configuration that are
 * derived from other sources, so each is written once:
 * - deno.json's `permissions`, from tools/permission_sets.ts (which takes the
 *   environment list from config.ts's schema);
 * - deno.production.json: the config the service's tasks and the image run
 *   with. Its imports are those of deno.json that the production entry points
 *   reach, so a first `deno task start` and the image install only what the
 *   service imports (deno.json's nodeModulesDir "auto" would install every
 *   package of the lock file, test and tooling ones included);
 * - deno.production.lock: deno.lock pruned to those imports, so production runs
 *   the exact versions the tests ran.
 *
 * `--check` writes nothing and exits 1, naming each stale file, when a
 * derived part differs from its sources (tests/permissions_test.ts runs it).
 */
import { PERMISSION_SETS, SERVICE_SETS } from "./permission_sets.ts";

const ROOT = new URL("../", import.meta.url);
export const PRODUCTION_CONFIG = "deno.production.json";
export const PRODUCTION_LOCK = "deno.production.lock";
/** Run by the container's HEALTHCHECK rather than by a task. */
const HEALTHCHECK = "deploy/healthcheck.ts";

/** A file this tool derives, with the text it should hold. */
export interface DerivedFile {
  path: string;
  text: string;
}

interface DenoJson {
  imports: Record<string, string>;
  compilerOptions?: unknown;
  permissions?: unknown;
  tasks: Record<string, string | { command: string }>;
  [key: string]: unknown;
}

const json = (value: unknown) => JSON.stringify(value, null, 2) + "\n";
const decoder = new TextDecoder();

/** deno.json with its `permissions` replaced by the generated sets; every other key kept in place. */
export function denoJsonText(current: string): string {
  const config = JSON.parse(current) as Record<string, unknown>;
  if (!("permissions" in config)) throw new Error('deno.json has no "permissions" to replace');
  config.permissions = PERMISSION_SETS;
  return json(config);
}

/**
 * The import-map key a bare specifier goes through (`zod`, or `@hono/hono/`
 * for `@hono/hono/cors`), as Deno resolves it: an exact key first, else the
 * longest key ending in `/` that prefixes it, else the package's own key when
 * it maps to an npm: or jsr: package (Deno then maps its subpaths too).
 */
export function importKey(imports: Record<string, string>, specifier: string): string | undefined {
  if (specifier in imports) return specifier;
  let best: string | undefined;
  for (const key of Object.keys(imports)) {
    if (key.endsWith("/") && specifier.startsWith(key) && key.length > (best?.length ?? 0)) best = key;
  }
  if (best !== undefined) return best;
  const parts = specifier.split("/");
  const pkg = parts.slice(0, specifier.startsWith("@") ? 2 : 1).join("/");
  return /^(npm|jsr):/.test(imports[pkg] ?? "") ? pkg : undefined;
}

/** The entry module of each task that runs under a service permission set. */
function serviceTaskEntries(config: DenoJson): string[] {
  const entries: string[] = [];
  for (const task of Object.values(config.tasks)) {
    const words = (typeof task === "string" ? task : task.command).split(/\s+/);
    if (words[0] !== "deno" || !["run", "serve"].includes(words[1])) continue;
    const set = words.find((w) => w.startsWith("-P=") || w.startsWith("--permission-set="))?.split("=")[1];
    if (!(SERVICE_SETS as readonly string[]).includes(set ?? "")) continue;
    const entry = words.slice(2).find((w) => !w.startsWith("-"));
    if (entry !== undefined) entries.push(entry);
  }
  return entries;
}

interface Graph {
  modules: Array<{ specifier: string; dependencies?: Array<{ specifier: string }> }>;
}

async function moduleGraph(entry: string): Promise<Graph> {
  const out = await new Deno.Command("deno", {
    args: ["info", "--json", entry],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) throw new Error(`deno info ${entry} failed: ${decoder.decode(out.stderr)}`);
  return JSON.parse(decoder.decode(out.stdout));
}

// A Worker module's URL, whether built inline in `new Worker(...)` or held in a constant for a helper
// that starts the Worker (the int8 Worker's `callOnce`): every Worker module is named `*_worker.ts`.
const WORKER = /new URL\(\s*["']([^"']+_worker\.ts)["']\s*,\s*import\.meta\.url\s*\)/g;
const NODE_MODULES = new URL("node_modules/", ROOT).href;
/** Specifiers that name no package: relative, absolute, URLs, and Node's and Deno's built-ins. */
const NOT_A_PACKAGE = /^(\.{0,2}\/|[a-z][a-z0-9+.-]*:)/;

/**
 * What production runs: the entry points (service tasks, the health check and
 * every Worker module they start, found by following `new URL("…_worker.ts", import.meta.url)`,
 * which `deno info` does not) and the import-map keys the project's own modules
 * among them import.
 */
export async function productionGraph(
  config: DenoJson,
): Promise<{ entries: string[]; imports: Set<string> }> {
  const queue = [...new Set([...serviceTaskEntries(config), HEALTHCHECK])];
  const entries: string[] = [];
  const imports = new Set<string>();
  const scanned = new Set<string>();
  while (queue.length > 0) {
    const entry = queue.shift()!;
    if (entries.includes(entry)) continue;
    entries.push(entry);
    for (const module of (await moduleGraph(entry)).modules) {
      const own = module.specifier.startsWith(ROOT.href) && !module.specifier.startsWith(NODE_MODULES);
      if (!own || scanned.has(module.specifier)) continue;
      scanned.add(module.specifier);
      for (const { specifier } of module.dependencies ?? []) {
        if (specifier.startsWith("npm:") || specifier.startsWith("jsr:")) {
          throw new Error(`${module.specifier} imports ${specifier}: name it in deno.json's imports instead`);
        }
        if (NOT_A_PACKAGE.test(specifier)) continue;
        const key = importKey(config.imports, specifier);
        if (key === undefined) {
          throw new Error(`${module.specifier} imports ${specifier}, which deno.json does not map`);
        }
        imports.add(key);
      }
      const source = await Deno.readTextFile(new URL(module.specifier));
      for (const [, relative] of source.matchAll(WORKER)) {
        const worker = new URL(relative, module.specifier).href;
        if (!worker.startsWith(ROOT.href)) {
          throw new Error(`${module.specifier} starts a Worker outside the project`);
        }
        queue.push(worker.slice(ROOT.href.length));
      }
    }
  }
  return { entries, imports };
}

/** deno.production.json for deno.json's text: the imports production reaches, and the service's sets. */
export async function productionConfig(config: DenoJson): Promise<{ entries: string[]; config: object }> {
  const { entries, imports: used } = await productionGraph(config);
  const imports = Object.fromEntries(Object.entries(config.imports).filter(([key]) => used.has(key)));
  const permissions = Object.fromEntries(SERVICE_SETS.map((name) => [name, PERMISSION_SETS[name]]));
  return {
    entries,
    config: {
      nodeModulesDir: "auto",
      lock: { path: `./${PRODUCTION_LOCK}`, frozen: true },
      imports,
      compilerOptions: config.compilerOptions,
      permissions,
    },
  };
}

/** Where the lock file is pruned: node_modules/.cache is the usual place for a tool's scratch files. */
const SCRATCH = new URL("node_modules/.cache/deno-config/", ROOT);

/**
 * deno.lock pruned to the production config's imports: `deno install
 * --lockfile-only` on a copy in a scratch directory resolves nothing anew
 * (every version is in the copy) and drops what the imports no longer reach.
 */
async function productionLockText(productionConfigText: object): Promise<string> {
  await Deno.mkdir(SCRATCH, { recursive: true });
  const scratch = await Deno.makeTempDir({ dir: SCRATCH.pathname });
  try {
    const config = { ...productionConfigText, lock: { path: `./${PRODUCTION_LOCK}` } };
    await Deno.writeTextFile(`${scratch}/${PRODUCTION_CONFIG}`, json(config));
    await Deno.copyFile(new URL("deno.lock", ROOT), `${scratch}/${PRODUCTION_LOCK}`);
    const out = await new Deno.Command("deno", {
      args: ["install", "--quiet", "--lockfile-only", `--config=${PRODUCTION_CONFIG}`],
      cwd: scratch,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code !== 0) throw new Error(`Pruning the lock file failed: ${decoder.decode(out.stderr)}`);
    return await Deno.readTextFile(`${scratch}/${PRODUCTION_LOCK}`);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

/** Every derived file with the text it should hold now. */
export async function derivedFiles(): Promise<DerivedFile[]> {
  const current = await Deno.readTextFile(new URL("deno.json", ROOT));
  const denoJson = denoJsonText(current);
  const production = (await productionConfig(JSON.parse(denoJson))).config;
  return [
    { path: "deno.json", text: denoJson },
    { path: PRODUCTION_CONFIG, text: json(production) },
    { path: PRODUCTION_LOCK, text: await productionLockText(production) },
  ];
}

/** The derived files whose text on disk differs from what their sources give. */
export async function staleFiles(): Promise<string[]> {
  const stale: string[] = [];
  for (const file of await derivedFiles()) {
    const onDisk = await Deno.readTextFile(new URL(file.path, ROOT)).catch(() => undefined);
    if (onDisk !== file.text) stale.push(file.path);
  }
  return stale;
}

if (import.meta.main) {
  if (Deno.args.includes("--check")) {
    const stale = await staleFiles();
    if (stale.length > 0) {
      console.error(
        `Out of date: ${stale.join(", ")}. These are generated: edit config.ts's schema, ` +
          `EXTRA_VARIABLES, tools/permission_sets.ts or deno.json's imports, then run \`deno task config:sync\`.`,
      );
      Deno.exit(1);
    }
  } else {
    for (const file of await derivedFiles()) {
      await Deno.writeTextFile(new URL(file.path, ROOT), file.text);
      console.log(`Wrote ${file.path}`);
    }
  }
}
