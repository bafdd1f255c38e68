/**
 * One image in, ranked classes out: header check, decode, preprocess,
 * inference, postprocess, each timed. HTTP-agnostic so /predict and the v2
 * protocol share it. Owns the batcher and the preprocessor: callers admit,
 * classify, drain and close through it.
 */
import { DecodeError } from "../../image/decode.ts";
import {
  type ImageFormat,
  type ImageHeader,
  ImageHeaderError,
  readImageHeader,
} from "../../image/image_header.ts";
import { type ClassScore, rankClasses } from "../classes/postprocess.ts";
import type { Admission, Batcher } from "./batcher.ts";
import { InlinePreprocessor, type Preprocessor } from "../../image/preprocess_pool.ts";
import type { ModelInfo } from "./runner.ts";
import { trace } from "@opentelemetry/api";
import { PlainStages, type StageRunner } from "../../observability/stages.ts";
import { guarded } from "../../observability/telemetry_guard.ts";
import { CodedError } from "../../core/errors.ts";

export { DecodeError, ImageHeaderError };

/** The image declares more pixels than MAX_IMAGE_PIXELS; refused before decoding. */
export class PixelLimitError extends CodedError {
  constructor(readonly header: ImageHeader, readonly limit: number) {
    super(
      "pixel_limit",
      `Image is ${header.width}x${header.height} (${
        header.width * header.height
      } pixels); the limit is ${limit} pixels`,
    );
  }
}

export interface Inference {
  top: ClassScore[];
  /** The model's output row, untouched (logits for ResNet-50 exports); `top` is ranked on it. */
  output: Float32Array;
}

export interface Classification extends Inference {
  /** As stored (width and height before any EXIF orientation is applied). */
  image: { format: ImageFormat; width: number; height: number; bytes: number; orientation: number };
}

/** One image whose header was accepted, as the input hook reports it. */
export interface ImageInput {
  format: string;
  bytes: number;
  /** Width x height, from the header. */
  pixels: number;
}

export interface ClassifierOptions {
  maxImagePixels: number;
  /** Called once per image whose header was accepted (per-image input metrics); through the telemetry guard. */
  onInput?: (image: ImageInput) => void;
}

export interface ClassifyOptions {
  /** A queue place taken when the request arrived (see {@link Classifier.admit}). */
  admission?: Admission;
  /** Aborted when the client goes away; a queued request then leaves the queue. */
  signal?: AbortSignal;
  /** Deadline for reaching the model, in ms. */
  timeoutMs?: number;
}

export class Classifier {
  readonly info: ModelInfo;
  readonly batcher: Batcher;
  readonly #preprocessor: Preprocessor;
  readonly #labels: readonly string[];
  readonly #maxPixels: number;
  readonly #onInput: ((image: ImageInput) => void) | undefined;

  constructor(
    info: ModelInfo,
    batcher: Batcher,
    labels: readonly string[],
    options: ClassifierOptions,
    preprocessor: Preprocessor = new InlinePreprocessor(),
  ) {
    if (labels.length !== info.classes) {
      throw new Error(`Model outputs ${info.classes} classes but ${labels.length} labels were given`);
    }
    this.info = info;
    this.batcher = batcher;
    this.#preprocessor = preprocessor;
    this.#labels = labels;
    this.#maxPixels = options.maxImagePixels;
    this.#onInput = guarded("image_input", options.onInput);
  }

  /** Stops admitting work; resolves once every admitted request has been answered. */
  drain(): Promise<void> {
    return this.batcher.drain();
  }

  /** Releases the inference sessions and preprocessing workers; call after {@link drain}. */
  async close(): Promise<void> {
    await Promise.all(this.batcher.runners.map((r) => r.close().catch(() => {})));
    this.#preprocessor.close();
  }

  /** Reads and checks the header only; throws {@link ImageHeaderError} or {@link PixelLimitError}. */
  inspect(bytes: Uint8Array): ImageHeader {
    const header = readImageHeader(bytes);
    if (header.width * header.height > this.#maxPixels) throw new PixelLimitError(header, this.#maxPixels);
    return header;
  }

  /** Holds a queue place for a request before its body is read; throws OverloadedError when full. */
  admit(): Admission {
    return this.batcher.admit();
  }

  /** Queue places for `n` images, all or none: on refusal the ones taken are given back. */
  admitAll(n: number): Admission[] {
    const held: Admission[] = [];
    try {
      for (let i = 0; i < n; i++) held.push(this.admit());
      return held;
    } catch (err) {
      for (const a of held) a.release();
      throw err;
    }
  }

  /** Runs `work` under the caller's admission, or one taken here; gives it back if the work failed before the queue. */
  async #admitted<T>(options: ClassifyOptions, work: (admission: Admission) => Promise<T>): Promise<T> {
    const admission = options.admission ?? this.admit();
    try {
      return await work(admission);
    } finally {
      // Normally consumed by the queue; given back if the request failed before it.
      admission.release();
    }
  }

