/**
 * The one middleware every route goes through. Per request it owns the
 * request id (a well-formed incoming X-Request-ID is honoured, otherwise one
 * is generated), the logging context, and the access-log line, written in
 * `finally` so failures are logged too.
 */
import type { MiddlewareHandler } from "@hono/hono";
import { logger, withContext } from "./logger.ts";

export interface ObservabilityVariables {
  requestId: string;
  /** Set by handlers that refuse a request, for the access log. */
  rejectReason: string | undefined;
  /** Bytes of the request body actually read. */
  bytesIn: number;
}

export interface ObservabilityOptions {
  /** Requests to these paths are not access-logged at info (probes and scrapes are noise). */
  quietPaths?: ReadonlySet<string>;
}

const REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/;

export function requestIdFrom(header: string | undefined): string {
  return header !== undefined && REQUEST_ID.test(header) ? header : crypto.randomUUID();
}

export function observability(options: ObservabilityOptions = {}): MiddlewareHandler<
  { Variables: ObservabilityVariables }
> {
  const quiet = options.quietPaths ?? new Set(["/health", "/ready", "/metrics"]);
  const access = logger("http");
  return async function observabilityMiddleware(c, next) {
    const start = performance.now();
    const requestId = requestIdFrom(c.req.header("x-request-id"));
    c.set("requestId", requestId);
    c.set("bytesIn", 0);
    c.set("rejectReason", undefined);
    await withContext({ request_id: requestId }, async () => {
      try {
        await next();
      } finally {
        c.header("x-request-id", requestId);
        const status = c.res.status;
        const fields = {
          method: c.req.method,
          route: c.req.routePath,
          path: c.req.path,
          status,
          duration_ms: +(performance.now() - start).toFixed(2),
          bytes_in: c.get("bytesIn"),
          bytes_out: Number(c.res.headers.get("content-length") ?? 0) || undefined,
          user_agent: c.req.header("user-agent"),
          reject_reason: c.get("rejectReason"),
        };
        if (status >= 500) access.error("{method} {path} {status}", fields);
        else if (quiet.has(c.req.path)) access.debug("{method} {path} {status}", fields);
        else access.info("{method} {path} {status}", fields);
      }
    });
  };
}
