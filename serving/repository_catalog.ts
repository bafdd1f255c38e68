/**
 * The models served, read from the model repository: every model that
 * serves (or is loading), under its name for tensors and its `-image` name
 * for encoded images, each with a live view of its default version and of
 * each version that serves. A view resolves through the registry whenever it
 * is read, so a request that takes a queue place on it takes it on the
 * version serving at that moment, and one that arrives after an unload finds
 * no model (404).
 */
import type { Repository } from "../model/repository/repository.ts";
import { errorCode } from "../core/errors.ts";
import {
  IMAGE_MODEL_SUFFIX,
  type ModelCatalog,
  type ModelKind,
  type ModelView,
  type ServedModel,
} from "./models.ts";

/** A live view of `model`'s `version` (its default version when undefined). */
export function versionView(repository: Repository, model: string, version?: string): ModelView {
  const resolved = () => {
    try {
      const { classifier, topK } = repository.registry.resolve(model, version);
      return { classifier, topK };
    } catch (err) {
      const code = errorCode(err);
      if (code === "not_ready") return { status: "loading" as const, error: (err as Error).message };
      if (code === "unknown_model") return { status: "failed" as const, error: (err as Error).message };
      throw err;
    }
  };
  return {
    get classifier() {
      return resolved().classifier;
    },
    get serving() {
      return resolved().classifier;
    },
    get status() {
      const r = resolved();
      return r.classifier ? "ready" : r.status!;
    },
    get error() {
      return resolved().error;
    },
    get topK() {
      return resolved().topK;
    },
  };
}

/** Whether `model` (and `version`) is one requests may name: serving or loading, not unknown or unloaded. */
function known(repository: Repository, model: string, version?: string): boolean {
  try {
    repository.registry.resolve(model, version);
    return true;
  } catch (err) {
    return errorCode(err) === "not_ready";
  }
}

export function repositoryCatalog(repository: Repository): ModelCatalog {
  const served = (base: string, kind: ModelKind): ServedModel => ({
    name: kind === "image" ? base + IMAGE_MODEL_SUFFIX : base,
    kind,
    state: versionView(repository, base),
    versions: () => repository.registry.servingVersions(base),
    version: (v) => known(repository, base, v) ? versionView(repository, base, v) : undefined,
  });
  const split = (name: string): [string, ModelKind] =>
    name.endsWith(IMAGE_MODEL_SUFFIX) && !repository.registry.models.includes(name)
      ? [name.slice(0, -IMAGE_MODEL_SUFFIX.length), "image"]
      : [name, "tensor"];
  return {
    list: () =>
      repository.registry.models.filter((m) => known(repository, m)).flatMap((m) => [
        served(m, "tensor"),
        served(m, "image"),
      ]),
    find: (name) => {
      const [base, kind] = split(name);
      return known(repository, base) ? served(base, kind) : undefined;
    },
    index: () => repository.registry.index(),
  };
}
