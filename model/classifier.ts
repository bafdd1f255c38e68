/**
 * One image in, ranked classes out: header check, decode, preprocess,
 * inference, postprocess, each timed. HTTP-agnostic so every route (and the
 * v2 protocol later) shares it.
 */
import { DecodeError, decodeImage } from "./decode.ts";
import { type ImageHeader, ImageHeaderError, readImageHeader } from "./image_header.ts";
import { type ClassScore, softmaxInto, topK } from "./postprocess.ts";
import { preprocessInto, TENSOR_SIZE } from "./preprocess.ts";
import type { ModelRunner } from "./runner.ts";

export { DecodeError, ImageHeaderError };

/** The image declares more pixels than MAX_IMAGE_PIXELS; refused before decoding. */
export class PixelLimitError extends Error {
  constructor(readonly header: ImageHeader, readonly limit: number) {
    super(
      `Image is ${header.width}x${header.height} (${
        header.width * header.height
      } pixels); the limit is ${limit} pixels`,
    );
    this.name = "PixelLimitError";
  }
}

/** Stage names, shared with spans and the stage-duration metric. */
export type Stage = "decode" | "preprocess" | "inference" | "postprocess";

export interface Classification {
  image: { format: string; width: number; height: number; bytes: number };
  top: ClassScore[];
  timings: Record<Stage, number>;
}

export interface ClassifierOptions {
  maxImagePixels: number;
}

export class Classifier {
  readonly #runner: ModelRunner;
  readonly #labels: readonly string[];
  readonly #maxPixels: number;

  constructor(runner: ModelRunner, labels: readonly string[], options: ClassifierOptions) {
    if (labels.length !== runner.info.classes) {
      throw new Error(`Model outputs ${runner.info.classes} classes but ${labels.length} labels were given`);
    }
    this.#runner = runner;
    this.#labels = labels;
    this.#maxPixels = options.maxImagePixels;
  }

  get runner(): ModelRunner {
    return this.#runner;
  }

  /** Reads and checks the header only; throws {@link ImageHeaderError} or {@link PixelLimitError}. */
  inspect(bytes: Uint8Array): ImageHeader {
    const header = readImageHeader(bytes);
    if (header.width * header.height > this.#maxPixels) throw new PixelLimitError(header, this.#maxPixels);
    return header;
  }

  async classify(bytes: Uint8Array, k: number): Promise<Classification> {
    const header = this.inspect(bytes);
    let t = performance.now();
    const image = await decodeImage(bytes, header);
    const decode = performance.now() - t;

    t = performance.now();
    const input = new Float32Array(TENSOR_SIZE);
    preprocessInto(image, input, 0);
    const preprocess = performance.now() - t;

    t = performance.now();
    const output = await this.#runner.run(input, 1);
    const inference = performance.now() - t;

    t = performance.now();
    const row = output.subarray(0, this.#runner.info.classes);
    const probabilities = this.#runner.info.outputsProbabilities ? row : softmaxInto(row, row);
    const top = topK(probabilities, k, this.#labels);
    const postprocess = performance.now() - t;

    return {
      image: { format: header.format, width: header.width, height: header.height, bytes: bytes.byteLength },
      top,
      timings: { decode, preprocess, inference, postprocess },
    };
  }
}
