/**
 * Access control over HTTP: which scope each route needs (one table), the
 * middleware that checks the request's key against it, the secure default for
 * model management, and the same table written into /openapi.json.
 *
 * With API_KEYS_FILE set, every route in the table needs a key with its scope:
 * a missing or unknown key is a 401 with `WWW-Authenticate: Bearer`, a known
 * key without the scope a 403. Without it, inference stays open as it always
 * was, but model management is refused (403 naming API_KEYS_FILE): an open
 * port must never let a stranger replace the model. Probes, the page and the
 * API description are open in both cases: they hold nothing secret and a load
 * balancer or a person must reach them without a key.
 */
import type { Context, MiddlewareHandler } from "@hono/hono";
import { AUTH_FAILURES, type AuthFailure, findKey, presentedKey } from "../access/credential.ts";
import type { Scope } from "../access/key_file.ts";
import { KeyStore } from "../access/key_store.ts";
import type { Config } from "../config.ts";
import { logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { recordSafely } from "../observability/telemetry_guard.ts";
import { type ProblemCode, problemResponse, PROBLEMS } from "./problem.ts";
import type { AppEnv } from "./types.ts";

/**
 * A path pattern and the scope it needs; the first rule that matches a path
 * decides. `/x/*` matches `/x` and everything under it. Paths no rule matches
 * are open.
 */
export interface AccessRule {
  pattern: string;
  scope: Scope | "open";
}

/** The realm in WWW-Authenticate. */
export const REALM = "inference-gateway";

/**
 * The access policy. Model metadata is `infer`: whoever may classify may know
 * with what. /metrics needs `metrics` only with METRICS_REQUIRE_KEY=true.
 */
export function accessRules(options: { metricsRequireKey: boolean }): readonly AccessRule[] {
  return [
    { pattern: "/predict", scope: "infer" },
    { pattern: "/info", scope: "infer" },
    { pattern: "/metrics", scope: options.metricsRequireKey ? "metrics" : "open" },
    { pattern: "/v2/health/*", scope: "open" },
    // The repository extension's load and unload: model management.
    { pattern: "/v2/repository/models/*", scope: "admin" },
    { pattern: "/v2/*", scope: "infer" },
  ];
}

/** The scope `path` needs under `rules`, or "open". Works on OpenAPI templates (`/v2/models/{name}`) too. */
export function scopeFor(rules: readonly AccessRule[], path: string): Scope | "open" {
  for (const rule of rules) {
    if (rule.pattern.endsWith("/*")) {
      const base = rule.pattern.slice(0, -2);
      if (path === base || path.startsWith(`${base}/`)) return rule.scope;
    } else if (path === rule.pattern) {
      return rule.scope;
    }
  }
  return "open";
}

export interface AccessOptions {
  /** The keys from API_KEYS_FILE; undefined when it is unset. */
  store: KeyStore | undefined;
  metrics: Metrics;
  rules: readonly AccessRule[];
}

/** The answer to a refused request, as a problem document, or as the protocol's `{"error"}` under /v2. */
function refusal(
  c: Context<AppEnv>,
  code: ProblemCode,
  detail: string,
  headers: Record<string, string>,
): Response {
  c.set("rejectReason", PROBLEMS[code].reason);
  if (c.req.path === "/v2" || c.req.path.startsWith("/v2/")) {
    return new Response(JSON.stringify({ error: detail }), {
      status: PROBLEMS[code].status,
      headers: { "content-type": "application/json", ...headers },
    });
  }
  return problemResponse(code, detail, { instance: c.req.path, requestId: c.get("requestId"), headers });
}

const MANAGEMENT_OFF = "Model management is off: it needs API_KEYS_FILE, a key file with an admin key " +
  "(docs/access_control.md), whatever MODEL_CONTROL_MODE says";

/**
 * Lets a request through only with a key that has `scope`. Without a key
 * file, `admin` is refused to everyone and any other scope is open. Exported
 * for routes that want the check themselves; the app applies it by the table
 * (accessControl).
 */
export function requireScope(
  scope: Scope,
  { store, metrics }: Pick<AccessOptions, "store" | "metrics">,
): MiddlewareHandler<AppEnv> {
  const fail = (reason: AuthFailure) =>
    recordSafely("auth_failures", [], () => metrics.authFailures.inc({ reason }));
  return async function requireScopeMiddleware(c, next) {
    if (!store) {
      if (scope === "admin") return refusal(c, "management_disabled", MANAGEMENT_OFF, {});
      return await next();
    }
    const presented = presentedKey(c.req.raw.headers);
    if (presented.kind !== "key") {
      fail("missing");
      const invalid = presented.kind === "invalid";
      return refusal(
        c,
        "unauthorized",
        invalid
          ? `The credential is not usable: ${presented.why}`
          : "This route needs an API key: send Authorization: Bearer <key> or X-API-Key: <key>",
        {
          "www-authenticate": invalid
            ? `Bearer realm="${REALM}", error="invalid_request"`
            : `Bearer realm="${REALM}"`,
        },
      );
    }
    const key = await findKey(store.keys, presented.key);
    if (!key) {
      fail("unknown");
      return refusal(c, "unauthorized", "The API key is not known (or was revoked)", {
        "www-authenticate": `Bearer realm="${REALM}", error="invalid_token"`,
      });
    }
    c.set("keyId", key.id);
    if (!key.scopes.has(scope)) {
      fail("scope");
      return refusal(c, "insufficient_scope", `The API key "${key.id}" does not have the ${scope} scope`, {
        "www-authenticate": `Bearer realm="${REALM}", error="insufficient_scope", scope="${scope}"`,
      });
    }
    c.set("apiKey", key);
    recordSafely("api_key_requests", [], () => metrics.apiKeyRequests.inc({ key_id: key.id }));
    await next();
  };
}

/** The access table as one middleware: each request is checked for the scope its path needs. */
export function accessControl(options: AccessOptions): MiddlewareHandler<AppEnv> {
  const { metrics } = options;
  for (const reason of AUTH_FAILURES) metrics.authFailures.inc({ reason }, 0);
  if (!options.store) {
    // Without a key file these would read as an empty, broken file: absent says "not configured".
    for (
      const m of [
        metrics.apiKeysLoaded,
        metrics.apiKeysFileValid,
        metrics.apiKeysLoadedTime,
        metrics.apiKeysReloadFailures,
      ]
    ) {
      metrics.registry.removeSingleMetric((m as unknown as { name: string }).name);
    }
  }
  const checks = new Map<Scope, MiddlewareHandler<AppEnv>>();
  const check = (scope: Scope) => {
    let handler = checks.get(scope);
    if (!handler) checks.set(scope, handler = requireScope(scope, options));
    return handler;
  };
  return async function accessControlMiddleware(c, next) {
    c.set("apiKey", undefined);
    const scope = scopeFor(options.rules, c.req.path);
    if (scope === "open") return await next();
    return await check(scope)(c, next);
  };
}

/**
 * Opens API_KEYS_FILE (undefined when unset) and keeps its metrics and log
 * lines current as it reloads. A missing or invalid file throws KeyStoreError.
 */
export async function openKeyStore(
  config: Pick<Config, "API_KEYS_FILE">,
  metrics: Metrics,
  options: { intervalMs?: number; watch?: boolean } = {},
): Promise<KeyStore | undefined> {
  const path = config.API_KEYS_FILE;
  if (!path) return undefined;
  const log = logger("access");
  let loads = 0;
  return await KeyStore.open(path, {
    ...options,
    onLoad(set, status) {
      recordSafely("api_keys", [], () => {
        metrics.apiKeysLoaded.set(status.keys);
        metrics.apiKeysFileValid.set(1);
        metrics.apiKeysLoadedTime.set(status.loadedAt / 1000);
      });
      // Ids only: never a key, never a hash.
      const fields = { path, keys: set.keys.length, ids: set.keys.map((k) => k.id), version: set.version };
      if (loads++ === 0) log.info("{keys} API keys loaded from {path}", fields);
      else log.info("{keys} API keys reloaded from {path}", fields);
      if (set.keys.length === 0) log.warn("API_KEYS_FILE has no keys: every protected route answers 401");
    },
    onError(message) {
      recordSafely("api_keys", [], () => {
        metrics.apiKeysFileValid.set(0);
        metrics.apiKeysReloadFailures.inc();
      });
      log.error("API key file not reloaded, the last good keys still serve: {error}", { error: message });
    },
  });
}

/** Which routes are open and which need which scope, for the startup log line. */
export function describeAccess(rules: readonly AccessRule[], keys: boolean): Record<string, string[]> {
  const out: Record<string, string[]> = { open: ["/health", "/ready", "/", "/openapi.json", "/docs"] };
  for (const rule of rules) {
    let need: string = rule.scope;
    if (!keys) need = rule.scope === "admin" ? "refused (no API_KEYS_FILE)" : "open";
    (out[need] ??= []).push(rule.pattern);
  }
  return out;
}

interface OpenApiOperation {
  security?: Array<Record<string, string[]>>;
  responses?: Record<string, unknown>;
  description?: string;
}

const errorContent = (path: string, example: string) =>
  path === "/v2" || path.startsWith("/v2/")
    ? {
      "application/json": {
        schema: { $ref: "#/components/schemas/InferenceError" },
        example: { error: example },
      },
    }
    : { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } };

