/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * Worker entry: decodes and preprocesses images off the main thread. A JPEG
 * decode takes 10 to 50 ms of CPU; on the main thread, sixteen of them in a
 * row held /health for 345 ms (measured), so they run here instead.
 *
 *   -> { id, bytes, header, minShortSide }
 *   <- { id, tensor, decodeMs, preprocessMs, width, height } | { id, error, decodeError }
 */
import { DecodeError, decodeImage } from "./decode.ts";
import type { ImageHeader } from "./image_header.ts";
import { preprocessInto, TENSOR_SIZE } from "./preprocess.ts";

export interface PreprocessRequest {
  id: number;
  bytes: ArrayBuffer;
  header: ImageHeader;
  minShortSide: number;
}

export type PreprocessReply =
  | { id: number; tensor: ArrayBuffer; decodeMs: number; preprocessMs: number }
  | { id: number; error: string; decodeError: boolean };

self.onmessage = async (event: MessageEvent<PreprocessRequest>) => {
  const { id, bytes, header, minShortSide } = event.data;
  try {
    const t0 = performance.now();
    const image = await decodeImage(new Uint8Array(bytes), header, { minShortSide });
    const t1 = performance.now();
    const tensor = new Float32Array(TENSOR_SIZE);
    preprocessInto(image, tensor, 0);
    const t2 = performance.now();
    const reply: PreprocessReply = { id, tensor: tensor.buffer, decodeMs: t1 - t0, preprocessMs: t2 - t1 };
    self.postMessage(reply, { transfer: [tensor.buffer] });
  } catch (err) {
    const reply: PreprocessReply = {
      id,
      error: err instanceof Error ? err.message : String(err),
      decodeError: err instanceof DecodeError,
    };
    self.postMessage(reply);
  }
};
