/**
 * The edge phase of `deno task bench`: the real `deno task start:edge` (WASM
 * backend, inline, no FFI, no writes) serving each model precision, against
 * the native figures of the same run. Per precision: the time from start to
 * /ready, throughput and latency at concurrency 4, the server's peak resident
 * memory (VmHWM, start-up included), and the runtime alone (batch-1 latency of
 * onnxruntime-web against onnxruntime-node, in this process).
 */
import { createRunner } from "../model/runtime/backends.ts";
import type { RunnerOptions } from "../model/runtime/runner.ts";
import type { Precision } from "../model/artifact/types.ts";
import { TENSOR_SIZE } from "../image/preprocess.ts";
import { freePort, startTask, waitReady } from "../tests/support/gateway_process.ts";
import { closedLoop, type LoadResult, round, summary } from "./load.ts";

const MiB = 1024 * 1024;
/** The targets for the edge profile (int8). */
export const EDGE_TARGETS = { peak_rss_mib: 512, throughput_c4_rps: 5 } as const;

export interface EdgeModel {
  precision: Precision;
  /** An ONNX file the edge entry reads (read-only, as a deploy bundle ships it). */
  path: string;
  /** What the native gateway of the same run did at c=4 with this model, when it was measured. */
  nativeC4Rps?: number;
}

export interface EdgeResult {
  precision: EdgeModel["precision"];
  ready_seconds: number;
  model_load_seconds: number;
  c4: LoadResult;
  /** CPU time the server spent per answered request during the c=4 phase (decode, inference, HTTP). */
  cpu_ms_per_request: number;
  peak_rss_mib: number;
  runtime_batch1_ms: { wasm_p50: number; native_p50: number; wasm_over_native: number };
  native_c4_rps: number | null;
  c4_wasm_over_native: number | null;
}

/**
 * A file of another process under /proc, read through `cat`: Deno grants reading
 * another process's /proc entries only with --allow-all, which the benchmark does not have.
 */
async function procFile(path: string): Promise<string> {
  const out = await new Deno.Command("cat", { args: [path], stdout: "piped", stderr: "null" }).output();
  return out.success ? new TextDecoder().decode(out.stdout) : "";
}

/** The `deno serve` process under `deno task` (its only child), whose memory is the server's. */
async function servePid(taskPid: number): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const children = (await procFile(`/proc/${taskPid}/task/${taskPid}/children`)).trim();
    for (const pid of children.split(/\s+/).filter(Boolean).map(Number)) {
      const cmdline = await procFile(`/proc/${pid}/cmdline`);
      if (cmdline.split("\0").includes("serve")) return pid;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`No deno serve process under deno task (pid ${taskPid})`);
}

/** Peak resident set of a live process since it started, in MiB. */
async function peakRssMiB(pid: number): Promise<number> {
  const status = await procFile(`/proc/${pid}/status`);
  const kib = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]);
  if (!Number.isFinite(kib)) throw new Error(`No VmHWM for pid ${pid}`);
  return round((kib * 1024) / MiB);
}

/**
 * CPU time a process has used (user + system, all threads), in ms. /proc/<pid>/stat counts it in
 * USER_HZ ticks, which Linux fixes at 100 a second for this interface.
 */
