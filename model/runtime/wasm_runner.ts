/**
 * Runs the classifier through onnxruntime-web's WebAssembly backend: no
 * native code, so it runs where FFI is refused (edge runtimes, `deno task
 * start:edge`). SIMD always; threads where the runtime has Workers, since
 * WebAssembly threads are Workers sharing memory.
 *
 * onnxruntime-web loads its .wasm from its own npm package directory (read
 * access to node_modules, nothing fetched); the model comes as bytes or a
 * path read here.
 */
import * as ort from "onnxruntime-web";
import { readModelFile } from "../artifact/model_bytes.ts";
import { describeSession, ModelShapeError, type RunnerOptions, SessionRunner } from "./runner.ts";
import { errorMessage } from "../../core/errors.ts";

const tensor = (data: Float32Array, dims: readonly number[]) => new ort.Tensor("float32", data, dims);

/**
 * WebAssembly threads wanted for `requested` (INTRA_OP_THREADS). 0 means
 * onnxruntime's own choice, one per two logical cores up to 4 (it cannot
 * make that choice itself in Deno, which it takes for a browser page that
 * is not cross-origin isolated, and would run single-threaded).
 */
export function wasmThreads(requested: number, hasWorkers = typeof Worker === "function"): number {
  if (!hasWorkers) return 1;
  if (requested > 0) return requested;
  return Math.min(4, Math.ceil((navigator.hardwareConcurrency || 1) / 2));
}

/**
 * onnxruntime-web's Emscripten glue takes Deno (which has `process`) for Node
 * and replaces the global Worker with node:worker_threads' for its threads.
 * Every Worker made after that (the preprocessing pool, inference workers,
 * their replacements) would then start as a Node thread and fail. Once the
 * runtime is up, the web Worker is put back; the glue's own thread requests
 * (marked "em-pthread") still go to worker_threads.
 */
const WebWorker: typeof Worker | undefined = globalThis.Worker;
const PTHREAD = "em-pthread";

function restoreWebWorker(): void {
  const installed = globalThis.Worker as unknown;
  if (installed === WebWorker || typeof installed !== "function") return;
  const ThreadWorker = installed as new (url: string | URL, options?: object) => unknown;
  function Worker(url: string | URL, options?: WorkerOptions & { workerData?: unknown }) {
    if (options?.workerData === PTHREAD) return new ThreadWorker(url, options);
    if (!WebWorker) throw new TypeError("This runtime has no Workers");
    return new WebWorker(url, options);
  }
  if (WebWorker) Worker.prototype = WebWorker.prototype;
  globalThis.Worker = Worker as unknown as typeof globalThis.Worker;
}

/**
 * The WebAssembly module is instantiated once per isolate with the thread
 * count of the first session; later sessions share it.
 */
let configured = false;
function configure(threads: number): void {
  if (configured) return;
  configured = true;
  ort.env.wasm.numThreads = threads;
  // Its warnings would go to stdout, between our JSON log lines.
  ort.env.logLevel = "error";
}

export class WasmRunner extends SessionRunner {
  /** Loads the model, checks it is an image classifier. */
  static async create(options: RunnerOptions): Promise<WasmRunner> {
    configure(wasmThreads(options.intraOpThreads));
    let session: ort.InferenceSession;
    try {
      // The runtime reads a path with Node's fs; read it here so a missing file says so plainly.
      const bytes = options.bytes ?? await readModelFile(options.path);
      session = await ort.InferenceSession.create(bytes, {
        executionProviders: ["wasm"],
        graphOptimizationLevel: "all",
        executionMode: "sequential",
      });
    } catch (err) {
      const reason = errorMessage(err);
      throw new ModelShapeError(`Cannot load ONNX model ${options.path}: ${reason}`);
    } finally {
      restoreWebWorker();
    }
    const info = describeSession(session, options, {
      runtime: "onnxruntime-web",
      runtimeVersion: ort.env.versions.web ?? "unknown",
      // What the module was instantiated with (1 if this runtime cannot run WebAssembly threads).
      intraOpThreads: ort.env.wasm.numThreads ?? 1,
    });
    return new WasmRunner(session, tensor, info);
  }

  override async run(input: Float32Array, batch: number): Promise<Float32Array> {
    // WebAssembly computes on the calling thread and holds it for the whole run. Give the event
    // loop one turn first, so the batch's requests end their queue wait (their spans and timings)
    // before it rather than after, and I/O that is already waiting is not held for 100+ ms.
    await new Promise((resolve) => setTimeout(resolve, 0));
    return await super.run(input, batch);
  }
}
