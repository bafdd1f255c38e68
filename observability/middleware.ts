/**
 * The one middleware every route goes through. Per request it owns the
 * request id (a well-formed incoming X-Request-ID is honoured, otherwise one
 * is generated), the server span (continuing an incoming W3C traceparent),
 * the golden-signal metrics with trace exemplars, the logging context that
 * puts request_id, trace_id and span_id on every line, and the access log.
 * Everything is recorded in `finally`, so failures are measured too, and no
 * telemetry error reaches the response.
 */
import type { MiddlewareHandler } from "@hono/hono";
import { matchedRoutes } from "@hono/hono/route";
import { context as otelContext, ROOT_CONTEXT, type Span, trace, TraceFlags } from "@opentelemetry/api";
import { logger, withContext } from "./logger.ts";
import { exemplarLabels, httpLabels, type Metrics } from "./metrics.ts";
import { propagator, SpanKind, SpanStatusCode } from "./otel.ts";
import { RequestStages } from "./stages.ts";
import { recordSafely } from "./telemetry_guard.ts";
import type { Tracing } from "./otel.ts";

export interface ObservabilityVariables {
  requestId: string;
  /** Set by the error handler when a request is refused, for the access log and metrics. */
  rejectReason: string | undefined;
  /** Bytes of the request body actually read. */
  bytesIn: number;
  stages: RequestStages;
  span: Span;
  /** The model version that answered, set by the inference routes: on the server span and the access log. */
  servedBy: { model: string; version: string } | undefined;
  /** The API key's id (never the key) once access control has recognised it, for the span and the access log. */
  keyId: string | undefined;
}

export interface ObservabilityOptions {
  metrics: Metrics;
  tracing: Tracing;
  /** Requests slower than this keep their trace and exemplar regardless of sampling. */
  latencyObjectiveMs: number;
  /** Paths whose access-log line is debug, not info (probes and scrapes are noise). */
  quietPaths?: ReadonlySet<string>;
}

/**
 * What the server passes as the request's environment (server/serve.ts): the other end of the TCP
 * connection, and the client as TRUSTED_PROXIES let it be named.
 */
interface ConnectionEnv {
  remoteAddr?: Deno.NetAddr;
  client?: { address: string; port?: number };
}

const REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/;
const KNOWN_METHODS = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "CONNECT",
  "TRACE",
]);
/** The route label of every request no route matched: random URLs must not create series. */
export const UNMATCHED_ROUTE = "unmatched";

export function requestIdFrom(header: string | undefined): string {
  return header !== undefined && REQUEST_ID.test(header) ? header : crypto.randomUUID();
}

const headerGetter = {
  get: (carrier: Headers, key: string) => carrier.get(key) ?? undefined,
  keys: (carrier: Headers) => [...carrier.keys()],
};

export function observability(options: ObservabilityOptions): MiddlewareHandler<
  { Variables: ObservabilityVariables }
