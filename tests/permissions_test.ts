/**
 * Least privilege, written once: the service's permissions are the `gateway`
 * permission set in deno.json. The `start` task's grant, applied to a probe
 * (tests/permission_probe.ts), allows what the service needs and nothing an
 * uploader who found a bug in a decoder could use: no reads outside the model
 * cache, labels, image workers and npm packages, no writes outside the model
 * cache, no connections to hosts off the list, no processes, no other
 * environment, no native libraries outside node_modules. And every task that
 * loads config.ts may read exactly the variables config.ts names.
 */
import assert from "node:assert/strict";
import { CONFIG_VARIABLES, EXTRA_VARIABLES } from "../config.ts";
import { PRODUCTION_CONFIG } from "../tools/deno_config.ts";
import { TEST_VARIABLES } from "../tools/permission_sets.ts";
import { denoConfig, envAllows, runProbe, taskGrant } from "./support/task_permissions.ts";

const ROOT = new URL("../", import.meta.url);
const config = await denoConfig();

Deno.test("the start task's permissions are the least the service needs", async (t) => {
  const start = taskGrant(config, "start");

  await t.step("the start task runs main.ts under the gateway set, with nothing added", () => {
    assert.equal(start.subcommand, "run");
    assert.deepEqual(start.entry, ["main.ts"]);
    assert.equal(start.set, "gateway");
    assert.deepEqual(start.flags.filter((f) => f !== "-q"), [`--config=${PRODUCTION_CONFIG}`, "-P=gateway"]);
  });

  await t.step("no blanket grants", () => {
    for (const [kind, grant] of Object.entries(start.grants)) {
      assert.ok(Array.isArray(grant) && grant.length > 0, `${kind} names what it allows`);
    }
    assert.ok(!start.flags.some((f) => f === "-A" || f.startsWith("--allow-all")));
    assert.equal(start.grants.run, undefined, "the service spawns nothing");
    assert.equal(start.grants.sys, undefined);
  });

  const { results, stderr } = await runProbe(start, "tests/support/permission_probe.ts", [
    JSON.stringify(CONFIG_VARIABLES),
  ]);

  await t.step("what the service needs is allowed", () => {
    for (
      const need of [
        "read_models",
        "read_labels",
        "write_models",
        "env_config",
        "env_set_ort",
        "listen_loopback",
      ]
    ) {
      assert.equal(results[need], "allowed", need);
    }
  });

  await t.step("everything else is denied by Deno, not merely unused", () => {
    for (
      const forbidden of [
        "read_etc_passwd",
        "read_project_source",
        "read_tests",
        "write_tmp",
        "write_project",
        "connect_other_host",
        "fetch_other_host",
        "spawn_process",
        "env_other",
        "ffi_outside_node_modules",
        "sys_info",
      ]
    ) {
      assert.equal(results[forbidden], "denied", forbidden);
    }
  });

  await t.step("the experimental notice of permission sets is silenced by -q", () => {
    assert.ok(!stderr.includes("experimental"), "-q silences it");
  });
});

Deno.test("every task's environment grant agrees with config.ts", async (t) => {
  const gatewayEnv = config.permissions?.gateway?.env;
  assert.ok(Array.isArray(gatewayEnv), "the gateway set names the variables it allows");
  const testEnv = config.permissions?.test?.env;
  assert.ok(Array.isArray(testEnv), "the test set names the variables it allows");

  await t.step(
    "deno.json's permission sets and the production config are what `deno task config:sync` generates",
    async () => {
      // The task's own command and grant, without its `deps` step (the suite runs after it).
      const sync = taskGrant(config, "config:sync");
      const out = await new Deno.Command("deno", {
        args: [sync.subcommand, ...sync.flags, ...sync.entry, "--check"],
        cwd: ROOT,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    },
  );

  await t.step(
    "the service's sets allow every schema variable, and otherwise only the documented extras",
    () => {
      for (const set of ["gateway", "edge"]) {
        const env = config.permissions?.[set]?.env;
        assert.ok(Array.isArray(env), `the ${set} set names the variables it allows`);
        for (const name of CONFIG_VARIABLES) assert.ok(envAllows(env, name), `${set} allows ${name}`);
        const known = new Set<string>([...CONFIG_VARIABLES, ...Object.keys(EXTRA_VARIABLES)]);
        for (const name of env) assert.ok(known.has(name), `${set} grants ${name}, which nothing documents`);
      }
    },
  );

  await t.step("no set the service runs under grants a test-only variable", () => {
    for (const [set, grants] of Object.entries(config.permissions ?? {})) {
      if (set === "test") continue;
      for (const name of Object.keys(TEST_VARIABLES)) {
        assert.ok(!envAllows(Array.isArray(grants.env) ? grants.env : [], name), `${set} grants ${name}`);
      }
    }
  });

  await t.step("the test set's env list is the gateway's plus the test-only variables", () => {
    assert.deepEqual([...testEnv].sort(), [...gatewayEnv, ...Object.keys(TEST_VARIABLES)].sort());
  });

  const SETS: Record<string, string[]> = { gateway: gatewayEnv, test: testEnv };
  for (const [name, task] of Object.entries(config.tasks)) {
    const words = task.command.split(/\s+/);
    if (words[0] !== "deno" || !["run", "test"].includes(words[1])) continue;
    await t.step(`task ${name}`, async () => {
      const grant = taskGrant(config, name);
      assert.notEqual(grant.grants.env, true, "no blanket --allow-env");
      assert.ok(!grant.flags.some((f) => f === "-A" || f.startsWith("--allow-all")), "no -A");
      if (grant.subcommand === "test" || grant.entry[0] === "bench/bench.ts") {
        assert.equal(grant.set, "test", "tests and the benchmark run under the test set");
      } else if (grant.entry[0]?.startsWith("tools/")) {
        // Tooling imports config.ts for its variable names only, and reads no environment.
        assert.equal(grant.grants.env, undefined, "tooling reads no environment");
      } else if (await loadsConfig(grant.entry[0])) {
        assert.equal(grant.set, "gateway", "runs under the gateway set");
      }
      if (grant.set !== undefined && grant.set in SETS) {
        assert.deepEqual(grant.grants.env, SETS[grant.set], "and does not replace its env list");
      }
    });
  }
});

/** Whether `entry`'s module graph includes config.ts. */
async function loadsConfig(entry: string): Promise<boolean> {
  const out = await new Deno.Command("deno", {
    args: ["info", "--json", entry],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const graph: { modules: Array<{ specifier: string }> } = JSON.parse(new TextDecoder().decode(out.stdout));
  const configUrl = new URL("config.ts", ROOT).href;
  return graph.modules.some((m) => m.specifier === configUrl);
}
