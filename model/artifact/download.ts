/**
 * Downloads a model file with its checksum verified: streamed to a temporary
 * file beside the target, hashed while it streams, renamed into place only
 * when the SHA-256 matches. A crash or a bad mirror never leaves a truncated
 * or tampered file where the loader would trust it.
 */
import { createHash } from "node:crypto";
import { CodedError, errorMessage } from "../../core/errors.ts";

export interface DownloadOptions {
  url: string;
  /** Expected lowercase hex SHA-256. */
  sha256: string;
  /** Final path; the temporary file is `${dest}.partial-<random>`. */
  dest: string;
  /** Expected size, when known: used for progress and to stop an over-long body early. */
  expectedBytes?: number;
  /** Called at most every `progressIntervalMs` and once at the end. */
  onProgress?: (received: number, total: number | undefined) => void;
  progressIntervalMs?: number;
  /** Gives up when the server has not answered with headers by then; default 15 s. */
  connectTimeoutMs?: number;
  /** Aborts a stalled download; default 10 minutes. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export class DownloadError extends CodedError {
  constructor(message: string, options?: ErrorOptions) {
    super("download_failed", message, options);
  }
}

/** SHA-256 of a file, streamed (model files are around 100 MB). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/**
 * Opens a download: resolves with a 2xx response whose body is still to be
 * read. Gives up when the server has sent no headers within
 * `connectTimeoutMs`, and aborts the body once `timeoutMs` has passed since
 * the start; every failure is a {@link DownloadError} naming the URL.
 */
export async function openDownload(
  url: string,
  { connectTimeoutMs = 15_000, timeoutMs = 10 * 60_000, fetch: doFetch = fetch }: {
    connectTimeoutMs?: number;
    timeoutMs?: number;
    fetch?: typeof fetch;
  } = {},
): Promise<Response & { body: ReadableStream<Uint8Array> }> {
  const connect = new AbortController();
  const connectTimer = setTimeout(() => connect.abort(new Error("no answer in time")), connectTimeoutMs);
  let response: Response;
  try {
    response = await doFetch(url, {
      signal: AbortSignal.any([connect.signal, AbortSignal.timeout(timeoutMs)]),
      redirect: "follow",
    });
  } catch (err) {
    throw new DownloadError(`Cannot reach ${url}: ${errorMessage(err)}`, {
      cause: err,
    });
  } finally {
    clearTimeout(connectTimer);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new DownloadError(`Download of ${url} failed with HTTP ${response.status}`);
  }
  return response as Response & { body: ReadableStream<Uint8Array> };
}

export async function downloadVerified(options: DownloadOptions): Promise<void> {
  const {
    url,
    sha256,
    dest,
    expectedBytes,
    onProgress,
    progressIntervalMs = 2000,
    connectTimeoutMs = 15_000,
    timeoutMs = 10 * 60_000,
  } = options;
  const tmp = `${dest}.partial-${crypto.randomUUID().slice(0, 8)}`;
  const response = await openDownload(url, { connectTimeoutMs, timeoutMs, fetch: options.fetch });
  const declared = Number(response.headers.get("content-length") ?? NaN);
  const total = Number.isFinite(declared) ? declared : expectedBytes;
  const hash = createHash("sha256");
  let received = 0;
  let lastReport = 0;
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      for await (const chunk of response.body) {
        received += chunk.byteLength;
        if (expectedBytes !== undefined && received > expectedBytes) {
          throw new DownloadError(`Download of ${url} is larger than the expected ${expectedBytes} bytes`);
        }
        hash.update(chunk);
        let written = 0;
        while (written < chunk.byteLength) written += await file.write(chunk.subarray(written));
        const now = performance.now();
        if (onProgress && now - lastReport >= progressIntervalMs) {
          lastReport = now;
          onProgress(received, total);
        }
      }
      await file.sync();
    } finally {
      file.close();
    }
    onProgress?.(received, total);
    const actual = hash.digest("hex");
    if (actual !== sha256) {
      throw new DownloadError(
        `Checksum mismatch for ${url}: expected sha256 ${sha256}, got ${actual} (${received} bytes); file deleted`,
      );
    }
    await Deno.rename(tmp, dest);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    if (err instanceof DownloadError) throw err;
    throw new DownloadError(`Download of ${url} failed: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}