  /**
   * Classifies one image. Each stage runs through `stages`, which times it
   * (and, for HTTP requests, traces and measures it). Without an admission
   * the request is admitted here.
   */
  async classify(
    bytes: Uint8Array,
    k: number,
    stages: StageRunner = new PlainStages(),
    options: ClassifyOptions = {},
  ): Promise<Classification> {
    return await this.#admitted(options, (admission) => this.#classify(bytes, k, stages, options, admission));
  }

  async #classify(
    bytes: Uint8Array,
    k: number,
    stages: StageRunner,
    options: ClassifyOptions,
    admission: Admission,
  ): Promise<Classification> {
    const header = this.inspect(bytes);
    this.#onInput?.({ format: header.format, bytes: bytes.byteLength, pixels: header.width * header.height });
    // Decode and preprocess run in a worker; their spans are recorded from its timings
    // (the hop to and from the worker counts as decode).
    const sent = performance.now();
    const prepared = await this.#preprocessor.prepare(bytes, header).catch(
      (err) => {
        stages.record("decode", sent, performance.now() - sent, {}, err);
        throw err;
      },
    );
    const roundTrip = performance.now() - sent;
    stages.record("decode", sent, roundTrip - prepared.preprocessMs, {
      "image.format": header.format,
      "image.width": header.width,
      "image.height": header.height,
      "image.bytes": bytes.byteLength,
      "image.progressive": header.progressive,
      "image.orientation": header.orientation,
      "image.decode_ms": prepared.decodeMs,
    });
    stages.record("preprocess", sent + roundTrip - prepared.preprocessMs, prepared.preprocessMs);
    const result = await this.#infer(prepared.tensor, k, stages, options, admission);
    return {
      ...result,
      image: {
        format: header.format,
        width: header.width,
        height: header.height,
        bytes: bytes.byteLength,
        orientation: header.orientation,
      },
    };
  }

  /**
   * Classifies one already preprocessed image (TENSOR_SIZE floats, NCHW), as the
   * v2 protocol's FP32 input provides it.
   */
  async classifyTensor(
    tensor: Float32Array,
    k: number,
    stages: StageRunner = new PlainStages(),
    options: ClassifyOptions = {},
  ): Promise<Inference> {
    return await this.#admitted(options, (admission) => this.#infer(tensor, k, stages, options, admission));
  }

  async #infer(
    input: Float32Array,
    k: number,
    stages: StageRunner,
    options: ClassifyOptions,
    admission: Admission,
  ): Promise<Inference> {
    const info = this.info;
    // queue_wait ends when the request's batch starts; inference ends with its result.
    let started!: (batchSize: number) => void;
    const start = new Promise<number>((resolve) => started = resolve);
    const job = this.batcher.submit(input, {
      admission,
      signal: options.signal,
      timeoutMs: options.timeoutMs,
      onStart: (n) => started(n),
      link: trace.getActiveSpan()?.spanContext(),
    });
    const batchSize = await stages.run("queue_wait", (annotate) => {
      annotate({ "inference.queue_depth": this.batcher.queueDepth });
      return Promise.race([start, job.then(() => 0)]);
    });
    const output = await stages.run("inference", async (annotate) => {
      annotate({
        "model.name": info.name,
        "model.version": info.version,
        "model.weights": info.weights,
        "model.precision": info.precision,
        "inference.batch_size": batchSize,
      });
      return (await job).row;
    });
    const top = await stages.run("postprocess", (annotate) => {
      const ranked = rankClasses(output, k, this.#labels, info.outputsProbabilities);
      annotate({
        "prediction.class_id": ranked[0].class_id,
        "prediction.class_name": ranked[0].class_name,
        "prediction.score": ranked[0].confidence,
      });
      return ranked;
    });
    return { top, output };
  }
}
