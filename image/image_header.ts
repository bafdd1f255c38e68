/**
 * Reads an image's format and dimensions from its first bytes, without
 * decoding it. The gateway decides what to accept (format by magic bytes, not
 * by the declared content type) and refuses pixel floods before a decoder
 * allocates anything.
 */

export type ImageFormat = "jpeg" | "png";

export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
  /** JPEG: progressive (SOF2); PNG: interlaced. */
  progressive: boolean;
  /** JPEG: number of components (1 gray, 3 YCbCr, 4 CMYK/YCCK); PNG: channels after expansion. */
  components: number;
  /** PNG bit depth; 8 for JPEG. */
  bitDepth: number;
}

/** Why a byte string is not an acceptable image. */
export class ImageHeaderError extends Error {
  constructor(
    message: string,
    /** `unsupported`: recognised but not JPEG/PNG (415); `malformed`: claims JPEG/PNG but is broken (422). */
    readonly kind: "unsupported" | "malformed",
    /** What the magic bytes say it is, when recognised. */
    readonly detected?: string,
  ) {
    super(message);
    this.name = "ImageHeaderError";
  }
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Other formats we recognise only to name them in the 415 answer. */
function detectOther(b: Uint8Array): string | undefined {
  const ascii = (start: number, end: number) => String.fromCharCode(...b.subarray(start, end));
  if (b.length >= 6 && (ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a")) return "gif";
  if (b.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "webp";
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
  return { format: "png", width, height, progressive: b[28] === 1, components: channels, bitDepth };
}

function readJpeg(b: Uint8Array): ImageHeader {
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
      };
    }
    i += length;
  }
  throw new ImageHeaderError("JPEG file has no frame header", "malformed", "jpeg");
}

/** Reads format and dimensions; throws {@link ImageHeaderError} for anything that is not a readable JPEG or PNG. */
export function readImageHeader(bytes: Uint8Array): ImageHeader {
  if (isPng(bytes)) return readPng(bytes);
  if (isJpeg(bytes)) return readJpeg(bytes);
  const other = detectOther(bytes);
  throw new ImageHeaderError(
    other ? `Image format ${other} is not supported; send JPEG or PNG` : "Body is not a JPEG or PNG image",
    "unsupported",
    other,
  );
}
