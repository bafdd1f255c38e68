/**
 * The API key file (API_KEYS_FILE): one zod schema, parsed into the key set
 * the gateway checks credentials against. The file holds each key's SHA-256,
 * never the key: a leaked file (a backup, a ConfigMap dump) lets nobody in.
 *
 * ```json
 * {"keys": [{"id": "ci", "sha256": "<64 hex digits>", "scopes": ["infer", "admin"]}]}
 * ```
 *
 * The optional quota fields (`rate_per_second`, `burst`, `max_concurrency`)
 * are validated here so a typo stops the reload; admission control enforces them.
 */
import { z } from "zod";

/** What a key may do: `infer` (classify), `admin` (model management), `metrics` (a protected /metrics). */
export const SCOPES = ["infer", "admin", "metrics"] as const;
export type Scope = typeof SCOPES[number];

/** Keys in one file: enough for every team and pipeline, few enough that every check stays cheap. */
export const MAX_KEYS = 1000;
/** An id is a label on metrics and logs: short, and safe in both. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

const positiveInt = (what: string, max: number) =>
  z.number({ error: what }).int(what).min(1, what).max(max, what);

const keyEntry = z.object({
  id: z.string({ error: "a string" }).regex(KEY_ID_PATTERN, "1 to 64 letters, digits, '.', '_' or '-'"),
  sha256: z.string({ error: "a string" }).regex(
    /^[0-9a-f]{64}$/,
    "the key's SHA-256 as 64 lowercase hex digits (deno task key:new prints it)",
  ),
  scopes: z.array(z.enum(SCOPES, { error: `one of ${SCOPES.join(", ")}` }), { error: "a list of scopes" })
    .min(1, `at least one of ${SCOPES.join(", ")}`)
    .refine((s) => new Set(s).size === s.length, "each scope once"),
  rate_per_second: z.number({ error: "a number above 0, at most 1000000" })
    .gt(0, "a number above 0, at most 1000000").max(1_000_000, "a number above 0, at most 1000000")
    .optional(),
  burst: positiveInt("an integer from 1 to 1000000", 1_000_000).optional(),
  max_concurrency: positiveInt("an integer from 1 to 100000", 100_000).optional(),
}).strict().superRefine((entry, ctx) => {
  if (entry.burst !== undefined && entry.rate_per_second === undefined) {
    ctx.addIssue({ code: "custom", path: ["burst"], message: "burst needs rate_per_second beside it" });
  }
});

export const keyFileSchema = z.object({
  keys: z.array(keyEntry, { error: "a list of key entries" }).max(MAX_KEYS, `at most ${MAX_KEYS} keys`),
}).strict().superRefine((file, ctx) => {
  const ids = new Map<string, number>();
  const digests = new Map<string, number>();
  file.keys.forEach((entry, i) => {
    const id = ids.get(entry.id);
    if (id !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["keys", i, "id"],
        message: `"${entry.id}" is also keys[${id}]'s id`,
      });
    }
    ids.set(entry.id, i);
    const same = digests.get(entry.sha256);
    if (same !== undefined) {
      // Two ids for one key would make "who called" ambiguous.
      ctx.addIssue({ code: "custom", path: ["keys", i, "sha256"], message: `the same key as keys[${same}]` });
    }
    digests.set(entry.sha256, i);
  });
});

export type KeyFile = z.infer<typeof keyFileSchema>;

/** A caller's limits, for admission control; each absent field means no limit of that kind. */
export interface Quota {
  ratePerSecond?: number;
  burst?: number;
  maxConcurrency?: number;
}

export interface ApiKey {
  id: string;
  scopes: ReadonlySet<Scope>;
  /** SHA-256 of the key, 32 bytes. */
  digest: Uint8Array;
  quota: Quota;
}

export interface KeySet {
  keys: readonly ApiKey[];
  /** SHA-256 of the file's bytes: which version is being served (never the keys' hashes). */
  version: string;
}

export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyFileError";
  }
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function issuePath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) out += typeof part === "number" ? `[${part}]` : `${out ? "." : ""}${String(part)}`;
  return out || "the file";
}

/**
 * The key set in `bytes` (the file's contents). Throws KeyFileError naming
 * where the file is wrong; the message never quotes a digest.
 */
export async function parseKeyFile(bytes: Uint8Array<ArrayBuffer>): Promise<KeySet> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    // V8's message may quote the text around the error, and that text may be a digest: only where.
    const where = /line \d+ column \d+|position \d+/.exec(err instanceof Error ? err.message : "");
    throw new KeyFileError(`Not UTF-8 JSON${where ? ` (at ${where[0]})` : ""}`);
  }
  const keyField = findKeyField(json);
  if (keyField) {
    throw new KeyFileError(
      `${keyField} holds a key; the file holds only each key's sha256 (deno task key:new prints the entry)`,
    );
  }
  const result = keyFileSchema.safeParse(json);
  if (!result.success) {
    const issues = result.error.issues.slice(0, 5).map((i) => `${issuePath(i.path)}: ${i.message}`);
    const more = result.error.issues.length - issues.length;
    throw new KeyFileError(`${issues.join("; ")}${more > 0 ? `; and ${more} more` : ""}`);
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return {
    version: [...digest].map((b) => b.toString(16).padStart(2, "0")).join(""),
    keys: result.data.keys.map((entry) => ({
      id: entry.id,
      scopes: new Set(entry.scopes),
      digest: hexBytes(entry.sha256),
      quota: {
        ...(entry.rate_per_second !== undefined ? { ratePerSecond: entry.rate_per_second } : {}),
        ...(entry.burst !== undefined ? { burst: entry.burst } : {}),
        ...(entry.max_concurrency !== undefined ? { maxConcurrency: entry.max_concurrency } : {}),
      },
    })),
  };
}

/** `keys[i].key` (or `.secret`, `.token`): a key pasted where its hash belongs, refused by name. */
function findKeyField(json: unknown): string | undefined {
  if (json === null || typeof json !== "object" || !Array.isArray((json as { keys?: unknown }).keys)) {
    return undefined;
  }
  const keys = (json as { keys: unknown[] }).keys;
  for (let i = 0; i < keys.length; i++) {
    const entry = keys[i];
    if (entry === null || typeof entry !== "object") continue;
    for (const name of ["key", "secret", "token", "api_key"]) {
      if (Object.hasOwn(entry, name)) return `keys[${i}].${name}`;
    }
  }
  return undefined;
}
