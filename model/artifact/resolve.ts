/**
 * Decides which ONNX file to serve (MODEL_SOURCE) and makes sure it is on
 * disk: a given file, the ONNX model zoo's pretrained ResNet-50 (checksum
 * verified), or a synthetic ResNet-50 built from a seed. A model from
 * MODEL_URL, and any model where there is no writable disk, is held in
 * memory instead (model_bytes.ts).
 */
import type { Config } from "../../config.ts";
import { logger } from "../../observability/logger.ts";
import { zooFile } from "./zoo.ts";
import type { ModelSource, Precision, Weights } from "./types.ts";
import { inspectModelBytes, inspectModelFile } from "./inspect.ts";
import { fetchModelBytes, sha256Hex, syntheticModelBytes } from "./model_bytes.ts";
import { buildSyntheticResNet50 } from "./synthetic_resnet50.ts";
import { downloadVerified, sha256File } from "./download.ts";
import { CodedError, errorMessage } from "../../core/errors.ts";

export interface ResolvedModel {
  /** The file; for a model in memory, where it came from (its URL, or memory:…). */
  path: string;
  source: ModelSource;
  weights: Weights;
  sha256: string;
  /** Whether the graph is already quantized (QDQ or QOperator): it is then served as it is. */
  quantized: boolean;
  /** The model itself when it has no file. */
  bytes?: Uint8Array;
}

export interface ResolveOptions {
  /** false: write nothing; downloads and the synthetic model stay in memory. Default true. */
  disk?: boolean;
}

export class ModelLoadError extends CodedError {
  constructor(message: string, options?: ErrorOptions) {
    super("model_load", message, options);
  }
}

type ModelConfig =
  & Pick<
    Config,
    | "MODEL_SOURCE"
    | "MODEL_PATH"
    | "MODEL_DIR"
    | "MODEL_ZOO_URL"
    | "MODEL_ZOO_SHA256"
    | "SYNTHETIC_SEED"
  >
  & Partial<Pick<Config, "MODEL_URL" | "MODEL_SHA256">>
  & Partial<Pick<Config, "MODEL_ZOO_INT8_URL" | "MODEL_ZOO_INT8_SHA256">>;

export function syntheticPath(config: ModelConfig): string {
  return `${config.MODEL_DIR}/resnet50-synthetic-seed${config.SYNTHETIC_SEED}.onnx`;
}

/**
 * Whether `path` is a file. `mayBeUnreadable`: a cache the process may not
 * read (an edge runtime's) counts as empty.
 */
export async function fileExists(path: string, mayBeUnreadable = false): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    if (mayBeUnreadable && err instanceof Deno.errors.NotCapable) return false;
    throw err;
  }
}

/** MODEL_URL (or the zoo where nothing may be written), fetched into memory and verified. */
async function fetchToMemory(
  url: string,
  sha256: string,
  source: "url" | "zoo",
  expectedBytes?: number,
  fetchImpl?: typeof fetch,
): Promise<ResolvedModel> {
  const { bytes } = await fetchModelBytes({ url, sha256, expectedBytes, fetch: fetchImpl });
  const { weights, quantized } = await inspectModelBytes(bytes, sha256);
  return { path: url, source, weights, sha256, quantized, bytes };
}

function syntheticInMemory(config: ModelConfig): ResolvedModel {
  const { bytes, sha256 } = syntheticModelBytes(config.SYNTHETIC_SEED);
  return {
    path: `memory:resnet50-synthetic-seed${config.SYNTHETIC_SEED}`,
    source: "synthetic",
    weights: "synthetic",
    sha256,
    quantized: false,
    bytes,
  };
}

async function fromFile(path: string): Promise<ResolvedModel> {
  try {
    if (!(await fileExists(path))) {
      throw new ModelLoadError(`MODEL_PATH ${path} does not exist or is not a file`);
    }
    const { weights, sha256, quantized } = await inspectModelFile(path);
    return { path, source: "file", weights, sha256, quantized };
  } catch (err) {
    // Deno's own message names the path and the flag, not the variable that chose it.
    if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
      throw new ModelLoadError(
        `MODEL_PATH ${path} may not be read: the gateway may read only the paths of its permission set ` +
          `(deno.json "permissions"; ./models by default), so put the model there (${err.message})`,
        { cause: err },
      );
    }
    throw err;
  }
}

