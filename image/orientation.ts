/**
 * EXIF orientation: phones store most photos sideways with an `Orientation`
 * tag, and browsers show them upright. Reading the tag is part of the header
 * pass; applying it is a pure function on decoded pixels, so every decoder
 * (libjpeg-turbo, libwebp, imagescript) gives the same upright image.
 */
import type { RawImage } from "./raw_image.ts";

/**
 * The EXIF Orientation values (TIFF tag 0x0112): 1 upright, 2 mirrored, 3
 * upside down, 4 mirrored upside down, 5 transposed, 6 stored rotated 90°
 * counter-clockwise (shown rotated 90° clockwise), 7 transverse, 8 stored
 * rotated 90° clockwise.
 */
export type Orientation = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8;

/** Whether decoded images are turned upright (`apply`) or kept as stored, as torchvision does (`ignore`). */
export type OrientationMode = "apply" | "ignore";

const ORIENTATION_TAG = 0x0112;
/** Output pixels per tile side when turning an image (see applyOrientation). */
const TILE = 32;

/**
 * The Orientation tag of a TIFF structure (the body of a JPEG APP1 `Exif`
 * segment, a PNG `eXIf` chunk or a WebP `EXIF` chunk). 1 when the tag is
 * absent, out of range or the structure is broken: a bad tag never refuses a
 * photo that decodes.
 */
export function readExifOrientation(tiff: Uint8Array): Orientation {
  if (tiff.length < 8) return 1;
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const little = tiff[0] === 0x49 && tiff[1] === 0x49;
  if (!little && !(tiff[0] === 0x4d && tiff[1] === 0x4d)) return 1;
  if (view.getUint16(2, little) !== 42) return 1;
  const ifd = view.getUint32(4, little);
  if (ifd + 2 > tiff.length) return 1;
  const count = view.getUint16(ifd, little);
  for (let n = 0; n < count; n++) {
    const entry = ifd + 2 + n * 12;
    if (entry + 12 > tiff.length) return 1;
    if (view.getUint16(entry, little) !== ORIENTATION_TAG) continue;
    // The spec says SHORT; some writers use LONG. Either way the value sits in the entry itself.
    const type = view.getUint16(entry + 2, little);
    const value = type === 3
      ? view.getUint16(entry + 8, little)
      : type === 4
      ? view.getUint32(entry + 8, little)
      : 0;
    return value >= 1 && value <= 8 ? value as Orientation : 1;
  }
  return 1;
}

/** Whether the orientation swaps width and height (the four that turn by 90°). */
export function swapsAxes(orientation: Orientation): boolean {
  return orientation >= 5;
}

/**
 * The upright image: `image` turned and/or mirrored as its tag says (what
 * PIL's ImageOps.exif_transpose and browsers do). Orientation 1 returns
 * `image` itself; every other value returns a new buffer.
 */
export function applyOrientation(image: RawImage, orientation: Orientation): RawImage {
  if (orientation === 1) return image;
  const { width: w, height: h, channels: c, data } = image;
  const row = w * c;
  // Source offset of output pixel (x, y) is origin + x * stepX + y * stepY.
  const [origin, stepX, stepY] = {
    2: [(w - 1) * c, -c, row],
    3: [(h - 1) * row + (w - 1) * c, -c, -row],
    4: [(h - 1) * row, c, -row],
    5: [0, row, c],
    6: [(h - 1) * row, -row, c],
    7: [(h - 1) * row + (w - 1) * c, -row, -c],
    8: [(w - 1) * c, row, -c],
  }[orientation];
  const [ow, oh] = swapsAxes(orientation) ? [h, w] : [w, h];
  const out = new Uint8Array(ow * oh * c);
  // A turn by 90° reads a source column for each output row; walking whole columns touches a new cache
  // line for every pixel, so those go in square tiles whose columns stay within a few cached source rows
  // (docs/performance.md). Flips read rows and go a whole row at a time.
  const tile = swapsAxes(orientation) ? TILE : Math.max(ow, oh);
  for (let ty = 0; ty < oh; ty += tile) {
    const yEnd = Math.min(ty + tile, oh);
    for (let tx = 0; tx < ow; tx += tile) {
      const n = Math.min(tile, ow - tx);
      for (let y = ty; y < yEnd; y++) {
        let s = origin + y * stepY + tx * stepX;
        let o = (y * ow + tx) * c;
        if (c === 3) {
          for (let x = 0; x < n; x++, s += stepX, o += 3) {
            out[o] = data[s];
            out[o + 1] = data[s + 1];
            out[o + 2] = data[s + 2];
          }
        } else if (c === 1) {
          for (let x = 0; x < n; x++, s += stepX) out[o++] = data[s];
        } else {
          for (let x = 0; x < n; x++, s += stepX, o += 4) {
            out[o] = data[s];
            out[o + 1] = data[s + 1];
            out[o + 2] = data[s + 2];
            out[o + 3] = data[s + 3];
          }
        }
      }
    }
  }
  return { width: ow, height: oh, channels: c, data: out };
}