> {
  const { metrics, tracing, latencyObjectiveMs } = options;
  const quiet = options.quietPaths ?? new Set(["/health", "/ready", "/metrics"]);
  const access = logger("http");

  return async function observabilityMiddleware(c, next) {
    const start = performance.now();
    const method = KNOWN_METHODS.has(c.req.method) ? c.req.method : "_OTHER";
    const requestId = requestIdFrom(c.req.header("x-request-id"));
    const parent = propagator.extract(ROOT_CONTEXT, c.req.raw.headers, headerGetter);
    const url = new URL(c.req.url);
    // In-process requests (tests) have no connection.
    const { remoteAddr: peer, client } = (c.env ?? {}) as ConnectionEnv;
    const span = tracing.tracer.startSpan(method, {
      kind: SpanKind.SERVER,
      attributes: {
        "http.request.method": method,
        "url.path": c.req.path,
        "url.scheme": url.protocol.replace(":", ""),
        "server.address": url.hostname,
        "server.port": Number(url.port) || (url.protocol === "https:" ? 443 : 80),
        "user_agent.original": c.req.header("user-agent") ?? "",
        "inference_gateway.request_id": requestId,
        // OpenTelemetry HTTP semantic conventions: client.* is the client (behind trusted
        // proxies), network.peer.* the other end of the TCP connection.
        ...(client && { "client.address": client.address }),
        ...(client?.port !== undefined && { "client.port": client.port }),
        ...(peer && { "network.peer.address": peer.hostname, "network.peer.port": peer.port }),
      },
    }, parent);
    const spanContext = span.spanContext();
    const sampled = (spanContext.traceFlags & TraceFlags.SAMPLED) !== 0;
    const exemplar = { trace_id: spanContext.traceId, span_id: spanContext.spanId };
    const stages = new RequestStages(tracing.tracer, metrics, () => (sampled ? exemplar : undefined));
    c.set("requestId", requestId);
    c.set("bytesIn", 0);
    c.set("rejectReason", undefined);
    c.set("stages", stages);
    c.set("span", span);
    c.set("servedBy", undefined);
    c.set("keyId", undefined);
    const active = { http_request_method: method };
    recordSafely("http_in_flight", [], () => metrics.httpActive.inc(active));

    const logContext = { request_id: requestId, trace_id: spanContext.traceId, span_id: spanContext.spanId };
    await otelContext.with(trace.setSpan(parent, span), () =>
      withContext(logContext, async () => {
        try {
          await next();
        } finally {
          const durationMs = performance.now() - start;
          const status = c.res.status;
          // Middleware for every path ("/*", CORS say) is not a route: an unmatched request stays unmatched.
          const route = matchedRoutes(c).findLast((r) =>
            r.handler !== observabilityMiddleware && r.path !== "/*"
          )
            ?.path ?? UNMATCHED_ROUTE;
          const reason = c.get("rejectReason");
          recordSafely("http_request", [durationMs], () => {
            c.header("x-request-id", requestId);
            const carrier: Record<string, string> = {};
            propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, {
              set: (h, k, v) => (h[k] = v),
            });
            if (carrier.traceparent) c.header("traceparent", carrier.traceparent);
            c.header("server-timing", stages.serverTiming(durationMs));

            span.updateName(`${method} ${route}`);
            span.setAttribute("http.route", route);
            span.setAttribute("http.response.status_code", status);
            if (status >= 500) {
              span.setStatus({ code: SpanStatusCode.ERROR, message: reason ?? `HTTP ${status}` });
              span.setAttribute("error.type", String(status));
            }
            if (reason) span.setAttribute("inference_gateway.reject_reason", reason);
            const served = c.get("servedBy");
            if (served) {
              span.setAttribute("model.name", served.model);
              span.setAttribute("model.version", served.version);
            }
            const keyId = c.get("keyId");
            if (keyId) span.setAttribute("enduser.id", keyId);

            const kept = sampled || status >= 500 || durationMs > latencyObjectiveMs;
            metrics.httpDuration.observe({
              labels: httpLabels(method, route, status),
              value: durationMs / 1000,
              exemplarLabels: exemplarLabels(kept ? exemplar : undefined),
            });
            if (reason) metrics.rejected.inc({ reason });
          });
          recordSafely("http_in_flight", [], () => metrics.httpActive.dec(active));
          span.end();

          const fields = {
            method,
            route,
            path: c.req.path,
            status,
            duration_ms: +durationMs.toFixed(2),
            bytes_in: c.get("bytesIn"),
            bytes_out: Number(c.res.headers.get("content-length") ?? 0) || undefined,
            user_agent: c.req.header("user-agent"),
            client_address: client?.address,
            key_id: c.get("keyId"),
            reject_reason: reason,
            model: c.get("servedBy")?.model,
            model_version: c.get("servedBy")?.version,
          };
          // Probes answering 503 while loading or draining are expected; 503 elsewhere is
          // designed back-pressure (warning); other 5xx are faults (error).
          if (quiet.has(c.req.path)) access.debug("{method} {route} {status}", fields);
          else if (status === 503) access.warn("{method} {route} {status}", fields);
          else if (status >= 500) access.error("{method} {route} {status}", fields);
          else access.info("{method} {route} {status}", fields);
        }
      }));
  };
}
