/**
 * Decodes JPEG, PNG and WebP bytes into 8-bit pixels, turned upright as their
 * EXIF orientation says. The only module that knows which decoder is used, so
 * it can be swapped or moved off the main thread.
 *
 * Gray and YCbCr JPEGs go through sharp (libvips with libjpeg-turbo, the
 * decoder PIL uses): pixel-identical to torchvision's input and 2 to 5x
 * faster than imagescript's WASM decoder (docs/performance.md). CMYK JPEGs stay on
 * imagescript, whose raw inks we convert the way PIL does (libvips would
 * apply a colour profile and differ from PIL), and so do PNGs, where sharp
 * is no faster. imagescript's `Image.decode` copies every pixel into an RGBA
 * bitmap one at a time; we call its WASM codecs directly instead. WebP goes
 * through sharp's libwebp, the library PIL decodes it with.
 *
 * With `codecs: "wasm"` (the WASM profile: INFERENCE_BACKEND=wasm, edge
 * runtimes without native addons) nothing native is used: every JPEG goes
 * through imagescript, WebP through libwebp compiled to WebAssembly
 * (@jsquash/webp). sharp is therefore imported only when first used, so a
 * process that never asks for it never loads a native library.
 */
import type { Sharp, SharpOptions } from "sharp";
import webpWasmFactory from "@jsquash/webp/codec/dec/webp_dec.js";
import { initEmscriptenModule } from "@jsquash/webp/utils.js";
// @ts-types="./imagescript_jpeg.d.ts"
import jpegCodec from "imagescript/wasm/node/jpeg.js";
// @ts-types="./imagescript_png.d.ts"
import pngCodec from "imagescript/wasm/node/png.js";
import { formatList, type ImageHeader } from "./image_header.ts";
import { applyOrientation, type OrientationMode } from "./orientation.ts";
import { CodedError, errorMessage } from "../core/errors.ts";
import type { RawImage } from "./raw_image.ts";

/** The bytes claim to be JPEG/PNG/WebP but the decoder cannot make an image of them. */
export class DecodeError extends CodedError {
  constructor(message: string, options?: ErrorOptions) {
    super("decode_failed", message, options);
  }
}

const JPEG_GRAY = 0;
const JPEG_RGB = 1;
const JPEG_CMYK = 2;

/**
 * Converts the decoder's CMYK (ink amounts, 255 = full ink) to RGB the way
 * PIL's convert("RGB") does: R = (255 - C)(255 - K) / 255. Checked against
 * the torchvision reference of a CMYK photo.
 */
function cmykToRgb(cmyk: Uint8Array, pixels: number): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  for (let i = 0, o = 0; i < pixels * 4; i += 4, o += 3) {
    const k = 255 - cmyk[i + 3];
    rgb[o] = Math.round(((255 - cmyk[i]) * k) / 255);
    rgb[o + 1] = Math.round(((255 - cmyk[i + 1]) * k) / 255);
    rgb[o + 2] = Math.round(((255 - cmyk[i + 2]) * k) / 255);
  }
  return rgb;
}

/**
 * The DCT-domain scale (1, 1/2, 1/4 or 1/8) that keeps the decoded shorter
 * side at least `minShortSide`: the resize that follows then still averages
 * real detail, while a 4000x2660 photo decodes 16x fewer pixels.
 */
export function jpegScale(width: number, height: number, minShortSide: number): number {
  const short = Math.min(width, height);
  for (const denominator of [8, 4, 2]) {
    if (Math.ceil(short / denominator) >= minShortSide) return 1 / denominator;
  }
  return 1;
}

type SharpFactory = (input: Uint8Array, options: SharpOptions) => Sharp;
let sharpLoaded: Promise<SharpFactory> | undefined;

