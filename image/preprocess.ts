/**
 * torchvision's ImageNet transform, reproduced on raw pixels:
 * Resize(256, bilinear, antialias) -> CenterCrop(224) -> ToTensor -> Normalize.
 *
 * The resize is PIL's: a separable triangle filter whose support widens with
 * the downscale factor (so shrinking averages every source pixel instead of
 * sampling a few, which aliases), horizontal pass first, both passes rounded
 * to 8 bits as PIL does for 8-bit images. Only the pixels inside the centre
 * crop are ever computed.
 */
import type { RawImage } from "./raw_image.ts";

export const RESIZE_SHORT_SIDE = 256;
export const CROP_SIZE = 224;
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;
/** Floats in one preprocessed image (CHW, 3x224x224). */
export const TENSOR_SIZE = 3 * CROP_SIZE * CROP_SIZE;

/** Python's round(): half to even, which torchvision's CenterCrop uses for the offsets. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Output size of torchvision's Resize(int): shorter side to `size`, the other truncated. */
export function resizedSize(width: number, height: number, size = RESIZE_SHORT_SIDE): [number, number] {
  if (width <= height) return [size, Math.trunc((size * height) / width)];
  return [Math.trunc((size * width) / height), size];
}

/**
 * Fixed-point precision of the filter weights: PIL's for 8-bit images
 * (32 - 8 bits of pixel - 2 bits of headroom). Integer weights make the
 * arithmetic exactly PIL's, rounding included, and faster than floats.
 */
const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);

/** Per-output-pixel filter windows of one axis, as PIL's precompute_coeffs builds them. */
interface Coefficients {
  /** First source index of each output pixel's window. */
  start: Int32Array;
  /** Window length of each output pixel. */
  length: Int32Array;
  /** Fixed-point weights (PRECISION_BITS), `stride` per output pixel. */
  weights: Int32Array;
  stride: number;
}

function coefficients(inSize: number, outSize: number, first: number, count: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle filter's support is 1
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(count);
  const length = new Int32Array(count);
  const weights = new Int32Array(count * stride);
  const w = new Float64Array(stride);
  for (let i = 0; i < count; i++) {
    const center = (first + i + 0.5) * scale;
    const min = Math.max(Math.trunc(center - support + 0.5), 0);
    const max = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    for (let x = min; x < max; x++) {
      const v = Math.max(0, 1 - Math.abs((x - center + 0.5) / filterScale));
      w[x - min] = v;
      total += v;
    }
    for (let x = 0; x < max - min; x++) {
      // PIL's normalize_coeffs_8bpc: round half away from zero (weights here are never negative).
      weights[i * stride + x] = Math.trunc(0.5 + (total > 0 ? w[x] / total : 0) * (1 << PRECISION_BITS));
    }
    start[i] = min;
    length[i] = max - min;
  }
  return { start, length, weights, stride };
}

/** ToTensor (/255) then Normalize, per channel, for each 8-bit value: 3 x 256 floats. */
const NORMALIZED = (() => {
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    for (let v = 0; v < 256; v++) table[c * 256 + v] = (v / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
  }
  return table;
})();

/**
 * Writes the normalized 3x224x224 tensor of `image` into `out` at `offset`
 * (so a batch buffer can be filled in place). Pure: reads only its arguments.
 */
