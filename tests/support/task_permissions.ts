/**
 * What each task of deno.json is granted: its `-P=<set>` permission set from
 * the `permissions` of the config it runs with (deno.json, or the file named
 * by `--config=`), with any `--allow-<kind>=` flag of the command
 * replacing that kind (as Deno applies them), so tests can read one task's
 * grant without parsing deno.json themselves.
 */
import assert from "node:assert/strict";
import type { PermissionKind } from "../../tools/permission_sets.ts";

export { envAllows, PERMISSION_KINDS, type PermissionKind } from "../../tools/permission_sets.ts";

const ROOT = new URL("../../", import.meta.url);

export interface TaskGrant {
  /** `deno run`, `deno test`, ... */
  subcommand: string;
  /** The words between the subcommand and the entry point. */
  flags: string[];
  /** The entry point and its arguments (empty for `deno test`). */
  entry: string[];
  /** The permission set named by `-P=`, if any. */
  set?: string;
  /** Per kind: the names allowed, `true` for a blanket grant; absent when not granted. */
  grants: Partial<Record<PermissionKind, string[] | true>>;
}

type PermissionSets = Record<string, Partial<Record<PermissionKind, string[] | boolean>>>;

export interface DenoConfig {
  tasks: Record<string, { command: string; description?: string }>;
  permissions?: PermissionSets;
  /** The permission sets of each other config file a task names with `--config=`, by its path. */
  configs: Record<string, { permissions?: PermissionSets }>;
}

/** deno.json, with the permission sets of the config files its tasks name (deno.production.json). */
export async function denoConfig(): Promise<DenoConfig> {
  const config: DenoConfig = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  config.configs = {};
  for (const task of Object.values(config.tasks)) {
    for (const [, path] of task.command.matchAll(/--config=(\S+)/g)) {
      config.configs[path] ??= JSON.parse(await Deno.readTextFile(new URL(path, ROOT)));
    }
  }
  return config;
}

/** The grant of one task whose command is a single `deno <subcommand> ...`. */
export function taskGrant(config: DenoConfig, task: string): TaskGrant {
  const command = config.tasks[task]?.command;
  if (command === undefined) throw new Error(`deno.json has no task ${task}`);
  const words = command.split(/\s+/);
  if (words[0] !== "deno") throw new Error(`Task ${task} does not run deno: ${command}`);
  const subcommand = words[1];
  const firstEntry = words.findIndex((w, i) => i >= 2 && !w.startsWith("-"));
  const flags = firstEntry < 0 ? words.slice(2) : words.slice(2, firstEntry);
  const entry = firstEntry < 0 ? [] : words.slice(firstEntry);
  const grants: TaskGrant["grants"] = {};
  const set = flags.find((f) => f.startsWith("-P=") || f.startsWith("--permission-set="))?.split("=")[1];
  const file = flags.find((f) => f.startsWith("--config="))?.split("=")[1];
  if (set !== undefined) {
    const defined = (file === undefined ? config : config.configs[file])?.permissions?.[set];
    if (!defined) {
      throw new Error(
        `Task ${task} names permission set ${set}, which ${file ?? "deno.json"} does not define`,
      );
    }
    for (const [kind, value] of Object.entries(defined)) {
      if (value === false) continue;
      grants[kind as PermissionKind] = value === true ? true : [...value];
    }
  }
  for (const flag of flags) {
    const m = /^--allow-([a-z]+)(?:=(.*))?$/.exec(flag);
    if (!m) continue;
    grants[m[1] as PermissionKind] = m[2] === undefined ? true : m[2].split(",");
  }
  return { subcommand, flags, entry, set, grants };
}

/**
 * Runs a permission probe (tests/*_probe.ts) under exactly `grant`'s flags with `deno run`: the outcome
 * it printed for each attempt, and its stderr.
 */
export async function runProbe(
  grant: TaskGrant,
  probe: string,
  args: string[] = [],
): Promise<{ results: Record<string, string>; stderr: string }> {
  const out = await new Deno.Command("deno", {
    args: ["run", ...grant.flags, probe, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", MAX_QUEUE: "8" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  return { results: JSON.parse(new TextDecoder().decode(out.stdout)), stderr };
}
