/**
 * Decoded pixels, the shape every stage after decoding shares (orientation,
 * preprocessing, the calibration set). Its own module, beneath decode.ts, so
 * orientation.ts and preprocess.ts need not import the decoders.
 */

/** Interleaved 8-bit pixels: 1 (gray), 3 (RGB) or 4 (RGBA, alpha ignored) channels. */
export interface RawImage {
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  data: Uint8Array;
}
