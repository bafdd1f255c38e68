/**
 * `deno task bench:swap`: the memory and timing of model version swaps. The
 * real gateway serves a repository in poll mode with the full-size synthetic
 * ResNet-50 under continuous keep-alive load; five new versions are copied in
 * one after another (tests/swap_load.ts). For each swap: seconds from the copy
 * to the first answer by the new version, and resident memory before and
 * after (once the old version is unloaded). Writes bench/swap.json. Not part
 * of `deno task test`, which asserts the counts instead.
 */
import { startTask, waitReady } from "../tests/support/gateway_process.ts";
import { requestBytes } from "../tests/support/raw_http.ts";
import { copyVersionIn, swapUnderLoad } from "../tests/support/swap_load.ts";

const ROOT = new URL("../", import.meta.url);
const MODEL = "./models/resnet50-synthetic-seed20240601.onnx";
const log = (msg: string) => console.error(`[swap] ${msg}`);

if (!(await Deno.stat(new URL(MODEL, ROOT)).catch(() => undefined))) {
  log("building the synthetic model (deno task model:synth)");
  const built = await new Deno.Command("deno", { args: ["task", "--quiet", "model:synth"], cwd: ROOT })
    .output();
  if (!built.success) throw new Error(new TextDecoder().decode(built.stderr));
}

const root = `./models/repository-bench-${crypto.randomUUID().slice(0, 8)}`;
await Deno.mkdir(new URL(root, ROOT), { recursive: true });
await copyVersionIn(root, "resnet50", 1, MODEL);
const server = await startTask({
  MODEL_REPOSITORY: root,
  MODEL_CONTROL_MODE: "poll",
  REPOSITORY_POLL_SECONDS: "1",
  INFERENCE_WORKERS: "1",
  PREPROCESS_WORKERS: "1",
});
try {
  await waitReady(server.port, 300_000);
  const jpeg = await Deno.readFile(new URL("tests/fixtures/images/coffee.jpg", ROOT));
  log("five swaps under load from 3 keep-alive clients");
  const report = await swapUnderLoad({
    port: server.port,
    root,
    model: "resnet50",
    file: MODEL,
    versions: [2, 3, 4, 5, 6],
    clients: 3,
    request: requestBytes("POST", "/predict", { "Content-Type": "image/jpeg" }, jpeg),
    lines: server.lines,
    swapTimeoutMs: 300_000,
    settleMs: 5000,
  });
  const mib = (b: number) => +(b / 2 ** 20).toFixed(1);
  const swaps = report.swaps.map((s) => ({
    version: s.version,
    seconds_to_serve: +s.secondsToServe.toFixed(2),
    rss_before_mib: mib(s.rssBeforeBytes),
    rss_after_mib: mib(s.rssAfterBytes),
    after_over_before: +(s.rssAfterBytes / s.rssBeforeBytes).toFixed(3),
  }));
  const result = {
    date: new Date().toISOString(),
    answered: report.answered,
    non_2xx: report.non2xx.length,
    dropped_connections: report.dropped,
    ready_probes: report.readyProbes,
    ready_not_200: report.readyNot200.length,
    answers_by_version: report.versions,
    swaps,
  };
  await Deno.writeTextFile(new URL("bench/swap.json", ROOT), JSON.stringify(result, null, 2) + "\n");
  console.log("| swap to | s to serve | RSS before (MiB) | RSS after (MiB) | after / before |");
  console.log("| ------- | ---------- | ---------------- | --------------- | -------------- |");
  for (const s of swaps) {
    console.log(
      `| ${s.version} | ${s.seconds_to_serve} | ${s.rss_before_mib} | ${s.rss_after_mib} | ${s.after_over_before} |`,
    );
  }
  console.log(JSON.stringify({ ...result, swaps: undefined }));
} finally {
  server.child.kill("SIGTERM");
  await server.status;
  await Deno.remove(new URL(root, ROOT), { recursive: true });
}
