/**
 * Reads a model repository laid out as Triton's is:
 *
 *     <repository>/<model>/config.json      optional (model_config.ts)
 *     <repository>/<model>/labels.txt       optional, one class name a line
 *     <repository>/<model>/<version>/model.onnx
 *
 * Versions are positive integers. Entries starting with "." are skipped, so a
 * version can be copied in under a hidden name and renamed into place in one
 * step. Anything else that does not fit is reported, not fatal: one bad model
 * never hides the others.
 */
import { MODEL_NAME_PATTERN, MODEL_NAME_RULE } from "../../config.ts";
import { type ModelConfig, parseModelConfig } from "./model_config.ts";

export const MODEL_FILE = "model.onnx";
export const LABELS_FILE = "labels.txt";
export const CONFIG_FILE = "config.json";

const VERSION_PATTERN = /^[1-9][0-9]{0,9}$/;
const MAX_VERSION = 2 ** 31 - 1;

export interface ScannedVersion {
  version: number;
  /** The model file. */
  path: string;
  /** Size and modification time, so a poller can tell a file still being written from a settled one. */
  bytes: number;
  mtimeMs: number;
}

export interface ScannedModel {
  name: string;
  dir: string;
  /** Ascending. */
  versions: ScannedVersion[];
  labelsPath?: string;
  /** The parsed config.json, or `{}` defaults when there is none; absent when it is invalid. */
  config?: ModelConfig;
  /** Why config.json was refused; the model then serves nothing until it is fixed. */
  configError?: string;
}

export interface RepositoryScan {
  models: ScannedModel[];
  /** Entries that look meant for the repository but do not fit it, and why. */
  ignored: Array<{ path: string; reason: string }>;
}

/** The version number a directory name stands for, or undefined. */
export function parseVersion(name: string): number | undefined {
  if (!VERSION_PATTERN.test(name)) return undefined;
  const n = Number(name);
  return n <= MAX_VERSION ? n : undefined;
}

async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

async function sortedEntries(dir: string): Promise<Deno.DirEntry[]> {
  const entries: Deno.DirEntry[] = [];
  for await (const entry of Deno.readDir(dir)) if (!entry.name.startsWith(".")) entries.push(entry);
  return entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

async function scanModel(
  root: string,
  name: string,
  ignored: RepositoryScan["ignored"],
): Promise<ScannedModel> {
  const dir = `${root}/${name}`;
  const model: ScannedModel = { name, dir, versions: [] };
  for (const entry of await sortedEntries(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.name === CONFIG_FILE || entry.name === LABELS_FILE) continue;
    const version = parseVersion(entry.name);
    if (!entry.isDirectory || version === undefined) {
      ignored.push({ path, reason: "not a version directory (a positive integer)" });
      continue;
    }
    const file = `${path}/${MODEL_FILE}`;
    const info = await statOrUndefined(file);
    if (!info?.isFile) {
      ignored.push({ path, reason: `no ${MODEL_FILE} in it` });
      continue;
    }
    model.versions.push({ version, path: file, bytes: info.size, mtimeMs: info.mtime?.getTime() ?? 0 });
  }
  model.versions.sort((a, b) => a.version - b.version);
  if ((await statOrUndefined(`${dir}/${LABELS_FILE}`))?.isFile) model.labelsPath = `${dir}/${LABELS_FILE}`;
  const configPath = `${dir}/${CONFIG_FILE}`;
  if ((await statOrUndefined(configPath))?.isFile) {
    try {
      model.config = parseModelConfig(await Deno.readTextFile(configPath), configPath);
    } catch (err) {
      model.configError = (err as Error).message;
    }
  } else {
    model.config = parseModelConfig("{}");
  }
  return model;
}

/** Scans one model's directory (a load request); throws NotFound if it has none. */
export async function scanModelDir(root: string, name: string): Promise<ScannedModel> {
  if (!MODEL_NAME_PATTERN.test(name) || name.startsWith(".")) {
    throw new Deno.errors.NotFound(`"${name}" is not a model name (${MODEL_NAME_RULE})`);
  }
  const info = await Deno.stat(`${root}/${name}`).catch((err) => {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  });
  if (!info?.isDirectory) throw new Deno.errors.NotFound(`The repository has no model "${name}"`);
  return await scanModel(root, name, []);
}

/** Scans `root`; throws only if `root` itself cannot be read. */
export async function scanRepository(root: string): Promise<RepositoryScan> {
  const scan: RepositoryScan = { models: [], ignored: [] };
  for (const entry of await sortedEntries(root)) {
    const path = `${root}/${entry.name}`;
    if (!entry.isDirectory) {
      scan.ignored.push({ path, reason: "not a model directory" });
      continue;
    }
    if (!MODEL_NAME_PATTERN.test(entry.name)) {
      scan.ignored.push({ path, reason: `not a model name (${MODEL_NAME_RULE})` });
      continue;
    }
    scan.models.push(await scanModel(root, entry.name, scan.ignored));
  }
  return scan;
}
