/** Liveness, readiness and service metadata. */
import type { Context } from "@hono/hono";
import { type Config, publicConfig } from "../config.ts";
import type { QuantizationReport } from "../model/precision.ts";
import type { ModelState } from "../model/state.ts";
import { SYNTHETIC_WARNING } from "./predict.ts";
import type { AppEnv } from "./types.ts";

export interface BuildInfo {
  service: string;
  version: string;
  deno: string;
  v8: string;
  typescript: string;
}

export function buildInfo(version: string): BuildInfo {
  return {
    service: "inference-gateway",
    version,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
  };
}

/** Liveness: the process answers. Deliberately does no work. */
export function healthHandler(c: Context<AppEnv>): Response {
  return c.json({ status: "ok" });
}

/** Readiness: 200 only when the model is loaded, warm and not draining. */
export function readyHandler(state: ModelState) {
  return function ready(c: Context<AppEnv>): Response {
    if (state.status === "ready") return c.json({ status: "ready" });
    return c.json(
      { status: state.status, ...(state.error ? { error: state.error } : {}) },
      503,
      { "retry-after": "5" },
    );
  };
}

/** The int8 step as /info shows it: snake_case, like the rest of the document. */
function quantizationView(q: QuantizationReport): Record<string, unknown> {
  return {
    origin: q.origin,
    accepted: q.accepted,
    ...(q.reason ? { reason: q.reason } : {}),
    ...(q.method ? { method: q.method } : {}),
    calibration_dir: q.calibrationDir,
    ...(q.calibrationImages !== undefined ? { calibration_images: q.calibrationImages } : {}),
    ...(q.heldOutImages !== undefined ? { held_out_images: q.heldOutImages } : {}),
    ...(q.top1Agreement !== undefined ? { top1_agreement: q.top1Agreement } : {}),
    ...(q.meanAbsTop1ConfidenceDelta !== undefined
      ? { mean_abs_top1_confidence_delta: q.meanAbsTop1ConfidenceDelta }
      : {}),
    min_agreement: q.minAgreement,
    int8_path: q.int8Path,
    int8_sha256: q.int8Sha256,
    ...(q.note ? { note: q.note } : {}),
  };
}

export function infoHandler(config: Config, state: ModelState, build: BuildInfo) {
  return function info(c: Context<AppEnv>): Response {
    const m = state.classifier?.info;
    return c.json({
      ...build,
      status: state.status,
      model: m
        ? {
          name: m.name,
          version: m.version,
          weights: m.weights,
          ...(m.weights === "synthetic" ? { warning: SYNTHETIC_WARNING } : {}),
          precision: m.precision,
          ...(m.quantization ? { quantization: quantizationView(m.quantization) } : {}),
          sha256: m.sha256,
          source: m.source,
          path: m.path,
          input: { name: m.inputName, shape: m.inputShape },
          output: {
            name: m.outputName,
            shape: m.outputShape,
            softmax_applied_by: m.outputsProbabilities ? "model" : "gateway",
          },
          classes: m.classes,
          runtime: m.runtime,
          runtime_version: m.runtimeVersion,
          intra_op_threads: m.intraOpThreads,
          load_seconds: state.loadSeconds,
          warmup_ms: state.warmupMs,
        }
        : null,
      ...(state.error ? { error: state.error } : {}),
      config: publicConfig(config),
    });
  };
}
