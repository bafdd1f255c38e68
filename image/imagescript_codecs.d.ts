// Types for the two imagescript WASM codec modules we call directly
// (imagescript ships no declarations for them).

export interface JpegFramebuffer {
  width: number;
  height: number;
  /** 0 gray, 1 RGB, 2 CMYK. */
  format: number;
  buffer: Uint8Array;
}

export interface JpegInstance {
  /** `width`/`height` ask the decoder to scale down in the DCT domain towards that size. */
  decode(buffer: Uint8Array, width?: number, height?: number): JpegFramebuffer;
}

export interface PngInstance {
  decode(buffer: Uint8Array): { width: number; height: number; framebuffer: Uint8Array };
}

export interface Codec<T> {
  init(): Promise<T>;
  "new"(): T;
}
