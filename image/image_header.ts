/**
 * Reads an image's format, dimensions and EXIF orientation from its bytes,
 * without decoding it. The gateway decides what to accept (format by magic
 * bytes, not by the declared content type) and refuses pixel floods before a
 * decoder allocates anything.
 */
import { CodedError } from "../core/errors.ts";
import { type Orientation, readExifOrientation } from "./orientation.ts";

/** Every format the native decoders (libjpeg-turbo, libwebp, imagescript) read; the one list. */
export const IMAGE_FORMATS = ["jpeg", "png", "webp"] as const;

export type ImageFormat = typeof IMAGE_FORMATS[number];

const FORMAT_NAMES: Record<ImageFormat, string> = { jpeg: "JPEG", png: "PNG", webp: "WebP" };

/** "JPEG, PNG or WebP": the accepted formats, as a sentence names them. */
export function formatList(formats: readonly ImageFormat[]): string {
  const names = formats.map((f) => FORMAT_NAMES[f]);
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}

export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
  /** JPEG: progressive (SOF2); PNG: interlaced; WebP: false. */
  progressive: boolean;
  /** JPEG: number of components (1 gray, 3 YCbCr, 4 CMYK/YCCK); PNG: channels after expansion; WebP: 3 or 4 (alpha). */
  components: number;
  /** PNG bit depth; 8 for JPEG and WebP. */
  bitDepth: number;
  /** The EXIF Orientation tag (JPEG APP1, PNG eXIf, WebP EXIF); 1 when there is none. Width and height are as stored. */
  orientation: Orientation;
}