/**
 * Writes the table into an OpenAPI document: the two ways to send a key as
 * security schemes, and on each operation that needs one, its scope, its
 * security requirement and its 401 and 403 answers.
 */
export function secureDocument<T extends object>(
  document: T,
  rules: readonly AccessRule[],
  keys: boolean,
): T {
  const doc = document as T & {
    paths?: Record<string, Record<string, OpenApiOperation>>;
    components?: { securitySchemes?: Record<string, unknown> };
  };
  doc.components ??= {};
  doc.components.securitySchemes = {
    ...doc.components.securitySchemes,
    bearerAuth: {
      type: "http",
      scheme: "bearer",
      description: "An API key from `deno task key:new`, as `Authorization: Bearer <key>`",
    },
    apiKeyHeader: {
      type: "apiKey",
      in: "header",
      name: "X-API-Key",
      description: "The same key, in X-API-Key",
    },
  };
  for (const [path, operations] of Object.entries(doc.paths ?? {})) {
    const scope = scopeFor(rules, path);
    if (scope === "open") continue;
    for (const op of Object.values(operations)) {
      op.responses ??= {};
      // The route's own 403 (model control off, say) stays documented beside access control's.
      const own = (op.responses["403"] as { description?: string } | undefined)?.description;
      const forbidden = (description: string, example: string) => ({
        description: own ? `${description}; or: ${own}` : description,
        content: errorContent(path, example),
      });
      if (!keys && scope !== "admin") continue;
      if (!keys) {
        op.responses["403"] = forbidden(MANAGEMENT_OFF, MANAGEMENT_OFF);
        continue;
      }
      op.security = [{ bearerAuth: [] }, { apiKeyHeader: [] }];
      op.description = `${
        op.description ? `${op.description}\n\n` : ""
      }Needs an API key with the \`${scope}\` scope.`;
      op.responses["401"] = {
        description: "No API key, or one that is not known (WWW-Authenticate: Bearer)",
        headers: {
          "WWW-Authenticate": { schema: { type: "string" }, description: `Bearer realm="${REALM}"` },
        },
        content: errorContent(path, "This route needs an API key"),
      };
      op.responses["403"] = forbidden(
        `The API key does not have the ${scope} scope`,
        `The API key "ci" does not have the ${scope} scope`,
      );
    }
  }
  return document;
}
