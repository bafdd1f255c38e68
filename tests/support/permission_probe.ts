/**
 * Run by permissions_test.ts under exactly the `start` task's permissions:
 * tries what the service needs and what an attacker who got code execution
 * through an upload would want, and prints one JSON line saying which of them
 * Deno allowed. Its argument is the JSON list of variables the service reads.
 */
import { attempt, type Outcome } from "./probe_attempt.ts";

const results: Record<string, Outcome> = {
  // What the service needs.
  read_models: await attempt(() => {
    Deno.mkdirSync("./models", { recursive: true });
    return Array.from(Deno.readDirSync("./models"));
  }),
  read_labels: await attempt(() => Deno.readTextFileSync("./model/classes/imagenet_classes.txt")),
  write_models: await attempt(() => {
    const path = `./models/.probe-${crypto.randomUUID()}`;
    Deno.writeTextFileSync(path, "x");
    Deno.removeSync(path);
  }),
  env_config: await attempt(() => {
    for (const name of JSON.parse(Deno.args[0]) as string[]) Deno.env.get(name);
  }),
  // model/ort_runner.ts turns onnxruntime's native telemetry off this way.
  env_set_ort: await attempt(() => Deno.env.set("ORT_DISABLE_TELEMETRY", "1")),
  listen_loopback: await attempt(() => Deno.listen({ hostname: "127.0.0.1", port: 0 }).close()),
  // What it must not do.
  read_etc_passwd: await attempt(() => Deno.readTextFileSync("/etc/passwd")),
  read_project_source: await attempt(() => Deno.readTextFileSync("./deno.json")),
  read_tests: await attempt(() => Array.from(Deno.readDirSync("./tests"))),
  write_tmp: await attempt(() => Deno.writeTextFileSync("/tmp/inference-gateway-probe", "x")),
  write_project: await attempt(() => Deno.writeTextFileSync("./main.ts.probe", "x")),
  // A host outside the allow-list: refused before any lookup or packet.
  connect_other_host: await attempt(() => Deno.connect({ hostname: "example.invalid", port: 80 })),
  fetch_other_host: await attempt(() => fetch("http://example.invalid/")),
  spawn_process: await attempt(() => new Deno.Command("true").outputSync()),
  env_other: await attempt(() => Deno.env.get("HOME")),
  ffi_outside_node_modules: await attempt(() => Deno.dlopen("/lib/x86_64-linux-gnu/libc.so.6", {})),
  sys_info: await attempt(() => Deno.hostname()),
};
console.log(JSON.stringify(results));
