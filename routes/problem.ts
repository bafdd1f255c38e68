/**
 * Errors as RFC 9457 problem details (`application/problem+json`), each with
 * a stable machine-readable `code`. Bodies never carry stack traces.
 */

import { type ErrorCode, errorCode } from "../core/errors.ts";

/** Stable codes, their HTTP status and title. `reason` is the rejection label metrics use. */
export const PROBLEMS = {
  bad_request: { status: 400, title: "Malformed request", reason: "bad_request" },
  missing_file: { status: 400, title: "No image in the request", reason: "missing_file" },
  too_many_images: { status: 400, title: "Too many images in one request", reason: "too_many_images" },
  invalid_parameter: { status: 400, title: "Invalid query parameter", reason: "invalid_parameter" },
  unauthorized: { status: 401, title: "API key required", reason: "unauthorized" },
  forbidden: { status: 403, title: "Not through the public port", reason: "forbidden" },
  insufficient_scope: { status: 403, title: "API key lacks the scope", reason: "insufficient_scope" },
  management_disabled: { status: 403, title: "Model management is off", reason: "management_disabled" },
  not_found: { status: 404, title: "Not found", reason: "not_found" },
  method_not_allowed: { status: 405, title: "Method not allowed", reason: "method_not_allowed" },
  body_timeout: { status: 408, title: "Request body not received in time", reason: "body_timeout" },
  payload_too_large: { status: 413, title: "Request body too large", reason: "too_large" },
  unsupported_media_type: {
    status: 415,
    title: "Unsupported image format",
    reason: "unsupported_media_type",
  },
  unsupported_encoding: {
    status: 415,
    title: "Unsupported content coding",
    reason: "unsupported_encoding",
  },
  undecodable_image: { status: 422, title: "Image cannot be decoded", reason: "undecodable" },
  too_many_pixels: { status: 422, title: "Image has too many pixels", reason: "too_many_pixels" },
  request_head_too_large: {
    status: 431,
    title: "Request headers too large",
    reason: "request_head_too_large",
  },
  client_closed: { status: 499, title: "Client closed the request", reason: "client_closed" },
  not_ready: { status: 503, title: "Model not ready", reason: "not_ready" },
  overloaded: { status: 503, title: "Server overloaded", reason: "overloaded" },
  timeout: { status: 504, title: "Request timed out before inference", reason: "timeout" },
  internal: { status: 500, title: "Internal server error", reason: "internal" },
  http_version_not_supported: {
    status: 505,
    title: "HTTP version not supported",
    reason: "http_version_not_supported",
  },
} as const;

export type ProblemCode = keyof typeof PROBLEMS;

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** Retry-After (seconds) on every answer that says the model is loading, failed or draining. */
export const NOT_READY_RETRY_AFTER = "5";

/**
 * What each error of the layers beneath is as a problem, by its code: the one table. A code not here
 * (the model's shape, a crashed worker, an image the gateway itself made non-finite) is a fault, a 500.
 */
const FROM_ERROR_CODE: ReadonlyMap<ErrorCode, { problem: ProblemCode; headers?: Record<string, string> }> =
  new Map<ErrorCode, { problem: ProblemCode; headers?: Record<string, string> }>([
    ["image_unsupported", { problem: "unsupported_media_type" }],
    ["image_malformed", { problem: "undecodable_image" }],
    ["decode_failed", { problem: "undecodable_image" }],
    ["pixel_limit", { problem: "too_many_pixels" }],
    ["overloaded", { problem: "overloaded", headers: { "retry-after": "1" } }],
    ["deadline_exceeded", { problem: "timeout" }],
    ["cancelled", { problem: "client_closed" }],
    ["draining", { problem: "not_ready", headers: { "retry-after": NOT_READY_RETRY_AFTER } }],
    ["not_ready", { problem: "not_ready", headers: { "retry-after": NOT_READY_RETRY_AFTER } }],
    // A tensor the client sent that drives the model to NaN or Infinity is the client's.
    ["non_finite_input", { problem: "bad_request" }],
    // A model (or version) the repository does not serve: never was, or was unloaded.
    ["unknown_model", { problem: "not_found" }],
  ]);

/** Maps the errors of the layers beneath to problems by their code; anything else is left for the 500 handler. */
export function asProblem(err: unknown): unknown {
  if (err instanceof ProblemError) return err;
  const code = errorCode(err);
  const known = code === undefined ? undefined : FROM_ERROR_CODE.get(code);
  if (!known) return err;
  return new ProblemError(known.problem, (err as Error).message, { ...known.headers });
}

/** Thrown by handlers; the app's error handler turns it into a problem response. */
export class ProblemError extends Error {
  readonly status: number;
  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly headers: Record<string, string> = {},
    options?: ErrorOptions,
  ) {
    super(detail, options);
    this.name = "ProblemError";
    this.status = PROBLEMS[code].status;
  }
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  instance?: string;
  request_id?: string;
}

export function problemBody(
  code: ProblemCode,
  detail: string,
  instance?: string,
  requestId?: string,
): ProblemBody {
  const p = PROBLEMS[code];
  return {
    type: `urn:inference-gateway:problem:${code}`,
    title: p.title,
    status: p.status,
    detail,
    code,
    ...(instance ? { instance } : {}),
    ...(requestId ? { request_id: requestId } : {}),
  };
}

export function problemResponse(
  code: ProblemCode,
  detail: string,
  options: { instance?: string; requestId?: string; headers?: Record<string, string> } = {},
): Response {
  const body = problemBody(code, detail, options.instance, options.requestId);
  return new Response(JSON.stringify(body), {
    status: body.status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...options.headers },
  });
}
