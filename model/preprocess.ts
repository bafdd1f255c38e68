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
import type { RawImage } from "./decode.ts";

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

/** Per-output-pixel filter windows of one axis, as PIL's precompute_coeffs builds them. */
interface Coefficients {
  /** First source index of each output pixel's window. */
  start: Int32Array;
  /** Window length of each output pixel. */
  length: Int32Array;
  /** Weights, `stride` per output pixel. */
  weights: Float64Array;
  stride: number;
}

function coefficients(inSize: number, outSize: number, first: number, count: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle filter's support is 1
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(count);
  const length = new Int32Array(count);
  const weights = new Float64Array(count * stride);
  for (let i = 0; i < count; i++) {
    const center = (first + i + 0.5) * scale;
    const min = Math.max(Math.trunc(center - support + 0.5), 0);
    const max = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    for (let x = min; x < max; x++) {
      const w = Math.max(0, 1 - Math.abs((x - center + 0.5) / filterScale));
      weights[i * stride + x - min] = w;
      total += w;
    }
    if (total > 0) { for (let x = 0; x < max - min; x++) weights[i * stride + x] /= total; }
    start[i] = min;
    length[i] = max - min;
  }
  return { start, length, weights, stride };
}

function clamp8(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
}

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
      const s = cx.start[x];
      const n = cx.length[x];
      const wBase = x * cx.stride;
      if (planes === 1) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += data[srcRow + s + k] * cx.weights[wBase + k];
        mid[dstRow + x] = clamp8(acc);
      } else {
        let a0 = 0, a1 = 0, a2 = 0;
        let p = srcRow + s * channels;
        for (let k = 0; k < n; k++, p += channels) {
          const w = cx.weights[wBase + k];
          a0 += data[p] * w;
          a1 += data[p + 1] * w;
          a2 += data[p + 2] * w;
        }
        const d = dstRow + x * 3;
        mid[d] = clamp8(a0);
        mid[d + 1] = clamp8(a1);
        mid[d + 2] = clamp8(a2);
      }
    }
  }

  // Vertical pass, then ToTensor (/255) and Normalize, written as CHW.
  const plane = CROP_SIZE * CROP_SIZE;
  const scale = IMAGENET_STD.map((s) => 1 / (255 * s));
  const bias = IMAGENET_MEAN.map((m, c) => m / IMAGENET_STD[c]);
  for (let y = 0; y < CROP_SIZE; y++) {
    const s = cy.start[y] - rowFirst;
    const n = cy.length[y];
    const wBase = y * cy.stride;
    for (let x = 0; x < CROP_SIZE; x++) {
      const o = offset + y * CROP_SIZE + x;
      if (planes === 1) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += mid[(s + k) * CROP_SIZE + x] * cy.weights[wBase + k];
        const v = clamp8(acc);
        out[o] = v * scale[0] - bias[0];
        out[o + plane] = v * scale[1] - bias[1];
        out[o + 2 * plane] = v * scale[2] - bias[2];
      } else {
        let a0 = 0, a1 = 0, a2 = 0;
        for (let k = 0; k < n; k++) {
          const w = cy.weights[wBase + k];
          const p = ((s + k) * CROP_SIZE + x) * 3;
          a0 += mid[p] * w;
          a1 += mid[p + 1] * w;
          a2 += mid[p + 2] * w;
        }
        out[o] = clamp8(a0) * scale[0] - bias[0];
        out[o + plane] = clamp8(a1) * scale[1] - bias[1];
        out[o + 2 * plane] = clamp8(a2) * scale[2] - bias[2];
      }
    }
  }
}

/** Convenience: a new tensor for one image. */
export function preprocess(image: RawImage): Float32Array {
  const out = new Float32Array(TENSOR_SIZE);
  preprocessInto(image, out, 0);
  return out;
}
