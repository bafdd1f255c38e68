/**
 * The states a model version is in, as the repository extension names them
 * (Triton's words): the one vocabulary the registry, the index, /ready, the
 * metrics and the docs derive theirs from.
 */

export const VERSION_STATES = ["READY", "LOADING", "UNLOADING", "UNAVAILABLE"] as const;
export type VersionState = typeof VERSION_STATES[number];

/** Why a version is UNAVAILABLE: refusals an operator can act on, each with one wording. */
export const UNAVAILABLE_REASONS = {
  corrupt_file: "the model file is not a loadable ONNX model",
  wrong_shape: "the model's input or output is not an image classifier's",
  int8_gate: "the int8 quality gate refused the quantized model",
  memory_limit: "loading it would exceed MODEL_MEMORY_LIMIT",
  labels: "its labels do not match the model's classes",
  config: "its config.json is invalid",
  removed: "its version directory is gone",
  unloaded: "it was unloaded",
  not_in_policy: "the version policy does not serve it",
  failed: "it failed to load",
} as const;
export type UnavailableReason = keyof typeof UNAVAILABLE_REASONS;
