/**
 * Least privilege: the `start` task's permission flags, applied to a probe
 * (tests/permission_probe.ts), allow what the service needs and nothing an
 * uploader who found a bug in a decoder could use: no reads outside the model
 * cache, labels and npm packages, no writes outside the model cache, no
 * connections to hosts off the list, no processes, no other environment, no
 * native libraries outside node_modules.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

/** The `start` task's flags, exactly as deno.json has them (the entry point swapped for the probe). */
async function startFlags(): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).tasks;
  const words = String(tasks.start.command).split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ["deno", "run"]);
  assert.equal(words.at(-1), "main.ts");
  return words.slice(2, -1);
}

Deno.test("the start task's permissions are the least the service needs", async (t) => {
  const flags = await startFlags();

  await t.step("no blanket grants", () => {
    for (const f of flags) {
      assert.ok(f.startsWith("--allow-") && f.includes("="), `${f} names what it allows`);
    }
    assert.ok(!flags.some((f) => f === "-A" || f.startsWith("--allow-all")));
    assert.ok(!flags.some((f) => f.startsWith("--allow-run")), "the service spawns nothing");
    assert.ok(!flags.some((f) => f.startsWith("--allow-sys")));
  });

  const out = await new Deno.Command("deno", {
    args: ["run", ...flags, "tests/permission_probe.ts"],
    cwd: ROOT,
    env: { NO_COLOR: "1", MAX_QUEUE: "8" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const results: Record<string, string> = JSON.parse(new TextDecoder().decode(out.stdout));

  await t.step("what the service needs is allowed", () => {
    for (const need of ["read_models", "read_labels", "write_models", "env_config", "listen_loopback"]) {
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
});
