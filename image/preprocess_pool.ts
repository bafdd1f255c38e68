/**
 * Where decode + preprocess run: in a pool of Workers (production), or
 * inline on the calling thread (tests, debugging). Both run prepareImage and
 * give the same tensor.
 */
import { DecodeError } from "./decode.ts";
import type { ImageHeader } from "./image_header.ts";
import { type Prepared, prepareImage, type PrepareOptions } from "./prepare.ts";
import type { PreprocessProtocol } from "./preprocess_worker.ts";
import { RpcClient } from "../core/worker_rpc.ts";

export interface Preprocessor {
  prepare(bytes: Uint8Array, header: ImageHeader): Promise<Prepared>;
  close(): void;
}

export class InlinePreprocessor implements Preprocessor {
  readonly #options: PrepareOptions;

  /** `options` apply to every image (EXIF_ORIENTATION). */
  constructor(options: PrepareOptions = {}) {
    this.#options = { ...options };
  }

  prepare(bytes: Uint8Array, header: ImageHeader): Promise<Prepared> {
    return prepareImage(bytes, header, this.#options);
  }
  close(): void {}
}

export class PreprocessPool implements Preprocessor {
  readonly #workers: RpcClient<PreprocessProtocol>[] = [];
  readonly #options: PrepareOptions;
  #closed = false;

  /** `options` apply to every image (EXIF_ORIENTATION). */
  constructor(size: number, options: PrepareOptions = {}) {
    this.#options = { ...options };
    for (let i = 0; i < size; i++) this.#workers.push(this.#spawn());
  }

  #spawn(): RpcClient<PreprocessProtocol> {
    const worker: RpcClient<PreprocessProtocol> = new RpcClient(
      new Worker(new URL("./preprocess_worker.ts", import.meta.url), { type: "module" }),
      {
        name: "Image decoder",
        // A decoder crash (for example out of memory on a hostile image) takes the worker down:
        // what it held fails as undecodable, and a fresh one takes its place.
        crashError: (reason, crashed) => crashed ? new DecodeError(reason) : new Error(reason),
        onCrash: () => {
          if (!this.#closed) this.#workers[this.#workers.indexOf(worker)] = this.#spawn();
        },
        revive: { decode_failed: (message) => new DecodeError(message) },
      },
    );
    return worker;
  }

  async prepare(bytes: Uint8Array, header: ImageHeader): Promise<Prepared> {
    if (this.#closed) throw new Error("Preprocessing pool is closed");
    // The least busy worker; ties go to the first.
    const worker = this.#workers.reduce((a, b) => (b.pending < a.pending ? b : a));
    const copy = bytes.slice();
    const reply = await worker.call("prepare", { bytes: copy.buffer, header, options: this.#options }, [
      copy.buffer,
    ]);
    return {
      tensor: new Float32Array(reply.tensor),
      decodeMs: reply.decodeMs,
      preprocessMs: reply.preprocessMs,
    };
  }

  close(): void {
    this.#closed = true;
    for (const worker of this.#workers) worker.terminate("Preprocessing pool closed");
  }
}
