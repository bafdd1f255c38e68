/**
 * Where decode + preprocess run: in a pool of Workers (production), or
 * inline on the calling thread (tests, debugging). Both run prepareImage and
 * give the same tensor.
 */
import { DecodeError } from "./decode.ts";
import type { ImageHeader } from "./image_header.ts";
import { type Prepared, prepareImage, type PrepareOptions } from "./prepare.ts";
import type { PreprocessReply, PreprocessRequest } from "./preprocess_worker.ts";

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

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (p: Prepared) => void; reject: (e: Error) => void }>;
}

export class PreprocessPool implements Preprocessor {
  readonly #slots: Slot[] = [];
  readonly #options: PrepareOptions;
  #nextId = 1;
  #closed = false;

  /** `options` apply to every image (EXIF_ORIENTATION). */
  constructor(size: number, options: PrepareOptions = {}) {
    this.#options = { ...options };
    for (let i = 0; i < size; i++) this.#slots.push(this.#spawn());
  }

  #spawn(): Slot {
    const worker = new Worker(new URL("./preprocess_worker.ts", import.meta.url), { type: "module" });
    const slot: Slot = { worker, pending: new Map() };
    worker.onmessage = (event: MessageEvent<PreprocessReply>) => {
      const reply = event.data;
      const p = slot.pending.get(reply.id);
      if (!p) return;
      slot.pending.delete(reply.id);
      if ("error" in reply) {
        p.reject(reply.decodeError ? new DecodeError(reply.error) : new Error(reply.error));
      } else {
        p.resolve({
          tensor: new Float32Array(reply.tensor),
          decodeMs: reply.decodeMs,
          preprocessMs: reply.preprocessMs,
        });
      }
    };
    worker.onerror = (event) => {
      // A decoder crash (for example out of memory on a hostile image) takes the
      // worker down: fail what it held and start a fresh one in its place.
      event.preventDefault();
      worker.terminate();
      for (const p of slot.pending.values()) {
        p.reject(new DecodeError(`Image decoder crashed: ${event.message}`));
      }
      slot.pending.clear();
      if (!this.#closed) this.#slots[this.#slots.indexOf(slot)] = this.#spawn();
    };
    return slot;
  }

  prepare(bytes: Uint8Array, header: ImageHeader): Promise<Prepared> {
    if (this.#closed) return Promise.reject(new Error("Preprocessing pool is closed"));
    // The least busy worker; ties go to the first.
    const slot = this.#slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.#nextId++;
    const copy = bytes.slice();
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      const request: PreprocessRequest = { id, bytes: copy.buffer, header, options: this.#options };
      slot.worker.postMessage(request, [copy.buffer]);
    });
  }

  close(): void {
    this.#closed = true;
    for (const slot of this.#slots) {
      slot.worker.terminate();
      for (const p of slot.pending.values()) p.reject(new Error("Preprocessing pool closed"));
    }
  }
}
