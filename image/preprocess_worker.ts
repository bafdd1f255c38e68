/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * Worker entry: decodes and preprocesses images off the main thread, where a
 * run of large JPEGs would otherwise hold up /health (docs/performance.md).
 * One method over core/worker_rpc.ts: `prepare`, the image's bytes in (moved),
 * its tensor out (moved); a DecodeError crosses with its code.
 */
import type { ImageHeader } from "./image_header.ts";
import { prepareImage, type PrepareOptions } from "./prepare.ts";
import { serveRpc, withTransfer } from "../core/worker_rpc.ts";

export type PreprocessProtocol = {
  prepare: {
    arg: { bytes: ArrayBuffer; header: ImageHeader; options: PrepareOptions };
    result: { tensor: ArrayBuffer; decodeMs: number; preprocessMs: number };
  };
};

serveRpc<PreprocessProtocol>({
  async prepare({ bytes, header, options }) {
    const { tensor, decodeMs, preprocessMs } = await prepareImage(new Uint8Array(bytes), header, options);
    return withTransfer({ tensor: tensor.buffer, decodeMs, preprocessMs }, [tensor.buffer]);
  },
});
