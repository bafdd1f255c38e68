/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * Worker entry: decodes and preprocesses images off the main thread, where a
 * run of large JPEGs would otherwise hold up /health (docs/performance.md).
 *
 *   -> { id, bytes, header, options }
 *   <- { id, tensor, decodeMs, preprocessMs } | { id, error, decodeError }
 */
import { DecodeError } from "./decode.ts";
import type { ImageHeader } from "./image_header.ts";
import { prepareImage, type PrepareOptions } from "./prepare.ts";
import { errorMessage } from "../core/errors.ts";

export interface PreprocessRequest {
  id: number;
  bytes: ArrayBuffer;
  header: ImageHeader;
  options: PrepareOptions;
}

export type PreprocessReply =
  | { id: number; tensor: ArrayBuffer; decodeMs: number; preprocessMs: number }
  | { id: number; error: string; decodeError: boolean };

self.onmessage = async (event: MessageEvent<PreprocessRequest>) => {
  const { id, bytes, header, options } = event.data;
  try {
    const { tensor, decodeMs, preprocessMs } = await prepareImage(new Uint8Array(bytes), header, options);
    const reply: PreprocessReply = { id, tensor: tensor.buffer, decodeMs, preprocessMs };
    self.postMessage(reply, { transfer: [tensor.buffer] });
  } catch (err) {
    const reply: PreprocessReply = {
      id,
      error: errorMessage(err),
      decodeError: err instanceof DecodeError,
    };
    self.postMessage(reply);
  }
};
