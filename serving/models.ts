/**
 * The models this gateway serves, by name: the one list every protocol reads
 * (v2's metadata, readiness, repository index and model list; a gRPC server's
 * too). Today it is fixed at startup: the network under MODEL_NAME, and the
 * same network behind image decoding under MODEL_NAME-image, sharing one
 * model state. A model repository replaces it by implementing ModelCatalog.
 */
import type { IndexEntry } from "../model/repository/registry.ts";
import type { ModelState } from "../model/runtime/state.ts";

/** How a model takes its input: preprocessed FP32 tensors, or encoded image files. */
export const MODEL_KINDS = ["tensor", "image"] as const;
export type ModelKind = typeof MODEL_KINDS[number];

/** What a request reads of a model (or of one of its versions): its status and the classifier serving it. */
export type ModelView = Pick<ModelState, "status" | "classifier" | "error" | "serving"> & {
  /** Classes an answer ranks when the request does not say (a repository model's config.json top_k). */
  readonly topK?: number;
};

export interface ServedModel {
  name: string;
  kind: ModelKind;
  /** Loading, ready, failed or draining, and the classifier once loaded (its default version's). */
  state: ModelView;
  /** The versions serving, highest first (a repository model; otherwise the one the classifier names). */
  versions?(): string[];
  /** One version's view; undefined for a version that does not serve. */
  version?(version: string): ModelView | undefined;
}

export interface ModelCatalog {
  /** Every served model, in a stable order. */
  list(): readonly ServedModel[];
  /** The model of that name; undefined for a name this server does not serve. */
  find(name: string): ServedModel | undefined;
  /** Every model and version known, with its state and reason (a repository's index). */
  index?(): IndexEntry[];
}

/**
 * The view a request for `version` of `model` reads (the default version's without one); undefined
 * when that version does not serve: for a single model, when the loaded one has another version.
 */
export function viewOf(model: ServedModel, version?: string): ModelView | undefined {
  if (version === undefined) return model.state;
  if (model.version) return model.version(version);
  const classifier = model.state.classifier;
  return classifier && classifier.info.version !== version ? undefined : model.state;
}

/** Appended to MODEL_NAME for the model that takes encoded images. */
export const IMAGE_MODEL_SUFFIX = "-image";

/** The two names of the one network this gateway loads. */
export function fixedCatalog(modelName: string, state: ModelState): ModelCatalog {
  const models: ServedModel[] = [
    { name: modelName, kind: "tensor", state },
    { name: modelName + IMAGE_MODEL_SUFFIX, kind: "image", state },
  ];
  // A Map: the name comes from the request, and a plain object would answer "constructor".
  const byName = new Map(models.map((m) => [m.name, m]));
  return { list: () => models, find: (name) => byName.get(name) };
}