/** A cached zoo file is used only if its checksum still matches. */
async function cachedZoo(
  config: ModelConfig,
  precision: Precision = "fp32",
  mayBeUnreadable = false,
): Promise<ResolvedModel | undefined> {
  const file = zooFile(config, precision);
  const path = file.path;
  if (!(await fileExists(path, mayBeUnreadable))) return undefined;
  const { sha256, quantized } = await inspectModelFile(path);
  if (sha256 !== file.sha256) {
    logger("model").warn("Cached zoo {what} {path} has sha256 {sha256}, expected {expected}; ignoring it", {
      what: file.what,
      path,
      sha256,
      expected: file.sha256,
    });
    return undefined;
  }
  return { path, source: "zoo", weights: "pretrained", sha256, quantized };
}

async function downloadZoo(
  config: ModelConfig,
  fetchImpl?: typeof fetch,
  precision: Precision = "fp32",
): Promise<ResolvedModel> {
  const file = zooFile(config, precision);
  const path = file.path;
  await Deno.mkdir(config.MODEL_DIR, { recursive: true });
  const log = logger("model");
  log.info("Downloading {what} from {url}", { what: file.what, url: file.url });
  await downloadVerified({
    url: file.url,
    sha256: file.sha256,
    dest: path,
    expectedBytes: file.expectedBytes,
    fetch: fetchImpl,
    onProgress: (received, total) =>
      log.info("Model download: {received_mb} MB of {total_mb} MB", {
        received_mb: Math.round(received / 1e6),
        total_mb: total ? Math.round(total / 1e6) : "unknown",
      }),
  });
  // The zoo's files are known: its int8 file is quantized, its fp32 one is not.
  return { path, source: "zoo", weights: "pretrained", sha256: file.sha256, quantized: precision === "int8" };
}

/** The zoo's int8 ResNet-50: the verified cached file, else a verified download. */
export async function resolveZooInt8(config: ModelConfig, fetchImpl?: typeof fetch): Promise<ResolvedModel> {
  return (await cachedZoo(config, "int8")) ?? await downloadZoo(config, fetchImpl, "int8");
}

/** Builds (or reuses) the synthetic model; written via a temporary file so a crash leaves no half file. */
export async function ensureSynthetic(config: ModelConfig): Promise<ResolvedModel> {
  const path = syntheticPath(config);
  const synthetic = { path, source: "synthetic", weights: "synthetic", quantized: false } as const;
  if (await fileExists(path)) return { ...synthetic, sha256: await sha256File(path) };
  await Deno.mkdir(config.MODEL_DIR, { recursive: true });
  const t0 = performance.now();
  const { bytes, stats } = buildSyntheticResNet50(config.SYNTHETIC_SEED);
  const tmp = `${path}.partial-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
  logger("model").info("Built synthetic ResNet-50 ({parameters} parameters, {gmac} GMAC) in {ms} ms", {
    parameters: stats.parameters,
    gmac: +(stats.macs / 1e9).toFixed(2),
    ms: Math.round(performance.now() - t0),
    path,
  });
  // The bytes just written: hashing them spares reading the file back.
  return { ...synthetic, sha256: sha256Hex(bytes) };
}

/** Resolves MODEL_SOURCE to a file on disk, or to bytes in memory (MODEL_URL, or `disk: false`). */
export async function resolveModel(
  config: ModelConfig,
  fetchImpl?: typeof fetch,
  options: ResolveOptions = {},
): Promise<ResolvedModel> {
  const disk = options.disk ?? true;
  const download = () => {
    if (disk) return downloadZoo(config, fetchImpl);
    const file = zooFile(config, "fp32");
    return fetchToMemory(file.url, file.sha256, "zoo", file.expectedBytes, fetchImpl);
  };
  const synthetic = async (): Promise<ResolvedModel> => {
    if (disk) return await ensureSynthetic(config);
    // One shipped with the code (`deno task model:synth` before deploying) is read, not rebuilt.
    const path = syntheticPath(config);
    if (await fileExists(path, true)) {
      return {
        path,
        source: "synthetic",
        weights: "synthetic",
        sha256: await sha256File(path),
        quantized: false,
      };
    }
    return syntheticInMemory(config);
  };
  const url = () => fetchToMemory(config.MODEL_URL!, config.MODEL_SHA256!, "url", undefined, fetchImpl);
  switch (config.MODEL_SOURCE) {
    case "file":
      return await fromFile(config.MODEL_PATH!);
    case "url":
      return await url();
    case "zoo":
      return (await cachedZoo(config, "fp32", !disk)) ?? await download();
    case "synthetic":
      return await synthetic();
    case "auto": {
      if (config.MODEL_PATH) return await fromFile(config.MODEL_PATH);
      if (config.MODEL_URL) return await url();
      const cached = await cachedZoo(config, "fp32", !disk);
      if (cached) return cached;
      try {
        return await download();
      } catch (err) {
        logger("model").warn("Pretrained model unavailable ({reason}); falling back to synthetic weights", {
          reason: errorMessage(err),
        });
        return await synthetic();
      }
    }
  }
}
