/**
 * Chooses the backend a runner runs on (INFERENCE_BACKEND). Each backend is
 * imported only when chosen, so the WASM profile never loads onnxruntime-node's
 * native library; kept apart from runner.ts, which the backends import.
 */
import type { LocalRunner, RunnerOptions } from "./runner.ts";

/** Starts the backend `options.backend` names, importing its runtime only then. */
export async function createRunner(options: RunnerOptions): Promise<LocalRunner> {
  if (options.backend === "wasm") {
    const { WasmRunner } = await import("./wasm_runner.ts");
    return await WasmRunner.create(options);
  }
  const { OrtRunner } = await import("./ort_runner.ts");
  return await OrtRunner.create(options);
}
