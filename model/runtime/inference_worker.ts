/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * Worker entry: owns one onnxruntime session (either backend). Both keep the
 * calling JavaScript thread busy for the whole inference, so running it here
 * keeps the server's event loop free for HTTP, /health and /metrics.
 *
 * Protocol (structured clone, tensors transferred, never copied):
 *   -> { type: "init", options, warmupIterations }  <- { type: "ready", info, warmupMs } | { type: "failed", message }
 *   -> { type: "run", id, input, batch }            <- { type: "result", id, output } | { type: "error", id, message }
 *   -> { type: "close" }                            <- { type: "closed" }
 */
import { createRunner } from "./backends.ts";
import type { LocalRunner, ModelInfo, RunnerOptions } from "./runner.ts";
import { errorMessage } from "../../core/errors.ts";

export type WorkerRequest =
  | { type: "init"; options: RunnerOptions; warmupIterations: number }
  | { type: "run"; id: number; input: ArrayBuffer; batch: number }
  | { type: "close" };

export type WorkerReply =
  | { type: "ready"; info: ModelInfo; warmupMs: number }
  | { type: "failed"; message: string }
  | { type: "result"; id: number; output: ArrayBuffer }
  | { type: "error"; id: number; message: string }
  | { type: "closed" };

let runner: LocalRunner | undefined;
const reply = (message: WorkerReply, transfer: Transferable[] = []) =>
  self.postMessage(message, { transfer });

self.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  const msg = event.data;
  switch (msg.type) {
    case "init":
      try {
        runner = await createRunner(msg.options);
        const warmupMs = await runner.warmup(msg.warmupIterations);
        reply({ type: "ready", info: runner.info, warmupMs });
      } catch (err) {
        reply({ type: "failed", message: errorMessage(err) });
      }
      return;
    case "run":
      try {
        if (!runner) throw new Error("Worker received work before its model loaded");
        const output = await runner.run(new Float32Array(msg.input), msg.batch);
        // The session may reuse its output buffer; hand over a copy we own.
        const owned = output.slice();
        reply({ type: "result", id: msg.id, output: owned.buffer }, [owned.buffer]);
      } catch (err) {
        reply({ type: "error", id: msg.id, message: errorMessage(err) });
      }
      return;
    case "close":
      await runner?.close().catch(() => {});
      reply({ type: "closed" });
      return;
  }
};
