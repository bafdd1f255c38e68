/**
 * A ModelRunner whose every run fails as a native fault in onnxruntime would
 * (the only way to get a real 500 from the gateway), serving the model it is
 * given the description of.
 */
import type { ModelInfo, ModelRunner } from "../model/runner.ts";

export class BrokenRunner implements ModelRunner {
  readonly info: ModelInfo;
  readonly #message: string;

  constructor(info: ModelInfo, message = "native failure at 0xdeadbeef") {
    this.info = info;
    this.#message = message;
  }

  run(_input: Float32Array, _batch: number): Promise<Float32Array> {
    return Promise.reject(new Error(this.#message));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
