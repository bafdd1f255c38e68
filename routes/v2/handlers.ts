/**
 * What each v2 route does. The inference itself is serving/infer.ts's
 * sequence, shared with /predict; here are only the protocol's parts: which
 * model a name means, its metadata and configuration, and the codec.
 */
import type { Context } from "@hono/hono";
import type { z } from "@hono/zod-openapi";
import type { Config } from "../../config.ts";
import type { Classification, Classifier, Inference } from "../../model/runtime/classifier.ts";
import type { ModelInfo } from "../../model/runtime/runner.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { runInference } from "../../serving/infer.ts";
import { errorCode } from "../../core/errors.ts";
import {
  IMAGE_MODEL_SUFFIX,
  type ModelCatalog,
  type ModelView,
  type ServedModel,
  viewOf,
} from "../../serving/models.ts";
import type { ModelStatistics } from "../../serving/stats.ts";
import { clientSignal, readBodyLimited } from "../body.ts";
import type { AppEnv } from "../types.ts";
import { HEADER_LENGTH } from "./binary.ts";
import {
  classesToRank,
  encodeResponse,
  IMAGE_INPUT,
  parseInferBody,
  parseInputs,
  requestedOutputs,
} from "./codec.ts";
import { bad, ItemError, V2Error } from "./errors.ts";
import type { v2ModelConfig, v2ModelMetadata, v2ModelStats, v2RepositoryIndex } from "./schemas.ts";
import { NOT_READY_RETRY_AFTER } from "../problem.ts";

/** The extensions this server implements, as `GET /v2` lists them. */
export const SERVER_EXTENSIONS = [
  "classification",
  "binary_tensor_data",
  "model_configuration",
  "statistics",
  "model_repository",
] as const;

export interface V2Deps {
  config: Config;
  models: ModelCatalog;
  metrics: Metrics;
  statistics: ModelStatistics;
  version: string;
}

/** The model a name refers to; known from startup, loaded or not. */
export function findModel(models: ModelCatalog, name: string): ServedModel {
  const model = models.find(name);
  if (model) return model;
  const names = models.list().map((m) => `"${m.name}"`).join(" and ");
  throw new V2Error(404, `Unknown model "${name}"; this server has ${names}`, "not_found");
}

function notReady(model: ServedModel): V2Error {
  return new V2Error(503, `Model "${model.name}" is ${model.state.status}; retry shortly`, "not_ready", {
    "retry-after": NOT_READY_RETRY_AFTER,
  });
}

/** What a request for `version` of `model` reads (its default version without one); 404 if it does not serve. */
function served(model: ServedModel, version: string | undefined): ModelView {
  const view = viewOf(model, version);
  if (view) return view;
  const serving = model.versions?.() ?? [model.state.classifier?.info.version ?? ""];
  throw new V2Error(
    404,
    `Model "${model.name}" has no version "${version}" serving; it serves ${
      serving.filter(Boolean).map((v) => `"${v}"`).join(", ") || "none"
    }`,
    "not_found",
  );
}

/** The loaded classifier, after checking the version if one was named; undefined while loading. */
function loaded(model: ServedModel, version: string | undefined): Classifier | undefined {
  return served(model, version).classifier;
}

/** The loaded model's information, or a 503 while it loads. */
function loadedInfo(model: ServedModel, version: string | undefined): ModelInfo {
  const classifier = loaded(model, version);
  if (!classifier) throw notReady(model);
  return classifier.info;
}

const dims = (shape: ReadonlyArray<number | string>) => shape.map((d) => (typeof d === "number" ? d : -1));

export function modelMetadata(model: ServedModel, info: ModelInfo): z.infer<typeof v2ModelMetadata> {
  return {
    name: model.name,
    versions: model.versions?.().length ? model.versions() : [info.version],
    platform: model.kind === "tensor" ? "onnxruntime_onnx" : "ensemble",
    parameters: { precision: info.precision, weights: info.weights },
    inputs: model.kind === "tensor"
      ? [{ name: info.inputName, datatype: "FP32", shape: dims(info.inputShape) }]
      : [{ name: IMAGE_INPUT, datatype: "BYTES", shape: [-1] }],
    outputs: [{ name: info.outputName, datatype: "FP32", shape: dims(info.outputShape) }],
  };
}

