/**
 * `deno task mutate`: the mutation run. Each mutant of tests/mutants.ts (one
 * small, type-correct change a developer could plausibly make) is applied to a
 * temporary copy of the repository, never to the working tree (other people
 * run tests in it), and the tests that should catch it are run there. A mutant
 * is killed when they fail or hang, and survives when they pass: a survivor is
 * a mistake the suite would let through.
 *
 *   deno task mutate                     every mutant
 *   deno task mutate batcher classifier  only ids starting with one of these
 *   deno task mutate --jobs=2            two copies, two mutants at a time
 *   deno task mutate --list              print the list and stop
 *   deno task mutate --root=DIR          measure another tree (an older commit exported with git
 *                                        archive): tests it lacks count as absent, not stale
 *
 * Exits 1 when fewer than --min (default 90) percent are killed, or when a
 * mutant no longer applies (its snippet is gone from the file: the list needs
 * updating, not the score).
 */
import { type Mutant, MUTANTS } from "./mutants.ts";

/** This repository: its installed packages and model cache serve a --root tree that has none. */
const HERE = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
let ROOT = HERE;

interface Options {
  filters: string[];
  jobs: number;
  min: number;
  list: boolean;
  /** Another tree to measure; its missing tests are absent, not stale. */
  root?: string;
}

function parseArgs(args: string[]): Options {
  const options: Options = { filters: [], jobs: 1, min: 90, list: false };
  for (const arg of args) {
    const m = /^--(jobs|min)=(\d+)$/.exec(arg);
    if (m) options[m[1] as "jobs" | "min"] = Number(m[2]);
    else if (arg === "--list") options.list = true;
    else if (arg.startsWith("--root=")) options.root = arg.slice("--root=".length).replace(/\/$/, "");
    else if (arg.startsWith("--")) throw new Error(`Unknown option ${arg}; see tests/mutate.ts`);
    else options.filters.push(arg);
  }
  if (options.jobs < 1) throw new Error("--jobs must be at least 1");
  return options;
}

