/**
 * Builds the Hono app from injected parts so tests run it in-process, with
 * the real model, without opening a port.
 */
import { Hono } from "@hono/hono";
import type { Config } from "../config.ts";
import type { ModelState } from "../model/state.ts";
import { logger } from "../observability/logger.ts";
import { renderMetrics } from "../observability/metrics.ts";
import { observability } from "../observability/middleware.ts";
import type { Telemetry } from "../observability/telemetry.ts";
import { type BuildInfo, buildInfo, healthHandler, infoHandler, readyHandler } from "./health.ts";
import { predictHandler } from "./predict.ts";
import { ProblemError, problemResponse, PROBLEMS } from "./problem.ts";
import type { AppEnv } from "./types.ts";
import { DOCS_HTML, openApiDocument } from "./openapi.ts";
import { registerV2, V2Error } from "./v2.ts";
import swaggerUi from "swagger-ui-dist";

const DOC_ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
};
const assetCache = new Map<string, Uint8Array<ArrayBuffer>>();

/** Swagger UI's files, read once from the npm package (no CDN, so /docs works offline). */
async function docAsset(file: string): Promise<Uint8Array<ArrayBuffer>> {
  let bytes = assetCache.get(file);
  if (!bytes) {
    bytes = await Deno.readFile(`${swaggerUi.getAbsoluteFSPath()}/${file}`);
    assetCache.set(file, bytes);
  }
  return bytes;
}

export interface AppDeps {
  config: Config;
  state: ModelState;
  telemetry: Telemetry;
  build?: BuildInfo;
}

export function createApp(deps: AppDeps): Hono<AppEnv> {
  const { config, state, telemetry } = deps;
  const { metrics } = telemetry;
  const build = deps.build ?? buildInfo("0.0.0-dev");
  const app = new Hono<AppEnv>();
  const log = logger("http");
  metrics.queueLimit.set(config.MAX_QUEUE);
  metrics.buildInfo.set({
    version: build.version,
    deno: build.deno,
    v8: build.v8,
    typescript: build.typescript,
  }, 1);

  app.use("*", observability({ ...telemetry, latencyObjectiveMs: config.LATENCY_OBJECTIVE_MS }));

  app.get("/health", healthHandler);
  app.get("/ready", readyHandler(state));
  app.get("/info", infoHandler(config, state, build));
  app.get("/metrics", async (c) => {
    refreshModelMetrics(deps);
    const { body, contentType } = await renderMetrics(metrics.registry, c.req.header("accept"));
    return c.body(body, 200, { "content-type": contentType });
  });
  app.post("/predict", predictHandler(config, state, metrics));
  registerV2(app, config, state, metrics, build.version);
  const openapi = JSON.stringify(openApiDocument(build.version));
  app.get("/openapi.json", (c) => c.body(openapi, 200, { "content-type": "application/json" }));
  app.get("/docs", (c) => c.html(DOCS_HTML));
  app.get("/docs/assets/:file", async (c) => {
    const file = c.req.param("file");
    const type = DOC_ASSETS[file];
    if (!type) throw new ProblemError("not_found", `No documentation asset ${file}`);
    return c.body(await docAsset(file), 200, {
      "content-type": type,
      "cache-control": "public, max-age=86400",
    });
  });
  app.all("/predict", (c) => {
    throw new ProblemError("method_not_allowed", `${c.req.method} is not allowed on /predict; use POST`, {
      allow: "POST",
    });
  });

  app.notFound((c) =>
    problemResponse("not_found", `No route for ${c.req.method} ${c.req.path}`, {
      instance: c.req.path,
      requestId: c.get("requestId"),
    })
  );

  app.onError((err, c) => {
    const requestId = c.get("requestId");
    if (err instanceof V2Error) {
      c.set("rejectReason", err.reason);
      if (err.status === 500) log.error("Request failed: {detail}", { detail: err.message });
      return new Response(JSON.stringify({ error: err.message }), {
        status: err.status,
        headers: { "content-type": "application/json", ...err.headers },
      });
    }
    if (err instanceof ProblemError) {
      c.set("rejectReason", PROBLEMS[err.code].reason);
      // Designed refusals (503 overloaded/not_ready, 504) are in the access log; faults also here.
      if (err.code === "internal") log.error("Request failed: {detail}", { detail: err.detail });
      return problemResponse(err.code, err.detail, { instance: c.req.path, requestId, headers: err.headers });
    }
    c.set("rejectReason", "internal");
    // The stack goes to the log, never to the client.
    log.error("Unhandled error: {error}", { error: String(err), stack: err.stack });
    return problemResponse(
      "internal",
      "An unexpected error occurred; it has been logged with this request id",
      {
        instance: c.req.path,
        requestId,
      },
    );
  });

  return app;
}

/** Model gauges are derived from the model state at scrape time, so no code path can forget to update them. */
function refreshModelMetrics({ state, telemetry: { metrics } }: AppDeps): void {
  metrics.modelReady.set(state.status === "ready" ? 1 : 0);
  const batcher = state.classifier?.batcher;
  if (batcher) {
    metrics.queueDepth.set(batcher.queueDepth);
    metrics.workers.set(batcher.runners.length);
  }
  if (state.loadSeconds !== undefined) metrics.modelLoad.set(state.loadSeconds);
  const info = state.classifier?.info;
  if (info) {
    metrics.modelInfo.reset();
    metrics.modelInfo.set({
      name: info.name,
      version: info.version,
      weights: info.weights,
      precision: info.precision,
      sha256: info.sha256,
      runtime_version: info.runtimeVersion,
    }, 1);
    const q = info.quantization;
    if (q) {
      metrics.int8Accepted.set(q.accepted ? 1 : 0);
      if (q.top1Agreement !== undefined) metrics.int8Agreement.set(q.top1Agreement);
      if (q.meanAbsTop1ConfidenceDelta !== undefined) {
        metrics.int8ConfidenceDelta.set(q.meanAbsTop1ConfidenceDelta);
      }
    }
  }
}
