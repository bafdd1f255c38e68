/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * Worker entry for the CPU-heavy int8 steps at startup: calibrating and
 * quantizing (tens of seconds) and the quality gate's two model runs. Off the
 * main thread, so /health keeps answering while they run.
 *
 * One call per Worker (core/worker_rpc.ts), then it is terminated: `quantize`
 * (fp32 path and calibration tensors in, int8 bytes out, moved) or `measure`.
 */
import type { CalibrationMethod } from "../artifact/types.ts";
import { measureAgreement } from "./quality_gate.ts";
import { quantizeModel } from "./quantize.ts";
import { serveRpc, withTransfer } from "../../core/worker_rpc.ts";

export type Int8Protocol = {
  quantize: {
    arg: { fp32Path: string; calibration: ArrayBuffer[]; method: CalibrationMethod };
    result: { bytes: ArrayBuffer; stats: Awaited<ReturnType<typeof quantizeModel>>["stats"] };
  };
  measure: {
    arg: { fp32Path: string; int8Path: string; inputs: ArrayBuffer[] };
    result: Awaited<ReturnType<typeof measureAgreement>>;
  };
};

serveRpc<Int8Protocol>({
  async quantize({ fp32Path, calibration, method }) {
    const fp32 = await Deno.readFile(fp32Path);
    const result = await quantizeModel(fp32, calibration.map((b) => new Float32Array(b)), { method });
    const bytes = result.bytes.slice().buffer;
    return withTransfer({ bytes, stats: result.stats }, [bytes]);
  },
  measure: ({ fp32Path, int8Path, inputs }) =>
    measureAgreement(fp32Path, int8Path, inputs.map((b) => new Float32Array(b))),
});
