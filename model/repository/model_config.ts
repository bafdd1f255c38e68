/**
 * A model's `config.json` in the repository: how it is served (precision,
 * default top k, batching) and which of its versions serve (the version
 * policy, in Triton's shape). Every field is optional; an absent one takes
 * the gateway's own setting, so an empty object (or no file) serves the model
 * as the environment says.
 */
import { z } from "zod";
import { PRECISIONS } from "../../config.ts";

const positiveVersion = z.number({ error: "a positive integer" }).int("a positive integer")
  .min(1, "a positive integer").max(2 ** 31 - 1, "a positive integer");

/** Triton's version_policy: `{"latest": {"num_versions": N}}`, `{"specific": {"versions": [...]}}` or `{"all": {}}`. */
export const versionPolicySchema = z.union([
  z.strictObject({
    latest: z.strictObject({
      num_versions: z.number().int().min(1, "at least 1").max(1000, "at most 1000"),
    }),
  }),
  z.strictObject({
    specific: z.strictObject({
      versions: z.array(positiveVersion).min(1, "at least one version").max(1000, "at most 1000 versions"),
    }),
  }),
  z.strictObject({ all: z.strictObject({}) }),
], { error: 'one of {"latest": {"num_versions": N}}, {"specific": {"versions": [...]}} or {"all": {}}' });

export type VersionPolicy = z.infer<typeof versionPolicySchema>;

/** Serve the highest version only, as Triton does without a policy. */
export const DEFAULT_VERSION_POLICY: VersionPolicy = { latest: { num_versions: 1 } };

export const modelConfigSchema = z.strictObject({
  /** Overrides MODEL_PRECISION for this model. */
  precision: z.enum(PRECISIONS, { error: `one of ${PRECISIONS.join(", ")}` }).optional(),
  /** Overrides TOP_K: how many classes an answer lists when the request does not say. */
  top_k: z.number().int().min(1, "from 1 to 20").max(20, "from 1 to 20").optional(),
  /** Overrides MAX_BATCH_SIZE. */
  max_batch_size: z.number().int().min(1, "from 1 to 64").max(64, "from 1 to 64").optional(),
  /** Overrides MAX_BATCH_DELAY_MS. */
  max_batch_delay_ms: z.number().int().min(0, "from 0 to 1000").max(1000, "from 0 to 1000").optional(),
  /** Overrides MAX_QUEUE: requests admitted for this model and not yet running. */
  max_queue: z.number().int().min(1, "from 1 to 100000").max(100_000, "from 1 to 100000").optional(),
  version_policy: versionPolicySchema.default(DEFAULT_VERSION_POLICY),
});

export type ModelConfig = z.infer<typeof modelConfigSchema>;

export class ModelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelConfigError";
  }
}

/**
 * Parses a config.json's text; throws a {@link ModelConfigError} naming the
 * field and what it accepts (`where` names the file).
 */
export function parseModelConfig(text: string, where = "config.json"): ModelConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ModelConfigError(`${where} is not JSON: ${(err as Error).message}`);
  }
  const result = modelConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue.path.map(String).join(".");
  const message = issue.code === "unrecognized_keys"
    ? `has unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`
    : `expected ${issue.message}`;
  throw new ModelConfigError(`${where}${field ? ` field ${field}` : ""} is invalid: ${message}`);
}
