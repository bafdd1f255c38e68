/**
 * A ModelRunner whose every run fails as a native fault in onnxruntime would
 * (the only way to get a real 500 from the gateway), serving the model it is
 * given the description of.
 */
import type { ModelInfo, ModelRunner } from "../../model/runtime/runner.ts";

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

/**
 * A ModelRunner that answers NaN for every input, as a model whose weights
 * went bad would: the real model cannot be driven there from a photo our own
 * preprocessing produced, so this is the only way to see what the gateway
 * does with such an answer.
 */
export class NonFiniteRunner implements ModelRunner {
  constructor(readonly info: ModelInfo) {}

  run(_input: Float32Array, batch: number): Promise<Float32Array> {
    return Promise.resolve(new Float32Array(batch * this.info.classes).fill(NaN));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
