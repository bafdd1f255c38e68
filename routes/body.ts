/**
 * Reads a request body with a hard size limit enforced while streaming (an
 * oversize upload is refused as soon as it crosses the limit, never buffered
 * whole) and a deadline for the whole body (a client trickling bytes cannot
 * hold its queue place and buffers forever). A gzip or deflate body
 * (Content-Encoding) is decompressed as it streams, the limit applying to
 * what it decompresses to; any other coding is a 415.
 */
import type { ConnectionInfo } from "../core/connection.ts";
import { ProblemError } from "./problem.ts";

function tooLarge(limit: number): ProblemError {
  return new ProblemError("payload_too_large", `Request body exceeds the limit of ${limit} bytes`);
}

/** The content codings a request body may carry, by their names in Content-Encoding (RFC 9110 8.4.1). */
const CODINGS: ReadonlyMap<string, CompressionFormat> = new Map([
  ["gzip", "gzip"],
  ["x-gzip", "gzip"],
  ["deflate", "deflate"],
]);
/** Codings applied one over another; more is no real client's and would chain a decoder each. */
const MAX_CODINGS = 2;
/**
 * Compressed bytes fed to a decoder at a time. Deno's DecompressionStream inflates a whole written chunk at
 * once (1 MB of gzip became one 1 GiB chunk), and deflate expands at most about 1032:1, so each step
 * yields at most about 1 MiB and the limit is checked between steps.
 */
const INFLATE_STEP = 1024;

/** The decoders a Content-Encoding value asks for, in the order to apply them; throws 415 for others. */
export function contentDecoders(header: string | null): CompressionFormat[] {
  if (header === null) return [];
  const codings = header.split(",").map((c) => c.trim().toLowerCase()).filter((c) =>
    c !== "" && c !== "identity"
  );
  if (codings.length > MAX_CODINGS) {
    throw new ProblemError(
      "unsupported_encoding",
      `Content-Encoding lists ${codings.length} codings; at most ${MAX_CODINGS} are accepted`,
    );
  }
  const formats = codings.map((c) => {
    const format = CODINGS.get(c);
    if (!format) {
      throw new ProblemError(
        "unsupported_encoding",
        `Content-Encoding "${c.slice(0, 64)}" is not supported; send gzip, deflate or identity`,
      );
    }
    return format;
  });
  // Listed in the order they were applied: undone last first.
  return formats.reverse();
}

/** Re-slices a stream into chunks of at most `size` bytes, one at a time (see INFLATE_STEP). */
function slices(size: number): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream<Uint8Array, Uint8Array>(
    {
      transform(chunk, controller) {
        for (let at = 0; at < chunk.byteLength; at += size) controller.enqueue(chunk.subarray(at, at + size));
      },
    },
    undefined,
    { highWaterMark: 0 },
  );
}

/** The body as sent, or as decompressed when it carries gzip or deflate. */
function decodedBody(
  body: ReadableStream<Uint8Array>,
  formats: CompressionFormat[],
): ReadableStream<Uint8Array> {
  let stream = body;
  for (const format of formats) {
    const decoder = new DecompressionStream(format) as unknown as TransformStream<
      Uint8Array<ArrayBuffer>,
      Uint8Array<ArrayBuffer>
    >;
    stream = stream.pipeThrough(slices(INFLATE_STEP)).pipeThrough(decoder);
  }
  return stream;
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
  const formats = contentDecoders(request.headers.get("content-encoding"));
  if (!request.body) return new Uint8Array(0);
  const reader = formats.length ? decodedBody(request.body, formats).getReader() : request.body.getReader();
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
      chunks.push(value as Uint8Array<ArrayBuffer>);
    }
  } catch (err) {
    if (err instanceof ProblemError) {
      if (err.code === "body_timeout") await reader.cancel().catch(() => {});
      throw err;
    }
    // Deno's decoders reject corrupt or truncated data with a TypeError.
    const detail = formats.length
      ? `The request body is not valid ${formats.join(" and ")} data, or could not be read to the end`
      : "The request body could not be read to the end";
    throw new ProblemError("bad_request", detail, {}, { cause: err });
  } finally {
    clearTimeout(timer);
  }
  if (chunks.length === 1) return chunks[0];
  const whole = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    whole.set(c, offset);
    offset += c.byteLength;
  }
  return whole;
}

/**
 * Aborts when the client goes away before its answer, so queued work for it
 * is dropped. The server learns it from the connection (server/serve.ts);
 * in-process callers pass their own, or none.
 */
export function clientSignal(c: { env: Partial<ConnectionInfo> | undefined }): AbortSignal | undefined {
  return c.env?.clientGone;
}
