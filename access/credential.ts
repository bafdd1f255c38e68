/**
 * The credential check: which key, if any, a request presents. Keys come as
 * `Authorization: Bearer <key>` (RFC 6750) or `X-API-Key: <key>`. The
 * presented key is hashed with SHA-256 and the digest compared with every
 * entry's, each comparison over all 32 bytes and with no early exit, so the
 * time taken says nothing about how close a guess came nor which entry
 * matched. The key itself is never stored, only hashed and dropped.
 */
import type { ApiKey, KeySet } from "./key_file.ts";

/** Why a request was not let through: the `reason` label of auth_failures_total. */
export const AUTH_FAILURES = ["missing", "unknown", "scope"] as const;
export type AuthFailure = typeof AUTH_FAILURES[number];

export type Presented =
  | { kind: "key"; key: string }
  | { kind: "missing" }
  /** Something was sent but it cannot be a key: both headers with different keys, an empty bearer token. */
  | { kind: "invalid"; why: string };

/** RFC 7235: the scheme is case-insensitive, then one or more spaces, then the token. */
const BEARER = /^bearer +(\S.*)$/i;

/** The key a request presents, from its headers. */
export function presentedKey(headers: Headers): Presented {
  const authorization = headers.get("authorization");
  const apiKey = headers.get("x-api-key")?.trim();
  let bearer: string | undefined;
  if (authorization !== null) {
    const match = BEARER.exec(authorization.trim());
    if (match) bearer = match[1].trim();
    else if (/^bearer *$/i.test(authorization.trim())) return { kind: "invalid", why: "empty bearer token" };
  }
  if (bearer !== undefined && apiKey) {
    // Two keys at once is a client bug; picking one would hide it, or let a proxy's key shadow the caller's.
    if (!equalStrings(bearer, apiKey)) {
      return { kind: "invalid", why: "Authorization and X-API-Key carry different keys" };
    }
  }
  const key = bearer ?? (apiKey || undefined);
  return key === undefined ? { kind: "missing" } : { kind: "key", key };
}

const encoder = new TextEncoder();

/** 1 when the two 32-byte digests are equal, else 0; always reads every byte. */
function digestsEqual(a: Uint8Array, b: Uint8Array): number {
  let diff = a.length ^ b.length;
  for (let i = 0; i < 32; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  // 0 -> 1, anything in 1..255 -> 0, without a branch.
  return ((diff - 1) >>> 31) & 1;
}

/** String equality without an early exit (two client-sent values; lengths may differ). */
function equalStrings(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  let diff = x.length ^ y.length;
  const n = Math.max(x.length, y.length);
  for (let i = 0; i < n; i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** SHA-256 of a key as `deno task key:new` and the key file write it: 64 lowercase hex digits. */
export async function keyDigestHex(key: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(key)));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The entry whose digest is the presented key's, or undefined. Every entry is
 * compared, whichever matches; the index is selected arithmetically.
 */
export async function findKey(set: KeySet, key: string): Promise<ApiKey | undefined> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(key)));
  let match = -1;
  for (let i = 0; i < set.keys.length; i++) {
    const mask = -digestsEqual(digest, set.keys[i].digest); // all ones on a match, else 0
    match = (match & ~mask) | (i & mask);
  }
  return match >= 0 ? set.keys[match] : undefined;
}
