/**
 * `deno task key:new ID SCOPE…`: a new random API key, printed once, and the
 * entry to add to API_KEYS_FILE. The key is 256 random bits, base64url, after
 * a fixed prefix (`igw_`) that secret scanners and people can recognise; it is
 * not written anywhere, so it cannot be shown again: keep it where it goes.
 */
import { keyDigestHex } from "./credential.ts";
import { keyFileSchema, SCOPES } from "./key_file.ts";

export const KEY_PREFIX = "igw_";
/** Random bytes per key: 256 bits. */
export const KEY_BYTES = 32;

/** A new key: the prefix and KEY_BYTES random bytes, base64url without padding (43 characters). */
export function newKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(KEY_BYTES));
  return KEY_PREFIX + bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

export interface NewKeyEntry {
  key: string;
  entry: { id: string; sha256: string; scopes: string[] };
}

/** The key and its file entry, validated by the key file's own schema; throws a usage message otherwise. */
export async function newKeyEntry(id: string, scopes: string[]): Promise<NewKeyEntry> {
  const key = newKey();
  const entry = { id, sha256: await keyDigestHex(key), scopes };
  const result = keyFileSchema.safeParse({ keys: [entry] });
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue.path[2] ?? "entry";
    throw new Error(`Invalid ${String(field)}: expected ${issue.message}`);
  }
  return { key, entry };
}

const USAGE = `Usage: deno task key:new ID SCOPE...
  ID     a name for whoever holds the key (1 to 64 letters, digits, '.', '_' or '-')
  SCOPE  ${SCOPES.join(", ")} (one or more)`;

if (import.meta.main) {
  const [id, ...scopes] = Deno.args;
  if (!id || scopes.length === 0 || id === "--help" || id === "-h") {
    console.error(USAGE);
    Deno.exit(2);
  }
  try {
    const { key, entry } = await newKeyEntry(id, scopes);
    console.log(`Key for "${id}" (shown once; it is not stored anywhere):\n\n  ${key}\n`);
    console.log(
      `Add this entry to the "keys" list of API_KEYS_FILE (it holds the key's SHA-256, not the key):\n`,
    );
    console.log(`  ${JSON.stringify(entry)}\n`);
    console.log(`Send it as "Authorization: Bearer <key>" or "X-API-Key: <key>".`);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    Deno.exit(2);
  }
}
