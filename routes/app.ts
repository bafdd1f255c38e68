/**
 * Builds the Hono app from injected parts so tests run it in-process, with
 * the real model, without opening a port. Each route file defines its routes
 * with createRoute, which gives validation, types and the OpenAPI document
 * from one definition. Gateway errors are RFC 9457 problems, translated here
 * once; the /v2 sub-app translates its own into the protocol's error body.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { KeyStore } from "../access/key_store.ts";
import type { Config } from "../config.ts";
import type { ModelState } from "../model/runtime/state.ts";
import { bindModelMetrics } from "../model/repository/metrics.ts";
import type { Repository } from "../model/repository/repository.ts";
import { logger } from "../observability/logger.ts";
import { primeHttpSeries, primeRejections } from "../observability/metrics.ts";
import { observability } from "../observability/middleware.ts";
import type { Telemetry } from "../observability/telemetry.ts";
import { accessControl, accessRules, secureDocument } from "./access.ts";
import { corsMiddleware } from "./cors.ts";
import { type BuildInfo, buildInfo, registerOperations } from "./health.ts";
import { registerDocs } from "./openapi.ts";
import { readPage, registerPage, WEB_DIR } from "./page.ts";
import { registerPredict } from "./predict.ts";
import { asProblem, ProblemError, problemResponse, PROBLEMS } from "./problem.ts";
import type { AppEnv } from "./types.ts";
import { isV2Path, V2_PREFIX, v2App, v2ErrorAnswer, v2Unmatched } from "./v2/app.ts";
import { fixedCatalog } from "../serving/models.ts";
import { repositoryCatalog } from "../serving/repository_catalog.ts";
import { registerRepositoryRoutes } from "./v2/repository.ts";
import { ModelStatistics } from "../serving/stats.ts";

/** The routes the SLOs count (the `http_route` matcher of deploy/prometheus/rules/). */
export const PREDICTION_ROUTES = [
  { method: "POST", route: "/predict" },
  { method: "POST", route: "/v2/models/:name/infer" },
  { method: "POST", route: "/v2/models/:name/versions/:version/infer" },
] as const;

/**
 * What the SLIs tell apart: success, and every server error a route answers. The guard's 505 for an
 * HTTP/2 preface is answered before any route, so no prediction route ever records it.
 */
const SLI_STATUSES = [
  200,
  ...new Set(
    Object.entries(PROBLEMS)
      .filter(([code, p]) => p.status >= 500 && code !== "http_version_not_supported")
      .map(([, p]) => p.status),
  ),
];

export interface AppDeps {
  config: Config;
  state: ModelState;
  telemetry: Telemetry;
  build?: BuildInfo;
  /** The models served (main.ts and edge.ts always give it; in-process tests may not). */
  repository?: Repository;
  /** The keys of API_KEYS_FILE (routes/access.ts's openKeyStore); required when it is set. */
  keys?: KeyStore;
  /** Where the page's files are (default: web/ beside routes/). */
  webDir?: URL;
}

export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const { config, state, telemetry } = deps;
  const { metrics } = telemetry;
  const build = deps.build ?? buildInfo("0.0.0-dev");
  const log = logger("http");
  if (config.API_KEYS_FILE && !deps.keys) {
    throw new Error("API_KEYS_FILE is set but createApp got no key store");
  }
  const access = {
    store: deps.keys,
    metrics,
    rules: accessRules({ metricsRequireKey: config.METRICS_REQUIRE_KEY }),
  };
  const app = new OpenAPIHono<AppEnv>({
    // A request that fails its route's schema (a query parameter, say) is a problem like any other.
    defaultHook: (result, c) => {
      if (result.success) return;
      const issue = result.error.issues[0];
      const name = issue.path.map(String).join(".");
      const sent = result.target === "query" ? c.req.query(name) : undefined;
      throw new ProblemError(
        "invalid_parameter",
        `${name || result.target} must be ${issue.message}${sent !== undefined ? `, got "${sent}"` : ""}`,
      );
    },
  });
  bindModelMetrics(metrics, state, deps.repository);

  primeHttpSeries(metrics, PREDICTION_ROUTES, SLI_STATUSES);
  primeRejections(metrics, new Set(Object.values(PROBLEMS).map((p) => p.reason)));

  app.use("*", observability({ ...telemetry, latencyObjectiveMs: config.LATENCY_OBJECTIVE_MS }));
  if (config.CORS_ORIGINS) app.use("*", corsMiddleware(config.CORS_ORIGINS));
  // After CORS, so a preflight (which carries no credentials) is answered without a key.
  app.use("*", accessControl(access));

  registerOperations(app, {
    config,
    state,
    metrics,
    build,
    repository: deps.repository,
  });
  const models = deps.repository?.root
    ? repositoryCatalog(deps.repository)
    : fixedCatalog(config.MODEL_NAME, state);
  const statistics = new ModelStatistics();
  registerPredict(app, { config, state, metrics, statistics, models });
  const v2Deps = { config, models, metrics, statistics, version: build.version };
  const v2 = v2App(v2Deps);
  // Before mounting: the management routes answer in the protocol's terms, under the v2 error handler.
  if (deps.repository) registerRepositoryRoutes(v2, config, deps.repository);
  app.route(V2_PREFIX, v2);
  const unmatchedV2 = v2Unmatched(v2, v2Deps);
  registerPage(app, readPage(deps.webDir ?? WEB_DIR));
  registerDocs(app, build.version, (doc) => secureDocument(doc, access.rules, access.store !== undefined));
  app.all("/predict", (c) => {
    throw new ProblemError("method_not_allowed", `${c.req.method} is not allowed on /predict; use POST`, {
      allow: "POST",
    });
  });

  app.notFound((c) =>
    unmatchedV2(c) ?? problemResponse("not_found", `No route for ${c.req.method} ${c.req.path}`, {
      instance: c.req.path,
      requestId: c.get("requestId"),
    })
  );

  app.onError((err, c) => {
    // Thrown by middleware in front of the v2 sub-app: still the protocol's answer.
    if (isV2Path(c.req.path)) return v2ErrorAnswer(err, c);
    const requestId = c.get("requestId");
    const problem = asProblem(err);
    if (problem instanceof ProblemError) {
      c.set("rejectReason", PROBLEMS[problem.code].reason);
      // Designed refusals (503 overloaded/not_ready, 504) are in the access log; faults also here.
      if (problem.code === "internal") log.error("Request failed: {detail}", { detail: problem.detail });
      return problemResponse(problem.code, problem.detail, {
        instance: c.req.path,
        requestId,
        headers: problem.headers,
      });
    }
    c.set("rejectReason", "internal");
    // The stack goes to the log, never to the client.
    log.error("Unhandled error: {error}", { error: String(err), stack: err.stack });
    return problemResponse(
      "internal",
      "An unexpected error occurred; it has been logged with this request id",
      { instance: c.req.path, requestId },
    );
  });

  return app;
}
