/**
 * The capacity model's inputs, each taken from a figure `deno task bench`
 * recorded in bench/results.json, with how it was derived.
 */
import type { PodModel } from "./simulator.ts";

// deno-lint-ignore no-explicit-any
export type BenchResults = any;

export interface Inputs {
  pod: PodModel;
  /** Measured time from starting the gateway (model already on disk) to /ready answering 200, s. */
  readySeconds: number;
  /** How each input was obtained, for the report. */
  derivation: Record<string, string>;
  bench: {
    c1: { throughputRps: number; p50Ms: number; p99Ms: number };
    c16: { throughputRps: number; p50Ms: number; p99Ms: number };
    cores: number;
    started: string;
  };
}

/** z-scores of the normal distribution's 90th and 99th percentiles. */
const Z90 = 1.2816;
const Z99 = 2.3263;

export function inputsFrom(results: BenchResults): Inputs {
  const s = results.settings;
  const raw = results.raw_onnxruntime;
  const byBatch: Record<string, number> = raw.images_per_s_by_batch;
  const maxBatch = s.max_batch_size;
  const batches = Object.keys(byBatch).map(Number).sort((a, b) => a - b);
  const largest = batches.filter((b) => b <= maxBatch).at(-1)!;
  const runMs = (b: number) => (b / byBatch[b]) * 1000;
  // A lone image and a full batch are what the latency at low load and the throughput at
  // saturation depend on; sizes between are interpolated on the line through those two.
  const one = raw.batch1.p50_ms;
  const perExtra = (runMs(largest) - one) / (largest - 1);
  const batchMs = (b: number) => one + (b - 1) * perExtra;
  const decode = results.decode_preprocess_ms["coffee.jpg"];
  const c1 = results.gateway.find((g: BenchResults) => g.concurrency === 1);
  const c16 = results.gateway.find((g: BenchResults) => g.concurrency === 16);
  // What a lone request spends outside onnxruntime and the decoder: HTTP, routing, telemetry, relay.
  const httpMs = Math.max(0, c1.p50_ms - raw.batch1.p50_ms - decode.median_ms);
  const rejectMs = results.overload.reject_latency.p50_ms;
  if (!results.startup) {
    throw new Error(
      "bench/results.json has no startup figure (time to /ready): run `deno task bench` to record it",
    );
  }
  const readySeconds = results.startup.ready_seconds;
  const pod: PodModel = {
    cores: results.machine.cores,
    threads: s.intra_op_threads,
    batchMs,
    batchSigma: Math.log(raw.batch1.p99_ms / raw.batch1.p50_ms) / Z99,
    decodeMs: decode.median_ms,
    decodeSigma: Math.log(decode.p90_ms / decode.median_ms) / Z90,
    httpMs,
    rejectMs,
    maxBatch,
    maxQueue: s.max_queue,
    timeoutMs: s.request_timeout_ms,
  };
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    pod,
    readySeconds,
    bench: {
      c1: { throughputRps: c1.throughput_rps, p50Ms: c1.p50_ms, p99Ms: c1.p99_ms },
      c16: { throughputRps: c16.throughput_rps, p50Ms: c16.p50_ms, p99Ms: c16.p99_ms },
      cores: results.machine.cores,
      started: results.started,
    },
    derivation: {
      "cores, threads":
        `${pod.cores} cores (the bench machine), ${pod.threads} onnxruntime threads (INTRA_OP_THREADS)`,
      "run time of a batch of b": `${r(one)} ms + (b - 1) x ${r(perExtra)} ms: raw onnxruntime batch-1 p50 ${
        r(one)
      } ms and batch ${largest} at ${byBatch[largest]} images/s (${r(runMs(largest))} ms)`,
      "its spread": `log-normal, sigma ${
        pod.batchSigma.toFixed(3)
      }, from batch-1 p99/p50 = ${raw.batch1.p99_ms}/${raw.batch1.p50_ms}`,
      "decode + preprocess": `${pod.decodeMs} ms of one core (coffee.jpg median), sigma ${
        pod.decodeSigma.toFixed(3)
      } from its p90 ${decode.p90_ms} ms`,
      "HTTP and telemetry per request": `${
        r(httpMs)
      } ms of the main thread: c=1 p50 ${c1.p50_ms} - raw batch-1 p50 ${raw.batch1.p50_ms} - decode ${decode.median_ms}`,
      "a 503 refusal": `${rejectMs} ms of the main thread (overload phase, refusal p50)`,
      "queue and batch":
        `the bench ran MAX_QUEUE ${pod.maxQueue} (varied below), MAX_BATCH_SIZE ${maxBatch}, REQUEST_TIMEOUT_MS ${pod.timeoutMs}`,
      "start to ready": `${readySeconds} s from starting \`deno task start\` (model on disk) to /ready = 200`,
    },
  };
}