export function preprocessInto(image: RawImage, out: Float32Array, offset = 0): void {
  const { width, height, channels, data } = image;
  if (out.length - offset < TENSOR_SIZE) throw new RangeError("Output buffer is too small for one image");
  const [rw, rh] = resizedSize(width, height);
  const left = roundHalfEven((rw - CROP_SIZE) / 2);
  const top = roundHalfEven((rh - CROP_SIZE) / 2);
  const cx = coefficients(width, rw, left, CROP_SIZE);
  const cy = coefficients(height, rh, top, CROP_SIZE);
  const xw = cx.weights;
  const yw = cy.weights;

  // Source rows the vertical pass will read.
  const rowFirst = cy.start[0];
  const rowLast = cy.start[CROP_SIZE - 1] + cy.length[CROP_SIZE - 1];
  const rows = rowLast - rowFirst;
  // Gray stays one channel through the horizontal pass: a third of the work.
  const planes = channels === 1 ? 1 : 3;

  // Horizontal pass: rows x 224 x planes, rounded to 8 bits like PIL's intermediate image.
  const mid = new Uint8Array(rows * CROP_SIZE * planes);
  for (let r = 0; r < rows; r++) {
    const srcRow = (rowFirst + r) * width * channels;
    const dstRow = r * CROP_SIZE * planes;
    for (let x = 0; x < CROP_SIZE; x++) {
      const n = cx.length[x];
      const wBase = x * cx.stride;
      if (planes === 1) {
        let acc = HALF;
        const p = srcRow + cx.start[x];
        for (let k = 0; k < n; k++) acc += data[p + k] * xw[wBase + k];
        const v = acc >> PRECISION_BITS;
        mid[dstRow + x] = v < 0 ? 0 : v > 255 ? 255 : v;
      } else {
        let a0 = HALF, a1 = HALF, a2 = HALF;
        let p = srcRow + cx.start[x] * channels;
        for (let k = 0; k < n; k++, p += channels) {
          const w = xw[wBase + k];
          a0 += data[p] * w;
          a1 += data[p + 1] * w;
          a2 += data[p + 2] * w;
        }
        const d = dstRow + x * 3;
        const v0 = a0 >> PRECISION_BITS, v1 = a1 >> PRECISION_BITS, v2 = a2 >> PRECISION_BITS;
        mid[d] = v0 < 0 ? 0 : v0 > 255 ? 255 : v0;
        mid[d + 1] = v1 < 0 ? 0 : v1 > 255 ? 255 : v1;
        mid[d + 2] = v2 < 0 ? 0 : v2 > 255 ? 255 : v2;
      }
    }
  }

  // Vertical pass, then ToTensor and Normalize through the lookup table, written as CHW.
  const plane = CROP_SIZE * CROP_SIZE;
  const rowStride = CROP_SIZE * planes;
  for (let y = 0; y < CROP_SIZE; y++) {
    const s = cy.start[y] - rowFirst;
    const n = cy.length[y];
    const wBase = y * cy.stride;
    const o0 = offset + y * CROP_SIZE;
    for (let x = 0; x < CROP_SIZE; x++) {
      const o = o0 + x;
      if (planes === 1) {
        let acc = HALF;
        let p = s * rowStride + x;
        for (let k = 0; k < n; k++, p += rowStride) acc += mid[p] * yw[wBase + k];
        let v = acc >> PRECISION_BITS;
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        out[o] = NORMALIZED[v];
        out[o + plane] = NORMALIZED[256 + v];
        out[o + 2 * plane] = NORMALIZED[512 + v];
      } else {
        let a0 = HALF, a1 = HALF, a2 = HALF;
        let p = s * rowStride + x * 3;
        for (let k = 0; k < n; k++, p += rowStride) {
          const w = yw[wBase + k];
          a0 += mid[p] * w;
          a1 += mid[p + 1] * w;
          a2 += mid[p + 2] * w;
        }
        const v0 = a0 >> PRECISION_BITS, v1 = a1 >> PRECISION_BITS, v2 = a2 >> PRECISION_BITS;
        out[o] = NORMALIZED[v0 < 0 ? 0 : v0 > 255 ? 255 : v0];
        out[o + plane] = NORMALIZED[256 + (v1 < 0 ? 0 : v1 > 255 ? 255 : v1)];
        out[o + 2 * plane] = NORMALIZED[512 + (v2 < 0 ? 0 : v2 > 255 ? 255 : v2)];
      }
    }
  }
}

/** Convenience: a new tensor for one image. */
export function preprocess(image: RawImage): Float32Array<ArrayBuffer> {
  const out = new Float32Array(TENSOR_SIZE);
  preprocessInto(image, out, 0);
  return out;
}
