/**
 * A ModelRunner whose session lives in a Deno Worker (see inference_worker.ts).
 * If the worker dies, every call in flight is answered with an error at once
 * (never left hanging) and the runner reports itself dead so the pool can
 * replace it.
 */
import type { WorkerReply, WorkerRequest } from "./inference_worker.ts";
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import type { ModelInfo, ModelRunner, RunnerOptions } from "./runner.ts";
import { CodedError } from "../../core/errors.ts";

export class WorkerCrashedError extends CodedError {
  constructor(message: string) {
    super("worker_crashed", message);
  }
}

interface Pending {
  resolve: (output: Float32Array) => void;
  reject: (err: Error) => void;
}

export class WorkerRunner implements ModelRunner {
  readonly info: ModelInfo;
  readonly warmupMs: number;
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #dead: string | undefined;
  #onDeath: ((reason: string) => void) | undefined;

  private constructor(worker: Worker, info: ModelInfo, warmupMs: number) {
    this.#worker = worker;
    this.info = info;
    this.warmupMs = warmupMs;
    worker.onmessage = (event: MessageEvent<WorkerReply>) => this.#receive(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      this.#die(`Inference worker crashed: ${event.message}`);
    };
    worker.onmessageerror = () => this.#die("Inference worker sent an unreadable message");
  }

  /** Starts a worker, loads and warms the model in it. */
  static create(options: RunnerOptions, warmupIterations = 2): Promise<WorkerRunner> {
    const worker = new Worker(new URL("./inference_worker.ts", import.meta.url), { type: "module" });
    return new Promise((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<WorkerReply>) => {
        const msg = event.data;
        if (msg.type === "ready") resolve(new WorkerRunner(worker, msg.info, msg.warmupMs));
        else if (msg.type === "failed") {
          worker.terminate();
          reject(new Error(msg.message));
        }
      };
      worker.onerror = (event) => {
        event.preventDefault();
        worker.terminate();
        reject(new Error(`Inference worker failed to start: ${event.message}`));
      };
      worker.postMessage({ type: "init", options, warmupIterations } satisfies WorkerRequest);
    });
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
    const id = this.#nextId++;
    const size = batch * TENSOR_SIZE;
    const whole = input.byteOffset === 0 && input.length === size && input.buffer.byteLength === size * 4;
    const owned = whole ? input : input.slice(0, size);
    // Preprocessed tensors are always backed by plain ArrayBuffers.
    const buffer = owned.buffer as ArrayBuffer;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ type: "run", id, input: buffer, batch } satisfies WorkerRequest, [buffer]);
    });
  }

  #receive(msg: WorkerReply): void {
    if (msg.type === "result" || msg.type === "error") {
      const pending = this.#pending.get(msg.id);
      if (!pending) return;
      this.#pending.delete(msg.id);
      if (msg.type === "result") pending.resolve(new Float32Array(msg.output));
      else pending.reject(new Error(msg.message));
    }
  }

  #die(reason: string): void {
    if (this.#dead) return;
    this.#dead = reason;
    for (const p of this.#pending.values()) p.reject(new WorkerCrashedError(reason));
    this.#pending.clear();
    this.#worker.terminate();
    this.#onDeath?.(reason);
  }

  /** For fault tests: kill the worker as a crash would. */
  kill(): void {
    this.#die("Inference worker was terminated");
  }

  async close(): Promise<void> {
    if (this.#dead) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      this.#worker.onmessage = (event: MessageEvent<WorkerReply>) => {
        if (event.data.type === "closed") {
          clearTimeout(timer);
          resolve();
        } else this.#receive(event.data);
      };
      this.#worker.postMessage({ type: "close" } satisfies WorkerRequest);
    });
    this.#dead = "closed";
    this.#worker.terminate();
  }
}
