/**
 * Models that never touch a disk: an ONNX file fetched into memory and
 * checked against its SHA-256 before anything parses it, or the synthetic
 * ResNet-50 built in memory. For MODEL_URL, and for runtimes with no
 * writable disk (the edge entry, docs/edge.md).
 */
import { createHash } from "node:crypto";
import { logger } from "../../observability/logger.ts";
import { buildSyntheticResNet50 } from "./synthetic_resnet50.ts";
import { DownloadError, openDownload } from "./download.ts";
import { errorMessage } from "../../core/errors.ts";

/** A body past this is refused while it streams: no ResNet-50 export comes near it. */
export const MAX_MODEL_BYTES = 1024 * 1024 * 1024;

export interface FetchModelOptions {
  url: string;
  /** Expected lowercase hex SHA-256. */
  sha256: string;
  /** Expected size, when known: the buffer is allocated once and a longer body is refused. */
  expectedBytes?: number;
  maxBytes?: number;
  /** Gives up when the server has not answered with headers by then; default 15 s. */
  connectTimeoutMs?: number;
  /** Aborts a stalled download; default 10 minutes. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface ModelBytes {
  bytes: Uint8Array;
  sha256: string;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Fetches a model into memory; resolves only if its SHA-256 matches, else throws {@link DownloadError}. */
export async function fetchModelBytes(options: FetchModelOptions): Promise<ModelBytes> {
  const { url, sha256 } = options;
  const maxBytes = options.expectedBytes ?? options.maxBytes ?? MAX_MODEL_BYTES;
  const log = logger("model");
  const response = await openDownload(url, options);
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body.cancel();
    throw new DownloadError(
      `Download of ${url} declares ${declared} bytes; at most ${maxBytes} are accepted`,
    );
  }
  log.info("Fetching model into memory from {url}", {
    url,
    bytes: Number.isFinite(declared) ? declared : null,
  });
  // One buffer of the declared size when there is one, so a 100 MB model is not held twice.
  let buffer = new Uint8Array(Number.isFinite(declared) ? declared : 16 * 1024 * 1024);
  let received = 0;
  const hash = createHash("sha256");
  try {
    for await (const chunk of response.body) {
      if (received + chunk.byteLength > maxBytes) {
        throw new DownloadError(`Download of ${url} is larger than ${maxBytes} bytes`);
      }
      if (received + chunk.byteLength > buffer.byteLength) {
        const grown = new Uint8Array(
          Math.min(maxBytes, Math.max(buffer.byteLength * 2, received + chunk.byteLength)),
        );
        grown.set(buffer.subarray(0, received));
        buffer = grown;
      }
      buffer.set(chunk, received);
      received += chunk.byteLength;
      hash.update(chunk);
    }
  } catch (err) {
    if (err instanceof DownloadError) throw err;
    throw new DownloadError(`Download of ${url} failed: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  const actual = hash.digest("hex");
  if (actual !== sha256) {
    throw new DownloadError(
      `Checksum mismatch for ${url}: expected sha256 ${sha256}, got ${actual} (${received} bytes); not loaded`,
    );
  }
  return { bytes: received === buffer.byteLength ? buffer : buffer.slice(0, received), sha256: actual };
}

/**
 * A model file read into one buffer of the file's size. Deno.readFile holds a
 * 100 MB model twice while it reads (measured: +196 MiB resident against +100),
 * and that transient is the peak of an edge isolate's start-up.
 */
export async function readModelFile(path: string): Promise<Uint8Array> {
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const bytes = new Uint8Array(size);
  let offset = 0;
  while (offset < size) {
    const n = await file.read(bytes.subarray(offset));
    if (n === null) throw new Error(`${path} ended after ${offset} of ${size} bytes`);
    offset += n;
  }
  return bytes;
}

/** The synthetic ResNet-50 of `seed`, built in memory (the same bytes `deno task model:synth` writes). */
export function syntheticModelBytes(seed: number): ModelBytes {
  const t0 = performance.now();
  const { bytes, stats } = buildSyntheticResNet50(seed);
  logger("model").info("Built synthetic ResNet-50 in memory ({parameters} parameters) in {ms} ms", {
    parameters: stats.parameters,
    ms: Math.round(performance.now() - t0),
  });
  return { bytes, sha256: sha256Hex(bytes) };
}
