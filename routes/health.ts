/** Liveness, readiness, service metadata and metrics. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { type Config, publicConfig } from "../config.ts";
import type { QuantizationReport } from "../model/artifact/types.ts";
import { SYNTHETIC_WEIGHTS_WARNING } from "../model/artifact/types.ts";
import type { ModelState } from "../model/runtime/state.ts";
import type { Repository } from "../model/repository/repository.ts";
import { type Metrics, renderMetrics } from "../observability/metrics.ts";
import { NOT_READY_RETRY_AFTER } from "./problem.ts";
import { healthResponse, infoResponse, readyResponse } from "./schemas.ts";
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

const tags = ["Operations"];

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
    ...(q.heldOutPhotos !== undefined ? { held_out_photos: q.heldOutPhotos } : {}),
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

const healthRoute = createRoute({
  method: "get",
  path: "/health",
  operationId: "health",
  tags,
  summary: "Liveness: the process answers",
  responses: {
    200: {
      description: "The process answers",
      content: { "application/json": { schema: healthResponse, example: { status: "ok" } } },
    },
  },
});

const readyRoute = createRoute({
  method: "get",
  path: "/ready",
  operationId: "ready",
  tags,
  summary: "Readiness: model loaded and warm, not draining",
  responses: {
    200: {
      description: "Ready",
      content: { "application/json": { schema: readyResponse, example: { status: "ready" } } },
    },
    503: {
      description: "Loading, failed or draining (Retry-After)",
      headers: {
        "Retry-After": { schema: { type: "integer" }, description: "Seconds to wait before retrying" },
      },
      content: { "application/json": { schema: readyResponse, example: { status: "loading" } } },
    },
  },
});

const infoRoute = createRoute({
  method: "get",
  path: "/info",
  operationId: "info",
  tags,
  summary: "Service and model metadata, runtime versions, effective configuration (secrets redacted)",
  responses: {
    200: { description: "Metadata", content: { "application/json": { schema: infoResponse } } },
  },
});

const metricsRoute = createRoute({
  method: "get",
  path: "/metrics",
  operationId: "metrics",
  tags,
  summary: "Prometheus metrics; OpenMetrics with trace exemplars when the Accept header asks for it",
  responses: {
    200: {
      description: "Metrics",
      content: {
        "text/plain; version=0.0.4": { schema: z.string() },
        "application/openmetrics-text; version=1.0.0": { schema: z.string() },
      },
    },
  },
});

export interface OperationsDeps {
  config: Config;
  state: ModelState;
  metrics: Metrics;
  build: BuildInfo;
  /** The models served; without it, only `state`'s. */
  repository?: Repository;
}

export function registerOperations(
  app: OpenAPIHono<AppEnv>,
  { config, state, metrics, build, repository }: OperationsDeps,
): void {
  // Liveness deliberately does no work.
  app.openapi(healthRoute, (c) => c.json({ status: "ok" as const }, 200));

  app.openapi(readyRoute, (c) => {
    // A repository is ready when every model that should serve has a version ready (none, in explicit
    // mode before any load); draining wins.
    if (repository?.root && state.status !== "draining") {
      const models = repository.notReady();
      if (models.length === 0) return c.json({ status: "ready" as const }, 200);
      const status = models.some((m) => m.reason !== "loading") ? "failed" as const : "loading" as const;
      return c.json({ status, models }, 503, { "retry-after": NOT_READY_RETRY_AFTER });
    }
    if (state.status === "ready") return c.json({ status: state.status }, 200);
    return c.json(
      { status: state.status, ...(state.error ? { error: state.error } : {}) },
      503,
      { "retry-after": NOT_READY_RETRY_AFTER },
    );
  });

  app.openapi(infoRoute, (c) => {
    const m = state.classifier?.info;
    return c.json({
      ...build,
      status: state.status,
      model: m
        ? {
          name: m.name,
          version: m.version,
          weights: m.weights,
          ...(m.weights === "synthetic" ? { warning: SYNTHETIC_WEIGHTS_WARNING } : {}),
          precision: m.precision,
          ...(m.quantization ? { quantization: quantizationView(m.quantization) } : {}),
          sha256: m.sha256,
          source: m.source,
          path: m.path,
          input: { name: m.inputName, shape: [...m.inputShape] },
          output: {
            name: m.outputName,
            shape: [...m.outputShape],
            softmax_applied_by: m.outputsProbabilities ? "model" as const : "gateway" as const,
          },
          classes: m.classes,
          runtime: m.runtime,
          runtime_version: m.runtimeVersion,
          intra_op_threads: m.intraOpThreads,
          load_seconds: state.loadSeconds,
          warmup_ms: state.warmupMs,
        }
        : null,
      trace_ui_url: config.TRACE_UI_URL ?? null,
      ...(state.error ? { error: state.error } : {}),
      ...(repository
        ? {
          repository: {
            root: repository.root ?? null,
            control_mode: config.MODEL_CONTROL_MODE,
            default_model: repository.defaultModel,
            models: repository.registry.index(),
          },
        }
        : {}),
      config: publicConfig(config),
    }, 200);
  });

  app.openapi(metricsRoute, async (c) => {
    const { body, contentType } = await renderMetrics(metrics.registry, c.req.header("accept"));
    return c.body(body, 200, { "content-type": contentType });
  });
}