/** Triton's model configuration: dims without the batch dimension, and the limits this gateway applies. */
export function modelConfig(
  model: ServedModel,
  info: ModelInfo,
  config: Config,
  instances: number,
): z.infer<typeof v2ModelConfig> {
  const ms = (v: number) => Math.round(v * 1000);
  return {
    name: model.name,
    platform: model.kind === "tensor" ? "onnxruntime_onnx" : "ensemble",
    ...(model.kind === "tensor" ? { backend: "onnxruntime" } : {}),
    max_batch_size: config.MAX_IMAGES_PER_REQUEST,
    input: model.kind === "tensor"
      ? [{
        name: info.inputName,
        data_type: "TYPE_FP32",
        format: "FORMAT_NCHW",
        dims: dims(info.inputShape).slice(1),
      }]
      : [{ name: IMAGE_INPUT, data_type: "TYPE_STRING", dims: [1] }],
    output: [{ name: info.outputName, data_type: "TYPE_FP32", dims: dims(info.outputShape).slice(1) }],
    dynamic_batching: {
      preferred_batch_size: [config.MAX_BATCH_SIZE],
      max_queue_delay_microseconds: ms(config.MAX_BATCH_DELAY_MS),
      default_queue_policy: {
        timeout_action: "REJECT",
        default_timeout_microseconds: ms(config.REQUEST_TIMEOUT_MS),
        allow_timeout_override: false,
        max_queue_size: config.MAX_QUEUE,
      },
    },
    instance_group: [{ name: model.name, kind: "KIND_CPU", count: instances }],
    parameters: {
      precision: { string_value: info.precision },
      weights: { string_value: info.weights },
      runtime: { string_value: info.runtime },
      ...(model.kind === "image"
        ? {
          preprocessing: { string_value: "decode, resize to 256, center crop 224, ImageNet normalization" },
        }
        : {}),
    },
  };
}

type ModelStats = z.infer<typeof v2ModelStats>["model_stats"][number];

function modelStats(model: ServedModel, statistics: ModelStatistics): ModelStats {
  const counters = statistics.of(model.name);
  const batcher = model.kind === "tensor" ? model.state.classifier?.batcher : undefined;
  const ns = (ms: number) => Math.round(ms * 1e6);
  const batches = [...(batcher?.executions ?? [])].sort(([a], [b]) => a - b);
  const none = { count: 0, ns: 0 };
  return {
    name: model.name,
    version: model.state.classifier?.info.version ?? "",
    last_inference: counters.lastInference,
    inference_count: counters.inferenceCount,
    execution_count: batches.reduce((n, [, e]) => n + e.count, 0),
    inference_stats: { ...counters.stats, cache_hit: none, cache_miss: none },
    batch_stats: batches.map(([size, e]) => ({
      batch_size: size,
      // Inputs are prepared per item before batching; an execution is only the model's run.
      compute_input: { count: e.count, ns: 0 },
      compute_infer: { count: e.count, ns: ns(e.ms) },
      compute_output: { count: e.count, ns: 0 },
    })),
    memory_usage: [],
  };
}

export function statsOf(
  deps: V2Deps,
  name: string | undefined,
  version?: string,
): z.infer<typeof v2ModelStats> {
  const models = name === undefined ? deps.models.list() : [findModel(deps.models, name)];
  for (const m of models) loaded(m, version);
  return { model_stats: models.map((m) => modelStats(m, deps.statistics)) };
}

/** Triton's state names for the gateway's model states. */
function tritonState(model: ServedModel): "READY" | "LOADING" | "UNAVAILABLE" {
  const status = model.state.status;
  return status === "ready" ? "READY" : status === "loading" ? "LOADING" : "UNAVAILABLE";
}

