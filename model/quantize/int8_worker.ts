/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * Worker entry for the CPU-heavy int8 steps at startup: calibrating and
 * quantizing (tens of seconds) and the quality gate's two model runs. Off the
 * main thread, so /health keeps answering while they run.
 *
 * Protocol: one request, one reply, then the worker is terminated.
 *   -> { type: "quantize", fp32Path, calibration, method }  <- { type: "quantized", bytes, stats }
 *   -> { type: "measure", fp32Path, int8Path, inputs }       <- { type: "measured", agreement }
 *   any failure                                              <- { type: "failed", message }
 */
import type { CalibrationMethod } from "../artifact/types.ts";
import { measureAgreement } from "./quality_gate.ts";
import { quantizeModel } from "./quantize.ts";
import { errorMessage } from "../../core/errors.ts";

export type Int8Request =
  | { type: "quantize"; fp32Path: string; calibration: ArrayBuffer[]; method: CalibrationMethod }
  | { type: "measure"; fp32Path: string; int8Path: string; inputs: ArrayBuffer[] };

export type Int8Reply =
  | { type: "quantized"; bytes: ArrayBuffer; stats: Awaited<ReturnType<typeof quantizeModel>>["stats"] }
  | { type: "measured"; agreement: Awaited<ReturnType<typeof measureAgreement>> }
  | { type: "failed"; message: string };

self.onmessage = async (event: MessageEvent<Int8Request>) => {
  const msg = event.data;
  try {
    if (msg.type === "quantize") {
      const fp32 = await Deno.readFile(msg.fp32Path);
      const result = await quantizeModel(fp32, msg.calibration.map((b) => new Float32Array(b)), {
        method: msg.method,
      });
      const bytes = result.bytes.slice().buffer;
      self.postMessage({ type: "quantized", bytes, stats: result.stats } satisfies Int8Reply, {
        transfer: [bytes],
      });
    } else {
      const agreement = await measureAgreement(
        msg.fp32Path,
        msg.int8Path,
        msg.inputs.map((b) => new Float32Array(b)),
      );
      self.postMessage({ type: "measured", agreement } satisfies Int8Reply);
    }
  } catch (err) {
    self.postMessage(
      { type: "failed", message: errorMessage(err) } satisfies Int8Reply,
    );
  }
};
