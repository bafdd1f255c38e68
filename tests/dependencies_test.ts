/**
 * Production installs only what production imports: the service's tasks and
 * the image run with deno.production.json, whose imports and lock file are
 * deno.json's and deno.lock's cut down to what the production entry points
 * reach (tools/deno_config.ts derives them; tests/permissions_test.ts checks
 * they are up to date).
 */
import assert from "node:assert/strict";
import { PRODUCTION_CONFIG, PRODUCTION_LOCK, productionConfig } from "../tools/deno_config.ts";
import { SERVICE_SETS } from "../tools/permission_sets.ts";
import { denoConfig, taskGrant } from "./support/task_permissions.ts";

const ROOT = new URL("../", import.meta.url);
const readJson = async (path: string) => JSON.parse(await Deno.readTextFile(new URL(path, ROOT)));

interface LockEntry {
  dependencies?: string[];
  optionalDependencies?: string[];
  [field: string]: unknown;
}
interface Lock {
  specifiers: Record<string, string>;
  npm: Record<string, LockEntry>;
}

/**
 * A lock entry with its dependencies spelled out: a lock file names a
 * dependency without its version (`yaml`) when it holds one version only.
 */
function resolved(lock: Lock, entry: LockEntry | undefined): LockEntry | undefined {
  if (entry === undefined) return undefined;
  const full = (dep: string) => {
    if (dep.lastIndexOf("@") > 0) return dep;
    const ids = Object.keys(lock.npm).filter((id) => id.startsWith(`${dep}@`));
    assert.equal(ids.length, 1, `one version of ${dep}`);
    return ids[0];
  };
  return {
    ...entry,
    dependencies: entry.dependencies?.map(full),
    optionalDependencies: entry.optionalDependencies?.map(full),
  };
}

/** Packages the tests and tooling import, which the issue found in every production install. */
const TOOLING_PACKAGES = [
  "puppeteer-core",
  "chromium-bidi",
  "typescript",
  "openapi-typescript",
  "openapi-fetch",
  "@redocly/openapi-core",
  "kubernetes-models",
  "fast-check",
];

Deno.test("production installs only what production imports", async (t) => {
  const config = await denoConfig();
  const devJson = await readJson("deno.json");
  const production = await readJson(PRODUCTION_CONFIG);
  const devLock: Lock = await readJson("deno.lock");
  const productionLock: Lock = await readJson(PRODUCTION_LOCK);

  await t.step("every task under a service permission set runs with the production config", () => {
    const service = Object.keys(config.tasks).filter((name) => {
      const words = config.tasks[name].command.split(/\s+/);
      return words[0] === "deno" &&
        (SERVICE_SETS as readonly string[]).includes(taskGrant(config, name).set ?? "");
    });
    assert.deepEqual(service.sort(), ["dev", "model:fetch", "model:synth", "start", "start:edge"]);
    for (const name of service) {
      assert.ok(taskGrant(config, name).flags.includes(`--config=${PRODUCTION_CONFIG}`), name);
    }
  });

  await t.step("the production config installs by itself, and deno.json never auto-installs", () => {
    assert.equal(production.nodeModulesDir, "auto", "a fresh clone's first start installs what it needs");
    assert.deepEqual(production.lock, { path: `./${PRODUCTION_LOCK}`, frozen: true });
    assert.equal(devJson.nodeModulesDir, "manual", "deno task would otherwise install every package first");
    for (const [name, task] of Object.entries<{ command: string; dependencies?: string[] }>(devJson.tasks)) {
      if (task.command.includes(`--config=${PRODUCTION_CONFIG}`)) continue;
      // What runs a module needs node_modules; fmt, lint, install and other tasks do not.
      const runs = task.command.split("&&").some((part) => !/^\s*deno (fmt|lint|install|task)\b/.test(part));
      if (runs) assert.ok(task.dependencies?.includes("deps"), `task ${name} installs everything first`);
    }
  });

  await t.step("its imports are deno.json's, at the same versions", () => {
    for (const [key, target] of Object.entries<string>(production.imports)) {
      assert.equal(target, devJson.imports[key], key);
    }
  });

  await t.step("no test or tooling package is in the production lock file", () => {
    const names = Object.keys(productionLock.npm).map((id) => id.replace(/^(@?[^@]+)@.*$/, "$1"));
    assert.ok(names.includes("onnxruntime-node") && names.includes("hono"), "the lock holds production's");
    for (const pkg of TOOLING_PACKAGES) assert.ok(!names.includes(pkg), `${pkg} is installed in production`);
    assert.ok(Object.keys(productionLock.npm).length < Object.keys(devLock.npm).length);
  });

  await t.step("every package it locks, it locks exactly as deno.lock does", () => {
    for (const [id, entry] of Object.entries(productionLock.npm)) {
      assert.deepEqual(resolved(productionLock, entry), resolved(devLock, devLock.npm[id]), id);
    }
    for (const [spec, version] of Object.entries(productionLock.specifiers)) {
      assert.equal(version, devLock.specifiers[spec], spec);
    }
  });

  await t.step(
    "the image installs the production config and compiles every production entry point",
    async () => {
      const dockerfile = await Deno.readTextFile(new URL("Dockerfile", ROOT));
      assert.match(dockerfile, /^COPY deno\.json deno\.production\.json deno\.production\.lock \.\/$/m);
      assert.match(dockerfile, /deno install --frozen --config=deno\.production\.json/);
      assert.ok(!/^COPY [^\n]*deno\.lock/m.test(dockerfile), "deno.lock (tests' and tooling's) stays out");
      const ignored = (await Deno.readTextFile(new URL(".dockerignore", ROOT))).split("\n").map((l) =>
        l.trim()
      );
      for (const path of ["deno.lock", "tools"]) {
        assert.ok(ignored.includes(path), `.dockerignore keeps ${path} out`);
      }
      const cache = /^RUN deno cache --config=deno\.production\.json ((?:[\w./-]+\.ts ?)+)/m.exec(dockerfile);
      assert.ok(cache, "the image compiles the graph under the production config");
      const { entries } = await productionConfig(devJson);
      assert.deepEqual(cache[1].trim().split(" ").sort(), [...entries].sort());
    },
  );
});