/** Why a byte string is not an acceptable image. */
export class ImageHeaderError extends CodedError {
  constructor(
    message: string,
    /** `unsupported`: not a format the decoder reads (415); `malformed`: claims one but is broken (422). */
    readonly kind: "unsupported" | "malformed",
    /** What the magic bytes say it is, when recognised. */
    readonly detected?: string,
  ) {
    super(kind === "unsupported" ? "image_unsupported" : "image_malformed", message);
  }
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Other formats we recognise only to name them in the 415 answer. */
function detectOther(b: Uint8Array): string | undefined {
  const ascii = (start: number, end: number) => String.fromCharCode(...b.subarray(start, end));
  if (b.length >= 6 && (ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a")) return "gif";
  if (b.length >= 2 && ascii(0, 2) === "BM") return "bmp";
  if (b.length >= 4 && (ascii(0, 4) === "II*\0" || ascii(0, 4) === "MM\0*")) return "tiff";
  if (b.length >= 12 && ascii(4, 8) === "ftyp") return "heif/avif";
  if (b.length >= 4 && ascii(0, 4) === "%PDF") return "pdf";
  return undefined;
}

function isPng(b: Uint8Array): boolean {
  return b.length >= 8 && PNG_SIGNATURE.every((v, i) => b[i] === v);
}

function isJpeg(b: Uint8Array): boolean {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

function isWebp(b: Uint8Array): boolean {
  return b.length >= 12 && String.fromCharCode(...b.subarray(0, 4)) === "RIFF" &&
    String.fromCharCode(...b.subarray(8, 12)) === "WEBP";
}

const EXIF_PREFIX = [0x45, 0x78, 0x69, 0x66, 0, 0]; // "Exif\0\0"

/** TIFF data, with the "Exif\0\0" prefix JPEG requires (and some WebP writers add) removed. */
function orientationOf(data: Uint8Array): Orientation {
  const prefixed = data.length >= 6 && EXIF_PREFIX.every((v, i) => data[i] === v);
  return readExifOrientation(prefixed ? data.subarray(6) : data);
}

const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 3, 4: 2, 6: 4 };

function readPng(b: Uint8Array): ImageHeader {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 33 || String.fromCharCode(...b.subarray(12, 16)) !== "IHDR") {
    throw new ImageHeaderError("PNG file has no IHDR chunk", "malformed", "png");
  }
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  const bitDepth = b[24];
  const colorType = b[25];
  const channels = PNG_CHANNELS[colorType];
  if (width === 0 || height === 0 || channels === undefined || ![1, 2, 4, 8, 16].includes(bitDepth)) {
    throw new ImageHeaderError("PNG header is invalid", "malformed", "png");
  }
  return {
    format: "png",
    width,
    height,
    progressive: b[28] === 1,
    components: channels,
    bitDepth,
    orientation: pngOrientation(b, view),
  };
}

/** The eXIf chunk's orientation. Chunks are skipped by their length, so this touches no pixel data. */
function pngOrientation(b: Uint8Array, view: DataView): Orientation {
  for (let i = 8; i + 8 <= b.length;) {
    const length = view.getUint32(i);
    const type = String.fromCharCode(...b.subarray(i + 4, i + 8));
    if (type === "IEND" || i + 12 + length > b.length) break;
    if (type === "eXIf") return orientationOf(b.subarray(i + 8, i + 8 + length));
    i += 12 + length;
  }
  return 1;
}

function readJpeg(b: Uint8Array): ImageHeader {
  let orientation: Orientation = 1;
  let sawExif = false;
  let i = 2;
  while (i < b.length) {
    if (b[i] !== 0xff) throw new ImageHeaderError("JPEG marker expected", "malformed", "jpeg");
    // Markers may be padded with any number of 0xFF fill bytes.
    while (i < b.length && b[i] === 0xff) i++;
    if (i >= b.length) break;
    const marker = b[i++];
    // Standalone markers carry no length.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue;
    if (marker === 0xd9 || marker === 0xda) break; // EOI or start of scan before any frame header
    if (i + 2 > b.length) break;
    const length = (b[i] << 8) | b[i + 1];
    if (length < 2) throw new ImageHeaderError("JPEG segment length is invalid", "malformed", "jpeg");
    if (marker === 0xe1 && !sawExif && i + length <= b.length) {
      const payload = b.subarray(i + 2, i + length);
      if (payload.length >= 6 && EXIF_PREFIX.every((v, k) => payload[k] === v)) {
        // Only the first Exif segment counts, as in libexif and PIL; later APP1s are XMP or junk.
        sawExif = true;
        orientation = orientationOf(payload);
      }
    }
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) {
      if (i + 8 > b.length) break;
      const height = (b[i + 3] << 8) | b[i + 4];
      const width = (b[i + 5] << 8) | b[i + 6];
      const components = b[i + 7];
      if (width === 0 || height === 0) {
        // Height 0 means "defined by a later DNL marker": legal but a decoder-bomb vector we refuse.
        throw new ImageHeaderError("JPEG frame header has a zero dimension", "malformed", "jpeg");
      }
      return {
        format: "jpeg",
        width,
        height,
        progressive: marker === 0xc2 || marker === 0xc6 || marker === 0xca || marker === 0xce,
        components,
        bitDepth: b[i + 2],
        orientation,
      };
    }
    i += length;
  }
  throw new ImageHeaderError("JPEG file has no frame header", "malformed", "jpeg");
}

const VP8X_ALPHA = 0x10;

function readWebp(b: Uint8Array): ImageHeader {
  const malformed = (what: string) => new ImageHeaderError(`WebP ${what}`, "malformed", "webp");
  if (b.length < 30) throw malformed("file is too short for its header");
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const chunk = String.fromCharCode(...b.subarray(12, 16));
  let width: number, height: number, components: number;
  if (chunk === "VP8 ") {
    // Lossy: a key frame's tag, the start code 9d 01 2a, then 14-bit dimensions (the top 2 bits are a scale hint).
    if ((b[20] & 1) !== 0 || b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a) {
      throw malformed("VP8 frame header is invalid");
    }
    width = view.getUint16(26, true) & 0x3fff;
    height = view.getUint16(28, true) & 0x3fff;
    components = 3;
  } else if (chunk === "VP8L") {
    // Lossless: signature 0x2f, then width-1 and height-1 in 14 bits each, the alpha hint, a 3-bit version.
    const bits = view.getUint32(21, true);
    if (b[20] !== 0x2f || bits >>> 29 !== 0) throw malformed("VP8L header is invalid");
    width = (bits & 0x3fff) + 1;
    height = ((bits >>> 14) & 0x3fff) + 1;
    components = (bits >>> 28) & 1 ? 4 : 3;
  } else if (chunk === "VP8X") {
    // Extended: flags, then the canvas's width-1 and height-1 in 24 bits each (what every frame is drawn on).
    width = (b[24] | (b[25] << 8) | (b[26] << 16)) + 1;
    height = (b[27] | (b[28] << 8) | (b[29] << 16)) + 1;
    components = b[20] & VP8X_ALPHA ? 4 : 3;
  } else {
    throw malformed(`file starts with an unknown chunk "${chunk}"`);
  }
  if (width === 0 || height === 0) throw malformed("header has a zero dimension");
  return {
    format: "webp",
    width,
    height,
    progressive: false,
    components,
    bitDepth: 8,
    orientation: chunk === "VP8X" ? webpOrientation(b, view) : 1,
  };
}

/** The EXIF chunk's orientation (only extended files have one; it usually follows the image data). */
function webpOrientation(b: Uint8Array, view: DataView): Orientation {
  for (let i = 12; i + 8 <= b.length;) {
    const size = view.getUint32(i + 4, true);
    if (i + 8 + size > b.length) break;
    if (String.fromCharCode(...b.subarray(i, i + 4)) === "EXIF") {
      return orientationOf(b.subarray(i + 8, i + 8 + size));
    }
    i += 8 + size + (size & 1); // chunks are padded to an even length
  }
  return 1;
}

export interface ReadHeaderOptions {
  /** The formats the decoder in use reads (default: {@link IMAGE_FORMATS}); others are `unsupported`. */
  formats?: readonly ImageFormat[];
}

/**
 * Reads format, dimensions and orientation; throws {@link ImageHeaderError}
 * for anything that is not a readable image of an accepted format.
 */
export function readImageHeader(bytes: Uint8Array, options: ReadHeaderOptions = {}): ImageHeader {
  const formats = options.formats ?? IMAGE_FORMATS;
  const format: ImageFormat | undefined = isJpeg(bytes)
    ? "jpeg"
    : isPng(bytes)
    ? "png"
    : isWebp(bytes)
    ? "webp"
    : undefined;
  const accepted = formatList(formats);
  if (format === undefined) {
    const other = detectOther(bytes);
    throw new ImageHeaderError(
      other
        ? `Image format ${other} is not supported; send ${accepted}`
        : `Body is not an image in a supported format; send ${accepted}`,
      "unsupported",
      other,
    );
  }
  if (!formats.includes(format)) {
    throw new ImageHeaderError(
      `Image format ${format} is not supported by this server's decoder; send ${accepted}`,
      "unsupported",
      format,
    );
  }
  return format === "jpeg" ? readJpeg(bytes) : format === "png" ? readPng(bytes) : readWebp(bytes);
}
