/**
 * CORS for browser apps on other origins (CORS_ORIGINS), with Hono's cors
 * middleware. Responses expose the headers an app needs to link an answer
 * to its logs and trace and to back off, and Timing-Allow-Origin lets the
 * browser's Resource Timing API read Server-Timing.
 */
import type { MiddlewareHandler } from "@hono/hono";
import { cors } from "@hono/hono/cors";
import { HEADER_LENGTH } from "./v2/binary.ts";

/** Response headers a cross-origin page may read (WWW-Authenticate: why a key was refused). */
export const EXPOSED_HEADERS = [
  "X-Request-ID",
  "traceparent",
  "Server-Timing",
  "Retry-After",
  "WWW-Authenticate",
  HEADER_LENGTH,
];
/** Request headers a cross-origin page may send, the API key's two among them. */
export const ALLOWED_HEADERS = [
  "Content-Type",
  "Authorization",
  "X-API-Key",
  "X-Request-ID",
  "traceparent",
  "tracestate",
  HEADER_LENGTH,
];
export const ALLOWED_METHODS = ["GET", "HEAD", "POST", "OPTIONS"];

export function corsMiddleware(origins: "*" | readonly string[]): MiddlewareHandler {
  const allowed = (origin: string | undefined): origin is string =>
    origin !== undefined && (origins === "*" || origins.includes(origin));
  const handler = cors({
    origin: origins === "*" ? "*" : (origin) => (allowed(origin) ? origin : null),
    allowMethods: ALLOWED_METHODS,
    allowHeaders: ALLOWED_HEADERS,
    exposeHeaders: EXPOSED_HEADERS,
    maxAge: 600,
  });
  return async function corsWithTiming(c, next) {
    // A preflight is answered here (204); other requests get their headers after the route.
    const preflight = await handler(c, next);
    const origin = c.req.header("origin");
    if (allowed(origin)) {
      (preflight ?? c.res).headers.set("timing-allow-origin", origins === "*" ? "*" : origin);
    }
    return preflight;
  };
}
