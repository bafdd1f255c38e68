/**
 * The Open Inference Protocol (KServe "v2" REST), so clients, load testers
 * and gateways built for Triton, KServe or MLServer work unchanged. A Hono
 * sub-app mounted at /v2 with its own error handler: every answer under /v2,
 * an unmatched path and a wrong method included, is the protocol's
 * `{"error": "..."}` with application/json. Requests share /predict's
 * middleware, limits, batcher, metrics and traces, and its inference sequence
 * (serving/infer.ts).
 *
 * The models are the catalogue's (serving/models.ts): MODEL_NAME
 * (`resnet50`), the network itself, FP32 input [N,3,224,224] already
 * preprocessed (it also takes the `image` input), and MODEL_NAME-image
 * (`resnet50-image`), encoded images as a BYTES input `image` [N] (base64 in
 * JSON, raw with the binary extension), decoded and preprocessed as /predict
 * does. Extensions: classification, binary tensor data, model configuration,
 * statistics and the repository index (SERVER_EXTENSIONS).
 *
 * Roles: routes.ts defines the routes, handlers.ts answers them, codec.ts and
 * binary.ts read and write tensors, errors.ts speaks the protocol's errors.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "@hono/hono";
import { logger } from "../../observability/logger.ts";
import type { AppEnv } from "../types.ts";
import { bad, toV2Error, v2ErrorResponse } from "./errors.ts";
import {
  configOf,
  findModel,
  infer,
  metadataOf,
  modelReady,
  readIndexRequest,
  repositoryIndex,
  SERVER_EXTENSIONS,
  statsOf,
  type V2Deps,
} from "./handlers.ts";
import {
  allStatsRoute,
  inferRoute,
  modelConfigRoute,
  modelListRoute,
  modelMetadataRoute,
  modelReadyRoute,
  modelStatsRoute,
  repositoryIndexRoute,
  serverLiveRoute,
  serverMetadataRoute,
  serverReadyRoute,
  versionConfigRoute,
  versionInferRoute,
  versionMetadataRoute,
  versionReadyRoute,
  versionStatsRoute,
} from "./routes.ts";
import { v2InferRequest, v2RepositoryIndexRequest } from "./schemas.ts";

export type { V2Deps };
export { SERVER_EXTENSIONS };

/** Where the sub-app is mounted. */
export const V2_PREFIX = "/v2";

/** A route's path pattern as a matcher: `{name}` and `:name` are one path segment. */
function pathMatcher(path: string): RegExp {
  const pattern = path.split("/").map((segment) =>
    /^(\{[^}]+\}|:.+)$/.test(segment) ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  ).join("/");
  return new RegExp(`^${pattern}$`);
}

const serverMetadata = (deps: V2Deps) => ({
  name: "inference-gateway",
  version: deps.version,
  extensions: [...SERVER_EXTENSIONS],
});

/** Whether a path is the protocol's, so its every answer is `{"error"}` (see isV2Path's callers). */
export function isV2Path(path: string): boolean {
  return path === V2_PREFIX || path.startsWith(V2_PREFIX + "/");
}

/**
 * Any error under /v2 as the protocol's answer: the sub-app's own, and one thrown by the app's middleware
 * in front of it (routes/app.ts passes those here).
 */
export function v2ErrorAnswer(err: unknown, c: Context<AppEnv>): Response {
  const e = toV2Error(err);
  if (!e) {
    c.set("rejectReason", "internal");
    // The stack goes to the log, never to the client.
    logger("http").error("Unhandled error: {error}", { error: String(err), stack: (err as Error).stack });
    return v2ErrorResponse(500, "An unexpected error occurred; it has been logged with this request id");
  }
  c.set("rejectReason", e.reason);
  return v2ErrorResponse(e.status, e.message, e.headers);
}

