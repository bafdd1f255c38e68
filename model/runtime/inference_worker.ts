/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * Worker entry: owns one onnxruntime session (either backend). Both keep the
 * calling JavaScript thread busy for the whole inference, so running it here
 * keeps the server's event loop free for HTTP, /health and /metrics.
 *
 * Protocol (core/worker_rpc.ts; tensors transferred, never copied): `init`
 * loads and warms the model, `run` runs one batch, `close` releases the session.
 */
import { createRunner } from "./backends.ts";
import type { LocalRunner, ModelInfo, RunnerOptions } from "./runner.ts";
import { serveRpc, withTransfer } from "../../core/worker_rpc.ts";

export type InferenceProtocol = {
  init: {
    arg: { options: RunnerOptions; warmupIterations: number };
    result: { info: ModelInfo; warmupMs: number };
  };
  run: { arg: { input: ArrayBuffer; batch: number }; result: ArrayBuffer };
  close: { arg: undefined; result: undefined };
};

let runner: LocalRunner | undefined;

serveRpc<InferenceProtocol>({
  async init({ options, warmupIterations }) {
    runner = await createRunner(options);
    const warmupMs = await runner.warmup(warmupIterations);
    return { info: runner.info, warmupMs };
  },
  async run({ input, batch }) {
    if (!runner) throw new Error("Worker received work before its model loaded");
    const output = await runner.run(new Float32Array(input), batch);
    // The session may reuse its output buffer; hand over a copy we own.
    const owned = output.slice();
    return withTransfer(owned.buffer, [owned.buffer]);
  },
  async close() {
    await runner?.close().catch(() => {});
    return undefined;
  },
});
