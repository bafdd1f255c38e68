/**
 * Reads a request body with a hard size limit enforced while streaming (an
 * oversize upload is refused as soon as it crosses the limit, never buffered
 * whole) and a deadline for the whole body (a client trickling bytes cannot
 * hold its queue place and buffers forever).
 */
import type { ConnectionInfo } from "../core/connection.ts";
import { ProblemError } from "./problem.ts";

function tooLarge(limit: number): ProblemError {
  return new ProblemError("payload_too_large", `Request body exceeds the limit of ${limit} bytes`);
}

function tooSlow(timeoutMs: number): ProblemError {
  return new ProblemError("body_timeout", `The request body was not received within ${timeoutMs} ms`);
}

export async function readBodyLimited(
  request: Request,
  limit: number,
  timeoutMs = Infinity,
): Promise<Uint8Array<ArrayBuffer>> {
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
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = Number.isFinite(timeoutMs)
    ? new Promise<never>((_, reject) => timer = setTimeout(() => reject(tooSlow(timeoutMs)), timeoutMs))
    : undefined;
  expired?.catch(() => {});
  try {
    while (true) {
      const { done, value } = expired ? await Promise.race([reader.read(), expired]) : await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge(limit);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof ProblemError) {
      if (err.code === "body_timeout") await reader.cancel().catch(() => {});
      throw err;
    }
    throw new ProblemError("bad_request", "The request body could not be read to the end", {}, {
      cause: err,
    });
  } finally {
    clearTimeout(timer);
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

/**
 * Aborts when the client goes away before its answer, so queued work for it
 * is dropped. The server learns it from the connection (server/serve.ts);
 * in-process callers pass their own, or none.
 */
export function clientSignal(c: { env: Partial<ConnectionInfo> | undefined }): AbortSignal | undefined {
  return c.env?.clientGone;
}
