/**
 * A ModelRunner whose session lives in a Deno Worker (see inference_worker.ts).
 * If the worker dies, every call in flight is answered with an error at once
 * (never left hanging) and the runner reports itself dead so the pool can
 * replace it.
 */
import type { InferenceProtocol } from "./inference_worker.ts";
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import type { ModelInfo, ModelRunner, RunnerOptions } from "./runner.ts";
import { CodedError } from "../../core/errors.ts";
import { RpcClient } from "../../core/worker_rpc.ts";

export class WorkerCrashedError extends CodedError {
  constructor(message: string) {
    super("worker_crashed", message);
  }
}

export class WorkerRunner implements ModelRunner {
  readonly info: ModelInfo;
  readonly warmupMs: number;
  readonly #rpc: RpcClient<InferenceProtocol>;
  #dead: string | undefined;
  #onDeath: ((reason: string) => void) | undefined;

  private constructor(rpc: RpcClient<InferenceProtocol>, info: ModelInfo, warmupMs: number) {
    this.#rpc = rpc;
    this.info = info;
    this.warmupMs = warmupMs;
  }

  /** Starts a worker, loads and warms the model in it. */
  static async create(options: RunnerOptions, warmupIterations = 2): Promise<WorkerRunner> {
    let runner: WorkerRunner | undefined;
    const rpc = new RpcClient<InferenceProtocol>(
      new Worker(new URL("./inference_worker.ts", import.meta.url), { type: "module" }),
      {
        name: "Inference worker",
        crashError: (reason) => new WorkerCrashedError(reason),
        onCrash: (reason) => {
          if (runner) runner.#die(reason);
        },
      },
    );
    try {
      const { info, warmupMs } = await rpc.call("init", { options, warmupIterations });
      runner = new WorkerRunner(rpc, info, warmupMs);
      // Died between its reply and now (onCrash found no runner yet): tell the owner through onDeath.
      if (rpc.dead) runner.#die(rpc.dead);
      return runner;
    } catch (err) {
      rpc.terminate();
      throw err;
    }
  }

  /** Why the worker is gone, if it is. */
  get dead(): string | undefined {
    return this.#dead;
  }

  /** Called once if the worker dies, so its owner can replace it. */
  onDeath(callback: (reason: string) => void): void {
    this.#onDeath = callback;
  }

  /** Takes ownership of `input`: when it spans its whole buffer, the buffer is transferred, not copied. */
  run(input: Float32Array, batch: number): Promise<Float32Array> {
    if (this.#dead) return Promise.reject(new WorkerCrashedError(this.#dead));
    const size = batch * TENSOR_SIZE;
    const whole = input.byteOffset === 0 && input.length === size && input.buffer.byteLength === size * 4;
    const owned = whole ? input : input.slice(0, size);
    // Preprocessed tensors are always backed by plain ArrayBuffers.
    const buffer = owned.buffer as ArrayBuffer;
    return this.#rpc.call("run", { input: buffer, batch }, [buffer]).then((output) =>
      new Float32Array(output)
    );
  }

  /** Fails what is in flight (the RPC client already has, on a crash) and tells the owner, once. */
  #die(reason: string): void {
    if (this.#dead) return;
    this.#dead = reason;
    this.#rpc.terminate(reason);
    this.#onDeath?.(reason);
  }

  /** For fault tests: kill the worker as a crash would. */
  kill(): void {
    this.#die("Inference worker was terminated");
  }

  async close(): Promise<void> {
    if (this.#dead) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#rpc.call("close", undefined).catch(() => {}),
      new Promise<void>((resolve) => timer = setTimeout(resolve, 2000)),
    ]);
    clearTimeout(timer);
    this.#dead = "closed";
    this.#rpc.terminate("closed");
  }
}