async function run(cmd: string, args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** The repository's files as git sees them (tracked and new, not ignored), relative to ROOT. */
async function repoFiles(): Promise<string[]> {
  if (!await exists(`${ROOT}/.git`)) return await walk(ROOT, "");
  const listed = await run("git", ["ls-files", "-co", "--exclude-standard", "-z"], ROOT);
  const files: string[] = [];
  for (const f of listed.split("\0").filter(Boolean)) {
    // A file deleted in the working tree is still listed by ls-files until committed.
    try {
      if ((await Deno.lstat(`${ROOT}/${f}`)).isFile) files.push(f);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return files;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Every file under a tree without git (an export), but the installed packages and the model cache. */
async function walk(root: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${root}/${prefix}`)) {
    const path = prefix ? `${prefix}/${e.name}` : e.name;
    if (path === "node_modules" || path === "models") continue;
    if (e.isDirectory) out.push(...await walk(root, path));
    else if (e.isFile) out.push(path);
  }
  return out;
}

/**
 * A copy of the working tree under the system's temporary directory: source files copied, the
 * installed npm packages hard-linked (read only, and 600 MB), the model cache copied (tests
 * write into it).
 */
async function makeCopy(files: string[]): Promise<string> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "inference-gateway-mutate-" });
  for (const f of files) {
    const slash = f.lastIndexOf("/");
    if (slash > 0) await Deno.mkdir(`${dir}/${f.slice(0, slash)}`, { recursive: true });
    await Deno.copyFile(`${ROOT}/${f}`, `${dir}/${f}`);
  }
  const from = (name: string) => exists(`${ROOT}/${name}`).then((yes) => `${yes ? ROOT : HERE}/${name}`);
  await run("cp", ["-al", await from("node_modules"), `${dir}/node_modules`], ROOT);
  const models = await from("models");
  if (await exists(models)) await run("cp", ["-r", models, `${dir}/models`], ROOT);
  await Deno.mkdir(`${dir}/tests/tmp`, { recursive: true });
  return dir;
}

/**
 * Where a file named by the list is now. Files move (model/ and image/ gained subfolders once):
 * a path that no longer exists is looked up by its name, if exactly one file has it.
 */
function locate(path: string, files: string[]): string | undefined {
  if (files.includes(path)) return path;
  const name = path.slice(path.lastIndexOf("/") + 1);
  const found = files.filter((f) => f === name || f.endsWith(`/${name}`));
  return found.length === 1 ? found[0] : undefined;
}

type Outcome = "killed" | "timeout" | "survived" | "stale";

interface Result {
  mutant: Mutant;
  outcome: Outcome;
  seconds: number;
  detail: string;
}

/** Runs `tests` in `dir`; false when they fail. Times out (and kills the run, by its pid) after `timeoutMs`. */
async function testsPass(dir: string, tests: string[], timeoutMs: number): Promise<boolean | "timeout"> {
  const child = new Deno.Command("deno", {
    args: ["test", "-P=test", "--no-check", "--quiet", "--fail-fast", ...tests],
    cwd: dir,
    stdout: "null",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, timeoutMs);
  const status = await child.status;
  clearTimeout(timer);
  return timedOut ? "timeout" : status.success;
}

function count(haystack: string, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + 1)) n++;
  return n;
}

async function runMutant(
  dir: string,
  files: string[],
  mutant: Mutant,
  timeoutMs: number,
  absentTestsAllowed: boolean,
): Promise<Result> {
  const started = performance.now();
  const done = (outcome: Outcome, detail = ""): Result => ({
    mutant,
    outcome,
    detail,
    seconds: (performance.now() - started) / 1000,
  });
  let file = locate(mutant.file, files);
  let moved = "";
  if (!file || count(await Deno.readTextFile(`${dir}/${file}`), mutant.find) !== 1) {
    // Code moves between modules: the snippet may now be in exactly one other source file.
    const holders: string[] = [];
    for (
      const f of files.filter((f) => f.endsWith(".ts") && !f.endsWith("_test.ts") && !f.startsWith("tests/"))
    ) {
      if (count(await Deno.readTextFile(`${dir}/${f}`), mutant.find) === 1) holders.push(f);
    }
    if (holders.length === 1) [file, moved] = [holders[0], ` (moved to ${holders[0]})`];
  }
  if (!file) return done("stale", `${mutant.file} not found`);
  let tests = mutant.tests.map((t) => locate(t, files));
  if (absentTestsAllowed) tests = tests.filter((t) => t !== undefined);
  else if (tests.some((t) => t === undefined)) {
    return done("stale", `a test of ${mutant.tests.join(", ")} not found`);
  }
  if (tests.length === 0) return done("survived", "no test of the list exists in this tree");
  const original = await Deno.readTextFile(`${dir}/${file}`);
  const n = count(original, mutant.find);
  if (n !== 1) return done("stale", `the snippet occurs ${n} times in ${file}`);
  await Deno.writeTextFile(`${dir}/${file}`, original.replace(mutant.find, () => mutant.replace));
  try {
    const passed = await testsPass(dir, tests as string[], timeoutMs);
    return passed === "timeout"
      ? done("timeout", moved.trim())
      : done(passed ? "survived" : "killed", moved.trim());
  } finally {
    await Deno.writeTextFile(`${dir}/${file}`, original);
  }
}

async function main(): Promise<number> {
  const options = parseArgs(Deno.args);
  const mutants = MUTANTS.filter((m) =>
    options.filters.length === 0 || options.filters.some((f) => m.id.startsWith(f))
  );
  if (options.list) {
    for (const m of mutants) console.log(`${m.id.padEnd(44)} ${m.kind.padEnd(10)} ${m.file}\n    ${m.why}`);
    return 0;
  }
  if (mutants.length === 0) throw new Error(`No mutant id starts with ${options.filters.join(" or ")}`);
  if (options.root) ROOT = options.root;
  const files = await repoFiles();
  const jobs = Math.min(options.jobs, mutants.length);
  console.log(`Copying the repository for ${jobs} job(s)...`);
  const dirs = await Promise.all(Array.from({ length: jobs }, () => makeCopy(files)));
  try {
    // The tests must pass on the unchanged code, or every mutant would look killed.
    const allTests = [...new Set(mutants.flatMap((m) => m.tests.map((t) => locate(t, files) ?? t)))]
      .filter((t) => files.includes(t));
    console.log(`Baseline: ${allTests.length} test files on the unchanged copy...`);
    const t0 = performance.now();
    const baseline = await testsPass(dirs[0], allTests, 30 * 60_000);
    if (baseline !== true) {
      console.error("The tests fail on the unchanged code; fix them before measuring mutants.");
      return 1;
    }
    // One mutant runs a subset of these: allow the whole baseline's time again, and start-up.
    const timeoutMs = Math.max(120_000, 2 * (performance.now() - t0));
    console.log(`Baseline passed in ${((performance.now() - t0) / 1000).toFixed(0)} s.\n`);

    const results: Result[] = [];
    let next = 0;
    await Promise.all(dirs.map(async (dir) => {
      while (next < mutants.length) {
        const mutant = mutants[next++];
        const r = await runMutant(dir, files, mutant, timeoutMs, options.root !== undefined);
        results.push(r);
        console.log(
          `${r.outcome.padEnd(8)} ${r.seconds.toFixed(1).padStart(6)} s  ${mutant.id} (${mutant.kind})` +
            (r.detail ? `: ${r.detail}` : ""),
        );
      }
    }));

    const killed = results.filter((r) => r.outcome === "killed" || r.outcome === "timeout").length;
    const survived = results.filter((r) => r.outcome === "survived");
    const stale = results.filter((r) => r.outcome === "stale");
    const scored = killed + survived.length;
    const score = scored === 0 ? 0 : (100 * killed) / scored;
    console.log(
      `\n${results.length} mutants: ${killed} killed, ${survived.length} survived, ${stale.length} stale. ` +
        `Score ${score.toFixed(1)}% (${killed}/${scored}).`,
    );
    const byKind = new Map<string, [number, number]>();
    for (const r of results.filter((r) => r.outcome !== "stale")) {
      const [k, n] = byKind.get(r.mutant.kind) ?? [0, 0];
      byKind.set(r.mutant.kind, [k + (r.outcome === "survived" ? 0 : 1), n + 1]);
    }
    console.log([...byKind].map(([kind, [k, n]]) => `${kind} ${k}/${n}`).join(", "));
    for (const r of survived) console.log(`survived: ${r.mutant.id}: ${r.mutant.why}`);
    for (const r of stale) console.log(`stale: ${r.mutant.id}: ${r.detail}`);
    return score >= options.min && stale.length === 0 ? 0 : 1;
  } finally {
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await main());
