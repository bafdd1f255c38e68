/**
 * Errors that say what went wrong with a stable `code`, so a layer above
 * (routes/, the v2 protocol, a Worker's host) tells them apart by the code,
 * not by `instanceof` on a class it would otherwise have to import, and an
 * error that crossed a Worker boundary is still recognised.
 */

/**
 * Every code, written once. A new error kind adds its code here; routes map
 * codes to statuses in their own tables.
 */
export const ERROR_CODES = [
  // Admission and batching (model/runtime/batcher.ts)
  "overloaded",
  "deadline_exceeded",
  "cancelled",
  "draining",
  // The image (image/)
  "image_unsupported",
  "image_malformed",
  "pixel_limit",
  "decode_failed",
  // One request's inference (serving/infer.ts)
  "not_ready",
  "non_finite_input",
  "non_finite_output",
  // The model and its runtime (model/)
  "model_shape",
  "model_load",
  "worker_crashed",
  "download_failed",
  "calibration_failed",
  "already_quantized",
  // The model repository (model/repository/)
  "unknown_model",
  "version_load_failed",
  "upload_refused",
] as const;

export type ErrorCode = typeof ERROR_CODES[number];

const CODES: ReadonlySet<string> = new Set(ERROR_CODES);

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && CODES.has(value);
}

/**
 * The base of the house's errors: a message for people and a `code` for
 * programs. `name` is the subclass's, so logs and stack traces read as before.
 */
export class CodedError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The code `err` carries, if it is one of ours (a CodedError, or one rebuilt from a Worker's reply). */
export function errorCode(err: unknown): ErrorCode | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return isErrorCode(code) ? code : undefined;
}

/** What to show of anything thrown: an Error's message, else its string form. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
