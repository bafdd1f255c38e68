/**
 * Run by edge_test.ts under exactly the `start:edge` task's permission flags:
 * tries what the edge entry needs and what an edge platform refuses (native
 * code, writes, processes, system information), and prints one JSON line
 * saying which of them Deno allowed.
 */
import { attempt, type Outcome } from "./probe_attempt.ts";

const ortWeb = new URL(import.meta.resolve("onnxruntime-web"));
const ortNode = new URL(import.meta.resolve("onnxruntime-node"));
const nativeBinding = new URL("../bin/napi-v6/linux/x64/onnxruntime_binding.node", ortNode);

const results: Record<string, Outcome> = {
  // What the edge entry needs.
  read_labels: await attempt(() => Deno.readTextFileSync("./model/classes/imagenet_classes.txt")),
  read_models: await attempt(() => Deno.statSync("./models")),
  read_wasm_runtime: await attempt(() => Deno.readFileSync(new URL("ort-wasm-simd-threaded.wasm", ortWeb))),
  load_wasm_runtime: await attempt(async () => {
    const ort = await import("onnxruntime-web");
    if (!ort.env.versions.web) throw new Error("onnxruntime-web did not load");
  }),
  env_config: await attempt(() => Deno.env.get("MAX_QUEUE")),
  listen_loopback: await attempt(() => Deno.listen({ hostname: "127.0.0.1", port: 0 }).close()),
  // What an edge platform refuses, and so must this profile.
  ffi_native_runtime: await attempt(() => Deno.dlopen(nativeBinding, {})),
  ffi_libc: await attempt(() => Deno.dlopen("/lib/x86_64-linux-gnu/libc.so.6", {})),
  import_onnxruntime_node: await attempt(() => import("onnxruntime-node")),
  import_sharp: await attempt(() => import("sharp")),
  write_models: await attempt(() => Deno.writeTextFileSync(`./models/.probe-${crypto.randomUUID()}`, "x")),
  mkdir_models: await attempt(() => Deno.mkdirSync(`./models/probe-${crypto.randomUUID()}`)),
  write_tmp: await attempt(() => Deno.writeTextFileSync("/tmp/inference-gateway-edge-probe", "x")),
  write_project: await attempt(() => Deno.writeTextFileSync("./edge.ts.probe", "x")),
  spawn_process: await attempt(() => new Deno.Command("true").outputSync()),
  sys_info: await attempt(() => Deno.hostname()),
  read_etc_passwd: await attempt(() => Deno.readTextFileSync("/etc/passwd")),
  read_project_source: await attempt(() => Deno.readTextFileSync("./deno.json")),
  env_other: await attempt(() => Deno.env.get("HOME")),
  connect_other_host: await attempt(() => Deno.connect({ hostname: "example.invalid", port: 80 })),
};
console.log(JSON.stringify(results));
