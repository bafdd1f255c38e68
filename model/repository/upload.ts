/**
 * A model sent in a load request, as Triton's `file:` parameters carry it
 * (`file:<version>/model.onnx`, `file:labels.txt`, and `config` for
 * config.json), written into the repository so that a restart or a poll sees
 * what was loaded. Each file is written under a hidden name and renamed into
 * place, so neither a poll nor a crash ever sees half of one. A version that
 * exists is never overwritten: versions are immutable, a new one gets a new
 * number.
 */
import { MODEL_NAME_PATTERN, MODEL_NAME_RULE } from "../../config.ts";
import { CodedError } from "../../core/errors.ts";
import { parseModelConfig } from "./model_config.ts";
import { CONFIG_FILE, LABELS_FILE, MODEL_FILE, parseVersion } from "./scan.ts";

/** The request cannot be stored; `status` is 400 (malformed) or 409 (conflicts with the repository). */
export class UploadError extends CodedError {
  constructor(readonly status: 400 | 409, message: string) {
    super("upload_refused", message);
  }
}

export interface Upload {
  /** Paths inside the model directory (what follows `file:`) and their bytes. */
  files: ReadonlyMap<string, Uint8Array>;
  /** config.json's text, if sent. */
  config?: string;
}

export interface StoredUpload {
  /** Versions written, ascending. */
  versions: number[];
  /** Undoes the upload (a version that then fails to load is not left behind). */
  discard(): Promise<void>;
}

const MODEL_PATH = new RegExp(`^([^/]+)/${MODEL_FILE.replace(".", "\\.")}$`);

/** Which version each file path is for; refuses anything but `<version>/model.onnx` and `labels.txt`. */
export function planUpload(upload: Upload): { versions: Map<number, Uint8Array>; labels?: Uint8Array } {
  const versions = new Map<number, Uint8Array>();
  let labels: Uint8Array | undefined;
  for (const [path, bytes] of upload.files) {
    if (path === LABELS_FILE) {
      labels = bytes;
      continue;
    }
    const match = MODEL_PATH.exec(path);
    const version = match ? parseVersion(match[1]) : undefined;
    if (version === undefined) {
      throw new UploadError(
        400,
        `file:${path} is not a file a model may have; send file:<version>/${MODEL_FILE} (a positive integer ` +
          `version) and optionally file:${LABELS_FILE}`,
      );
    }
    if (bytes.byteLength === 0) throw new UploadError(400, `file:${path} is empty`);
    versions.set(version, bytes);
  }
  if (versions.size === 0 && upload.files.size > 0) {
    throw new UploadError(400, `The files sent hold no model: send file:<version>/${MODEL_FILE}`);
  }
  return { versions, ...(labels ? { labels } : {}) };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

async function replaceFile(path: string, bytes: Uint8Array): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  const tmp = `${dir}/.upload-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
}

/** Writes `upload` into `<root>/<model>/`; see the module's comment. */
export async function storeUpload(root: string, model: string, upload: Upload): Promise<StoredUpload> {
  if (!MODEL_NAME_PATTERN.test(model) || model.startsWith(".")) {
    throw new UploadError(400, `"${model}" is not a model name (${MODEL_NAME_RULE})`);
  }
  const plan = planUpload(upload);
  if (upload.config !== undefined) {
    try {
      parseModelConfig(upload.config, "config");
    } catch (err) {
      throw new UploadError(400, (err as Error).message);
    }
  }
  const dir = `${root}/${model}`;
  for (const version of plan.versions.keys()) {
    if (await exists(`${dir}/${version}`)) {
      throw new UploadError(
        409,
        `Model "${model}" already has a version ${version}; versions are not overwritten, send a new number`,
      );
    }
  }
  const created = !(await exists(dir));
  await Deno.mkdir(dir, { recursive: true });
  const written: number[] = [];
  const discard = async () => {
    for (const v of written) await Deno.remove(`${dir}/${v}`, { recursive: true }).catch(() => {});
    if (created) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    if (upload.config !== undefined) {
      await replaceFile(`${dir}/${CONFIG_FILE}`, new TextEncoder().encode(upload.config));
    }
    if (plan.labels) await replaceFile(`${dir}/${LABELS_FILE}`, plan.labels);
    for (const [version, bytes] of [...plan.versions].sort((a, b) => a[0] - b[0])) {
      const hidden = `${dir}/.upload-${version}-${crypto.randomUUID().slice(0, 8)}`;
      await Deno.mkdir(hidden);
      await Deno.writeFile(`${hidden}/${MODEL_FILE}`, bytes);
      await Deno.rename(hidden, `${dir}/${version}`);
      written.push(version);
    }
  } catch (err) {
    await discard();
    if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
      throw new UploadError(
        409,
        `The repository ${root} may not be written (${err.message}); a model can be sent in a load request only ` +
          "where the gateway may write its repository",
      );
    }
    throw err;
  }
  return { versions: written, discard };
}
