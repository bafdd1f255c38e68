/**
 * A ModelRunner whose runs finish only when the test says so: the real
 * batcher can then be tested deterministically. Row i of a result is filled
 * with the first input value of image i, so results can be traced back.
 */
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import type { ModelInfo, ModelRunner } from "../../model/runtime/runner.ts";

export class ControlledRunner implements ModelRunner {
  readonly info: ModelInfo;
  readonly calls: Array<{ batch: number; firsts: number[]; finish: () => void; fail: (e: Error) => void }> =
    [];
  readonly #classes: number;

  constructor(classes = 3, info: Partial<ModelInfo> = {}) {
    this.#classes = classes;
    this.info = { ...info, classes } as ModelInfo;
  }

  run(input: Float32Array, batch: number): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      const firsts = Array.from({ length: batch }, (_, i) => input[i * TENSOR_SIZE]);
      const classes = this.#classes;
      this.calls.push({
        batch,
        firsts,
        finish: () =>
          resolve(Float32Array.from({ length: batch * classes }, (_, j) => firsts[Math.floor(j / classes)])),
        fail: reject,
      });
    });
  }

  /** Finishes every run started so far. */
  finishAll(): void {
    for (const c of this.calls.splice(0)) c.finish();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
