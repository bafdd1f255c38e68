/**
 * Errors in the Open Inference Protocol's terms: `{"error": "..."}` with
 * application/json, for every answer under /v2. Gateway problems
 * (routes/problem.ts) are translated by their code: a problem with the image
 * is a 400 (the protocol has no 422, and its clients read any 4xx as the
 * request's fault), while access, routing, limits, content codings,
 * time-outs and overload keep their status.
 */
import { errorMessage } from "../../core/errors.ts";
import { asProblem, type ProblemCode, ProblemError, PROBLEMS } from "../problem.ts";

/** Problems the protocol reports as a plain 400: the image, which the gateway judges, was bad. */
const AS_BAD_REQUEST: ReadonlySet<ProblemCode> = new Set<ProblemCode>([
  "unsupported_media_type",
  "undecodable_image",
  "too_many_pixels",
]);

/** An answer in the protocol's terms. */
export class V2Error extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Rejection reason for requests_rejected_total. */
    readonly reason: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "V2Error";
  }
}

export const bad = (message: string): V2Error => new V2Error(400, message, "bad_request");

/** A failure of one item of a batch: the message says which. */
export class ItemError extends Error {
  constructor(readonly label: string, override readonly cause: unknown) {
    // The cause's message too: a fault is logged by this error's string.
    super(`${label}: ${errorMessage(cause)}`);
    this.name = "ItemError";
  }
}

/** Any error in the protocol's terms, or undefined for a fault (a 500, logged). */
export function toV2Error(err: unknown): V2Error | undefined {
  if (err instanceof V2Error) return err;
  const where = err instanceof ItemError ? `${err.label}: ` : "";
  const inner = err instanceof ItemError ? err.cause : err;
  if (inner instanceof V2Error) {
    return new V2Error(inner.status, where + inner.message, inner.reason, inner.headers);
  }
  const problem = asProblem(inner);
  if (!(problem instanceof ProblemError)) return undefined;
  const status = AS_BAD_REQUEST.has(problem.code) ? 400 : problem.status;
  return new V2Error(
    status,
    where + problem.detail,
    PROBLEMS[problem.code].reason,
    problem.headers,
  );
}

/** The protocol's error body. Built by hand: 499 (client closed) is not a status Hono's c.json accepts. */
export function v2ErrorResponse(
  status: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify({ error: message }), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}