export function repositoryIndex(models: ModelCatalog, readyOnly: boolean): z.infer<typeof v2RepositoryIndex> {
  if (models.index) {
    // Every version of every model the repository knows, under both of its names.
    return models.index()
      .filter((e) => !readyOnly || e.state === "READY")
      .flatMap((e) =>
        [e.name, e.name + IMAGE_MODEL_SUFFIX].map((name) => ({
          name,
          ...(e.version ? { version: e.version } : {}),
          state: e.state,
          reason: e.reason,
        }))
      );
  }
  return models.list()
    .filter((m) => !readyOnly || m.state.serving)
    .map((m) => ({
      name: m.name,
      ...(m.state.classifier ? { version: m.state.classifier.info.version } : {}),
      state: tritonState(m),
      reason: m.state.status === "ready" ? "" : (m.state.error ?? m.state.status),
    }));
}

/** A small JSON body (the repository index's options): at most this many bytes. */
export const INDEX_BODY_LIMIT = 4096;

export async function readIndexRequest(c: Context<AppEnv>, config: Config): Promise<boolean> {
  const body = await readBodyLimited(c.req.raw, INDEX_BODY_LIMIT, config.BODY_TIMEOUT_MS);
  const text = new TextDecoder().decode(body).trim();
  if (text === "") return false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw bad('The body must be empty or JSON like {"ready": true}');
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw bad('The body must be empty or JSON like {"ready": true}');
  }
  const ready = Object.hasOwn(parsed, "ready") ? (parsed as { ready: unknown }).ready : undefined;
  if (ready !== undefined && typeof ready !== "boolean") throw bad('"ready" must be true or false');
  return ready === true;
}

export function modelReady(model: ServedModel, version: string | undefined): boolean {
  return served(model, version).serving !== undefined;
}

export function metadataOf(model: ServedModel, version: string | undefined) {
  return modelMetadata(model, loadedInfo(model, version));
}

export function configOf(deps: V2Deps, model: ServedModel, version: string | undefined) {
  const info = loadedInfo(model, version);
  return modelConfig(model, info, deps.config, loaded(model, version)?.batcher.runners.length ?? 0);
}

/** POST .../infer: the shared inference sequence with the protocol's codec on either side. */
export async function infer(
  c: Context<AppEnv>,
  deps: V2Deps,
  name: string,
  version: string | undefined,
): Promise<Response> {
  const { config, metrics } = deps;
  const model = findModel(deps.models, name);
  const view = served(model, version);
  if (!view.serving) throw notReady(model);
  const stages = c.get("stages");
  const answer = await runInference({
    state: view,
    model: model.name,
    stages,
    signal: clientSignal(c),
    timeoutMs: config.REQUEST_TIMEOUT_MS,
    onConfidence: (v) => metrics.confidence.observe(v),
    statistics: { table: deps.statistics, model: model.name },
    read: (classifier) =>
      stages.run("read_body", async () => {
        const raw = await readBodyLimited(c.req.raw, config.MAX_BODY_BYTES, config.BODY_TIMEOUT_MS);
        c.set("bytesIn", raw.byteLength);
        const body = parseInferBody(raw, c.req.header(HEADER_LENGTH));
        const info = classifier.info;
        const inputs = parseInputs(body, model, info, config.MAX_IMAGES_PER_REQUEST);
        const outputs = requestedOutputs(body.request, model, info);
        return { inputs, k: classesToRank(outputs), body, outputs };
      }),
  });
  const { request, items } = answer;
  const info = answer.classifier.info;
  c.set("servedBy", { model: info.name, version: info.version });
  const results: Inference[] = items.map((item, i) => {
    if (item.ok) return item.result as Inference | Classification;
    const error = item.error;
    if (errorCode(error) === "non_finite_input") {
      throw bad(
        `Input "${info.inputName}"${items.length > 1 ? ` (item ${i})` : ""} drives the model to non-finite ` +
          "outputs; preprocessed image tensors lie within about ±3",
      );
    }
    // Which image failed goes into the message; the error itself is translated once, by onError.
    if (request.inputs[i].kind === "image") throw new ItemError(`image ${i}`, error);
    throw items.length > 1 ? new ItemError(`item ${i}`, error) : error;
  });
  const encoded = encodeResponse(
    request.body.request,
    request.outputs,
    model,
    info,
    results,
  );
  if ("json" in encoded) return c.json(encoded.json, 200);
  return c.body(encoded.body, 200, {
    "content-type": "application/octet-stream",
    [HEADER_LENGTH]: String(encoded.headerLength),
  });
}
