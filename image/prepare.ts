/**
 * Bytes to tensor for one image whose header has been read and accepted:
 * decode, then torchvision's transform. The one path taken by the
 * preprocessing worker, the inline preprocessor and the benchmark.
 */
import { type Codecs, decodeImage } from "./decode.ts";
import type { ImageHeader } from "./image_header.ts";
import type { OrientationMode } from "./orientation.ts";
import { preprocess } from "./preprocess.ts";

/**
 * JPEGs are decoded at a reduced DCT scale while the shorter side stays at
 * least twice the resize target. On the 4000x2660 fixture, 1/8 scale (down to
 * 256) differs from torchvision's tensor by a mean of 0.030, the tolerance's
 * edge; twice the target keeps it at 0.0055 and still decodes in about half
 * the time of a full-size decode (docs/performance.md).
 */
export const JPEG_MIN_DECODE_SHORT_SIDE = 512;

export interface Prepared {
  /** One preprocessed image: TENSOR_SIZE floats, CHW. */
  tensor: Float32Array<ArrayBuffer>;
  decodeMs: number;
  preprocessMs: number;
}

export interface PrepareOptions {
  /**
   * `apply` (default) turns the photo upright as its EXIF orientation says,
   * as browsers show it; `ignore` keeps it as stored, as torchvision does.
   */
  orientation?: OrientationMode;
  /** `wasm`: WebAssembly decoders only (the WASM profile). Default: native. */
  codecs?: Codecs;
}

/** Decodes and preprocesses one image; throws DecodeError when the bytes are not the image the header says. */
export async function prepareImage(
  bytes: Uint8Array,
  header: ImageHeader,
  options: PrepareOptions = {},
): Promise<Prepared> {
  const t0 = performance.now();
  const image = await decodeImage(bytes, header, {
    minShortSide: JPEG_MIN_DECODE_SHORT_SIDE,
    orientation: options.orientation,
    codecs: options.codecs,
  });
  const t1 = performance.now();
  const tensor = preprocess(image);
  return { tensor, decodeMs: t1 - t0, preprocessMs: performance.now() - t1 };
}