async function cpuMs(pid: number): Promise<number> {
  const stat = await procFile(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces; count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Batch-1 latency of each runtime on the same model, one session of `threads` threads, in this process. */
async function runtimeLatency(path: string, precision: EdgeModel["precision"], threads: number) {
  const base: RunnerOptions = {
    path,
    precision,
    name: "resnet50",
    weights: "synthetic",
    sha256: "bench",
    source: "file",
    intraOpThreads: threads,
  };
  const p50: Record<string, number> = {};
  for (const backend of ["native", "wasm"] as const) {
    const runner = await createRunner({ ...base, backend });
    try {
      await runner.warmup(2);
      const input = new Float32Array(TENSOR_SIZE);
      const times: number[] = [];
      for (let i = 0; i < 15; i++) {
        const t0 = performance.now();
        await runner.run(input, 1);
        times.push(performance.now() - t0);
      }
      p50[backend] = summary(times).p50_ms;
    } finally {
      await runner.close();
    }
  }
  return { wasm_p50: p50.wasm, native_p50: p50.native, wasm_over_native: round(p50.wasm / p50.native, 2) };
}

export async function benchEdgeProfile(
  models: EdgeModel[],
  options: { seconds: number; photo: Uint8Array<ArrayBuffer>; threads: number; log: (msg: string) => void },
): Promise<EdgeResult[]> {
  const results: EdgeResult[] = [];
  for (const model of models) {
    options.log(`edge profile, ${model.precision}: starting deno task start:edge`);
    const spawnedAt = performance.now();
    const server = await startTask(
      { MODEL_PATH: model.path, LOG_LEVEL: "warning", PORT: String(freePort()) },
      "start:edge",
    );
    const base = `http://127.0.0.1:${server.port}`;
    try {
      await waitReady(server.port, 180_000);
      const ready_seconds = round((performance.now() - spawnedAt) / 1000, 2);
      const info = await (await fetch(`${base}/info`)).json();
      if (info.model.runtime !== "onnxruntime-web") throw new Error(`Edge entry runs ${info.model.runtime}`);
      await closedLoop(`${base}/predict`, options.photo, 4, 3); // warm the server's JIT
      const pid = await servePid(server.child.pid);
      const cpuBefore = await cpuMs(pid);
      const c4 = await closedLoop(`${base}/predict`, options.photo, 4, options.seconds);
      const cpu_ms_per_request = round((await cpuMs(pid) - cpuBefore) / Math.max(1, c4.ok));
      const peak = await peakRssMiB(pid);
      options.log(
        `edge ${model.precision}: ready in ${ready_seconds} s, c=4 ${c4.throughput_rps} req/s ` +
          `(p50 ${c4.p50_ms} p99 ${c4.p99_ms} ms), ${cpu_ms_per_request} ms CPU a request, peak RSS ${peak} MiB`,
      );
      results.push({
        precision: model.precision,
        ready_seconds,
        model_load_seconds: round(info.model.load_seconds, 2),
        c4,
        cpu_ms_per_request,
        peak_rss_mib: peak,
        runtime_batch1_ms: { wasm_p50: NaN, native_p50: NaN, wasm_over_native: NaN },
        native_c4_rps: model.nativeC4Rps ?? null,
        c4_wasm_over_native: model.nativeC4Rps ? round(c4.throughput_rps / model.nativeC4Rps, 3) : null,
      });
    } finally {
      server.child.kill("SIGTERM");
      await server.status;
    }
    // With the server gone, so the two do not share the cores.
    results.at(-1)!.runtime_batch1_ms = await runtimeLatency(model.path, model.precision, options.threads);
    options.log(
      `edge ${model.precision}: runtime batch-1 ${JSON.stringify(results.at(-1)!.runtime_batch1_ms)}`,
    );
  }
  return results;
}

/** The edge section of bench/RESULTS.md. */
export function renderEdgeSection(edge: EdgeResult[] | undefined, seconds: number): string {
  if (!edge?.length) return "";
  const mark = (ok: boolean) => (ok ? "met" : "**missed**");
  const int8 = edge.find((e) => e.precision === "int8");
  const targets = int8
    ? `| peak RSS serving int8 <= ${EDGE_TARGETS.peak_rss_mib} MiB | ${int8.peak_rss_mib} MiB | ${
      mark(int8.peak_rss_mib <= EDGE_TARGETS.peak_rss_mib)
    } |
| int8 throughput at c=4 >= ${EDGE_TARGETS.throughput_c4_rps} req/s | ${int8.c4.throughput_rps} req/s | ${
      mark(int8.c4.throughput_rps >= EDGE_TARGETS.throughput_c4_rps)
    } |`
    : `| peak RSS serving int8 <= ${EDGE_TARGETS.peak_rss_mib} MiB | no int8 model in this run | |
| int8 throughput at c=4 >= ${EDGE_TARGETS.throughput_c4_rps} req/s | no int8 model in this run | |`;
  const rows = edge.map((e) =>
    `| ${e.precision} | ${e.ready_seconds} s (load ${e.model_load_seconds} s) | ${e.c4.throughput_rps} | ${e.c4.p50_ms} | ${e.c4.p99_ms} | ${e.cpu_ms_per_request} | ${e.peak_rss_mib} | ${
      e.c4_wasm_over_native ?? "n/a"
    } | ${e.runtime_batch1_ms.wasm_p50} / ${e.runtime_batch1_ms.native_p50} ms (${e.runtime_batch1_ms.wasm_over_native}x) |`
  ).join("\n");
  return `
## Edge profile (\`deno task start:edge\`: WASM, inline, no FFI, no writes)

| target | figure | |
| --- | --- | --- |
${targets}

| model | start to /ready | c=4 req/s | p50 ms | p99 ms | CPU ms / request | peak RSS MiB | c=4 wasm / native | runtime batch-1 p50, wasm / native |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows}

Each model served by \`deno task start:edge\` from a read-only file (as a deploy bundle ships it), ${seconds} s
at concurrency 4 with \`coffee.jpg\`. Peak RSS is the server process's high-water mark (VmHWM), start-up
and model load included. CPU ms / request is the server's user + system time over the phase divided by the
requests answered (edge platforms meter and cap it per request). The c=4 ratio is against the native
gateway's c=4 phase of this run (fp32; the int8 phases above measure c=1 and c=16); the runtime column is
one session of each runtime on the same file in the benchmark process, with every server stopped.
`;
}