export function v2App(deps: V2Deps): OpenAPIHono<AppEnv> {
  const v2 = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        throw bad(`Invalid ${result.target} ${issue.path.join(".")}: ${issue.message}`);
      }
    },
  });

  // Referenced by the infer routes' request bodies (see inferBody in routes.ts).
  v2.openAPIRegistry.register("InferenceRequest", v2InferRequest);
  v2.openAPIRegistry.register("RepositoryIndexRequest", v2RepositoryIndexRequest);

  v2.onError(v2ErrorAnswer);

  v2.openapi(serverMetadataRoute, (c) => c.json(serverMetadata(deps), 200));
  v2.openapi(serverLiveRoute, (c) => c.json({ live: true }, 200));
  // The protocol: 200 means ready, a 4xx status means not.
  v2.openapi(serverReadyRoute, (c) => {
    const ready = deps.models.list().every((m) => m.state.status === "ready");
    return ready ? c.json({ ready }, 200) : c.json({ ready }, 400);
  });

  // Before /models/{name}: "stats" is this route, not a model's metadata.
  v2.openapi(allStatsRoute, (c) => c.json(statsOf(deps, undefined), 200));
  v2.openapi(modelListRoute, (c) => c.json({ models: deps.models.list().map((m) => m.name) }, 200));
  v2.openapi(repositoryIndexRoute, async (c) => {
    const readyOnly = await readIndexRequest(c, deps.config);
    return c.json(repositoryIndex(deps.models, readyOnly), 200);
  });

  const model = (name: string) => findModel(deps.models, name);
  v2.openapi(modelMetadataRoute, (c) => c.json(metadataOf(model(c.req.valid("param").name), undefined), 200));
  v2.openapi(versionMetadataRoute, (c) => {
    const { name, version } = c.req.valid("param");
    return c.json(metadataOf(model(name), version), 200);
  });

  const ready = (c: Context<AppEnv>, name: string, version?: string) => {
    const isReady = modelReady(model(name), version);
    return isReady ? c.json({ name, ready: true }, 200) : c.json({ name, ready: false }, 400);
  };
  v2.openapi(modelReadyRoute, (c) => ready(c, c.req.valid("param").name));
  v2.openapi(versionReadyRoute, (c) => {
    const { name, version } = c.req.valid("param");
    return ready(c, name, version);
  });

  v2.openapi(
    modelConfigRoute,
    (c) => c.json(configOf(deps, model(c.req.valid("param").name), undefined), 200),
  );
  v2.openapi(versionConfigRoute, (c) => {
    const { name, version } = c.req.valid("param");
    return c.json(configOf(deps, model(name), version), 200);
  });

  v2.openapi(modelStatsRoute, (c) => c.json(statsOf(deps, c.req.valid("param").name), 200));
  v2.openapi(versionStatsRoute, (c) => {
    const { name, version } = c.req.valid("param");
    return c.json(statsOf(deps, name, version), 200);
  });

  v2.openapi(inferRoute, (c) => infer(c, deps, c.req.valid("param").name, undefined));
  v2.openapi(versionInferRoute, (c) => {
    const { name, version } = c.req.valid("param");
    return infer(c, deps, name, version);
  });

  return v2;
}

/**
 * What the app answers under /v2 when no v2 route matched (called from its notFound handler), in the
 * protocol's terms: the gateway's own 404 and 405 are problem documents, which Triton's client cannot
 * read. Undefined for a path outside /v2.
 */
export function v2Unmatched(
  v2: OpenAPIHono<AppEnv>,
  deps: V2Deps,
): (c: Context<AppEnv>) => Response | undefined {
  const routes = v2.routes.map((r) => ({ method: r.method, match: pathMatcher(r.path) }));
  return (c) => {
    if (!isV2Path(c.req.path)) return undefined;
    const path = c.req.path.slice(V2_PREFIX.length);
    const method = c.req.method;
    // The spec's YAML spells server metadata `/v2/`; mounting joins "/v2" and "/" into "/v2" only.
    if (path === "/" && (method === "GET" || method === "HEAD")) return c.json(serverMetadata(deps), 200);
    const allowed = new Set<string>();
    for (const r of routes) if (r.match.test(path)) allowed.add(r.method);
    if (allowed.size === 0) {
      c.set("rejectReason", "not_found");
      return v2ErrorResponse(404, `No route for ${method} ${c.req.path}`);
    }
    if (allowed.has("GET")) allowed.add("HEAD");
    const allow = [...allowed].sort().join(", ");
    c.set("rejectReason", "method_not_allowed");
    return v2ErrorResponse(405, `${method} is not allowed on ${c.req.path}; use ${allow}`, { allow });
  };
}