/** Loads sharp (and with it libvips) on first use. */
function loadSharp(): Promise<SharpFactory> {
  sharpLoaded ??= import("sharp").then(({ default: sharp }) => {
    // One libvips thread per image: the gateway parallelizes across requests. No operation
    // cache: it would keep decoded images resident after their request.
    sharp.concurrency(1);
    sharp.cache(false);
    return sharp;
  });
  return sharpLoaded;
}

/**
 * libjpeg-turbo through sharp. Large photos are decoded at a reduced DCT scale
 * (shrink-on-load) and brought to exactly the scaled size with a linear
 * filter, which keeps them within 0.006 of torchvision's tensor.
 */
async function decodeJpegSharp(
  bytes: Uint8Array,
  header: ImageHeader,
  minShortSide: number,
): Promise<RawImage> {
  const sharp = await loadSharp();
  const scale = jpegScale(header.width, header.height, minShortSide);
  let pipeline = sharp(bytes, { failOn: "error", sequentialRead: true, limitInputPixels: false });
  if (scale !== 1) {
    pipeline = pipeline.resize(Math.ceil(header.width * scale), Math.ceil(header.height * scale), {
      kernel: "linear",
      fit: "fill",
      fastShrinkOnLoad: true,
    });
  }
  const { data, info } = await pipeline.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  const channels = info.channels;
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new DecodeError(`JPEG decoder returned ${channels} channels`);
  }
  return {
    width: info.width,
    height: info.height,
    channels,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

/** imagescript's JPEG codec: CMYK JPEGs always, every JPEG with `codecs: "wasm"`. */
function decodeJpegImagescript(bytes: Uint8Array, header: ImageHeader, minShortSide: number): RawImage {
  // A fresh instance per image: WASM memory only grows, so a shared instance
  // would keep the largest image ever decoded resident for the life of the process.
  const codec = jpegCodec.new();
  const scale = jpegScale(header.width, header.height, minShortSide);
  const fb = scale === 1
    ? codec.decode(bytes)
    : codec.decode(bytes, Math.ceil(header.width * scale), Math.ceil(header.height * scale));
  const pixels = fb.width * fb.height;
  switch (fb.format) {
    case JPEG_GRAY:
      return { width: fb.width, height: fb.height, channels: 1, data: fb.buffer.subarray(0, pixels) };
    case JPEG_RGB:
      return { width: fb.width, height: fb.height, channels: 3, data: fb.buffer.subarray(0, pixels * 3) };
    case JPEG_CMYK:
      return { width: fb.width, height: fb.height, channels: 3, data: cmykToRgb(fb.buffer, pixels) };
    default:
      throw new DecodeError(`JPEG decoder returned unknown pixel format ${fb.format}`);
  }
}

/** libwebp through sharp: the first frame of an animation, drawn on the canvas the header declares. */
async function decodeWebp(bytes: Uint8Array): Promise<RawImage> {
  const sharp = await loadSharp();
  const { data, info } = await sharp(bytes, { failOn: "error", limitInputPixels: false })
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  const channels = info.channels;
  if (channels !== 3 && channels !== 4) throw new DecodeError(`WebP decoder returned ${channels} channels`);
  return {
    width: info.width,
    height: info.height,
    channels,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

let webpWasm: Promise<WebAssembly.Module> | undefined;

/** libwebp as WebAssembly, compiled once from its npm package (read, never fetched from a network). */
function loadWebpWasm(): Promise<WebAssembly.Module> {
  webpWasm ??= Deno.readFile(new URL(import.meta.resolve("@jsquash/webp/codec/dec/webp_dec.wasm")))
    .then((bytes) => WebAssembly.compile(bytes));
  return webpWasm;
}

/**
 * libwebp compiled to WebAssembly, for `codecs: "wasm"`: the same library as
 * the native path, so the same pixels. A fresh instance per image (cheap once
 * compiled), as for JPEG: its memory never shrinks. It decodes still images
 * only; an animation is refused as undecodable.
 */
async function decodeWebpWasm(bytes: Uint8Array): Promise<RawImage> {
  const codec = await initEmscriptenModule(webpWasmFactory, await loadWebpWasm());
  const decoded = codec.decode(bytes);
  if (!decoded) {
    throw new DecodeError(
      "Cannot decode WebP image: libwebp refused it (animated WebP needs the native decoder)",
    );
  }
  const data = decoded.data;
  return {
    width: decoded.width,
    height: decoded.height,
    channels: 4,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

function decodePng(bytes: Uint8Array): RawImage {
  const { width, height, framebuffer } = pngCodec.new().decode(bytes);
  return { width, height, channels: 4, data: framebuffer };
}

/** Which decoders: native where they are faster or closer to PIL (sharp), or WebAssembly only. */
export type Codecs = "native" | "wasm";

export interface DecodeOptions {
  /**
   * Allow JPEG decoding at a reduced DCT scale as long as the shorter side
   * stays at least this long (prepare.ts passes JPEG_MIN_DECODE_SHORT_SIDE).
   * Default: full size.
   */
  minShortSide?: number;
  /**
   * `apply` (default) turns the image upright as its EXIF orientation says,
   * as browsers show it; `ignore` keeps it as stored, as torchvision's
   * `PIL.Image.open` does.
   */
  orientation?: OrientationMode;
  /** Default: native. */
  codecs?: Codecs;
}

let ready: Promise<void> | undefined;

/**
 * Compiles the WASM codecs once (and loads sharp when it will be used); call
 * at startup so the first request does not pay for it.
 */
export async function initDecoders(codecs: Codecs = "native"): Promise<void> {
  ready ??= Promise.all([jpegCodec.init(), pngCodec.init()]).then(() => undefined);
  await Promise.all([ready, codecs === "native" ? loadSharp() : loadWebpWasm()]);
}

/**
 * Decodes an image whose header has already been read and accepted.
 * Throws {@link DecodeError} when the data is corrupt or the decoder's output
 * does not match the header (a forged header must not pass as a smaller image).
 * The orientation is applied last, on the decoded pixels, so every decoder
 * path gives the same upright image.
 */
export async function decodeImage(
  bytes: Uint8Array,
  header: ImageHeader,
  options: DecodeOptions = {},
): Promise<RawImage> {
  const codecs = options.codecs ?? "native";
  await initDecoders(codecs);
  const minShortSide = options.minShortSide ?? Infinity;
  let image: RawImage;
  try {
    image = header.format === "png"
      ? decodePng(bytes)
      : header.format === "webp"
      ? await (codecs === "wasm" ? decodeWebpWasm(bytes) : decodeWebp(bytes))
      : header.components === 4 || codecs === "wasm"
      ? decodeJpegImagescript(bytes, header, minShortSide)
      : await decodeJpegSharp(bytes, header, minShortSide);
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    throw new DecodeError(`Cannot decode ${formatList([header.format])} image: ${errorText(err)}`, {
      cause: err,
    });
  }
  const expected = header.format === "jpeg" ? jpegScale(header.width, header.height, minShortSide) : 1;
  if (
    image.width !== Math.ceil(header.width * expected) || image.height !== Math.ceil(header.height * expected)
  ) {
    throw new DecodeError(
      `Decoded size ${image.width}x${image.height} does not match the header's ${header.width}x${header.height}`,
    );
  }
  return options.orientation === "ignore" ? image : applyOrientation(image, header.orientation);
}

function errorText(err: unknown): string {
  if (err instanceof WebAssembly.RuntimeError) return "decoder failed on corrupt data";
  // libvips messages name its own temporary objects; the first line says what is wrong.
  if (err instanceof Error && /VipsJpeg|jpegload|webpload|VipsForeignLoadWebp/.test(err.message)) {
    return err.message.split("\n")[0].replace(/^(VipsJpeg|VipsForeignLoadWebp\w*): /, "");
  }
  return errorMessage(err);
}
