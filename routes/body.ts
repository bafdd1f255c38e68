/**
 * Reads a request body with a hard size limit enforced while streaming: an
 * oversize upload is refused as soon as it crosses the limit, never buffered whole.
 */
import { ProblemError } from "./problem.ts";

function tooLarge(limit: number): ProblemError {
  return new ProblemError("payload_too_large", `Request body exceeds the limit of ${limit} bytes`);
}

export async function readBodyLimited(request: Request, limit: number): Promise<Uint8Array<ArrayBuffer>> {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    const n = Number(declared);
    if (!Number.isSafeInteger(n) || n < 0) throw new ProblemError("bad_request", "Content-Length is invalid");
    // Refuse before reading a byte.
    if (n > limit) throw tooLarge(limit);
  }
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge(limit);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof ProblemError) throw err;
    throw new ProblemError("bad_request", "The request body could not be read to the end", {}, {
      cause: err,
    });
  }
  if (chunks.length === 1) return chunks[0];
  const body = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    body.set(c, offset);
    offset += c.byteLength;
  }
  return body;
}
