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
import { PlainStages, type StageRunner } from "../observability/stages.ts";

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

export interface Classification {
  image: { format: string; width: number; height: number; bytes: number };
  top: ClassScore[];
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

  /**
   * Classifies one image. Each stage runs through `stages`, which times it
   * (and, for HTTP requests, traces and measures it).
   */
  async classify(
    bytes: Uint8Array,
    k: number,
    stages: StageRunner = new PlainStages(),
  ): Promise<Classification> {
    const header = this.inspect(bytes);
    const info = this.#runner.info;
    const image = await stages.run("decode", (annotate) => {
      annotate({
        "image.format": header.format,
        "image.width": header.width,
        "image.height": header.height,
        "image.bytes": bytes.byteLength,
        "image.progressive": header.progressive,
      });
      return decodeImage(bytes, header);
    });
    const input = await stages.run("preprocess", () => {
      const tensor = new Float32Array(TENSOR_SIZE);
      preprocessInto(image, tensor, 0);
      return tensor;
    });
    const output = await stages.run("inference", (annotate) => {
      annotate({
        "model.name": info.name,
        "model.version": info.version,
        "model.weights": info.weights,
        "inference.batch_size": 1,
      });
      return this.#runner.run(input, 1);
    });
    const top = await stages.run("postprocess", (annotate) => {
      const row = output.subarray(0, info.classes);
      const probabilities = info.outputsProbabilities ? row : softmaxInto(row, row);
      const ranked = topK(probabilities, k, this.#labels);
      annotate({
        "prediction.class_id": ranked[0].class_id,
        "prediction.class_name": ranked[0].class_name,
        "prediction.score": ranked[0].confidence,
      });
      return ranked;
    });
    return {
      image: { format: header.format, width: header.width, height: header.height, bytes: bytes.byteLength },
      top,
    };
  }
}
