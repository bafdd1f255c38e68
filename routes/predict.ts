/**
 * POST /predict: images as multipart `file` fields (what the FastAPI gateway
 * this replaces took; several for a batch) or one image as a raw body;
 * answers the top-k ImageNet classes.
 */
import { createRoute, type OpenAPIHono, type RouteHandler } from "@hono/zod-openapi";
import type { Context } from "@hono/hono";
import type { Config } from "../config.ts";
import type { Classification } from "../model/runtime/classifier.ts";
import { readImageHeader } from "../image/image_header.ts";
import { errorCode } from "../core/errors.ts";
import type { ModelState } from "../model/runtime/state.ts";
import { SYNTHETIC_WEIGHTS_WARNING } from "../model/artifact/types.ts";
import type { Metrics } from "../observability/metrics.ts";
import { recordSafely } from "../observability/telemetry_guard.ts";
import { clientSignal, readBodyLimited } from "./body.ts";
import { runInference } from "../serving/infer.ts";
import {
  IMAGE_MODEL_SUFFIX,
  type ModelCatalog,
  type ModelView,
  type ServedModel,
  viewOf,
} from "../serving/models.ts";
import type { ModelStatistics } from "../serving/stats.ts";
import { type MediaType, MultipartError, parseMediaType, parseMultipart } from "./multipart.ts";
import { asProblem, problemBody, ProblemError, PROBLEMS } from "./problem.ts";
import {
  IMAGE_MEDIA_TYPES,
  predictBatchResponse,
  predictResponse,
  problemResponses,
  topKQuery,
} from "./schemas.ts";
import type { AppEnv } from "./types.ts";

interface Upload {
  bytes: Uint8Array;
  filename?: string;
}

const IMAGE_TYPES = Object.values(IMAGE_MEDIA_TYPES);
const imageBody = (type: string) => ({ schema: { type: "string" as const, contentMediaType: type } });

const predictExample = {
  request_id: "3f1c2b7e-0c39-4a8e-9d0b-2f4a1f6d2a10",
  model: {
    name: "resnet50",
    version: "f939437d1289",
    weights: "pretrained",
    precision: "fp32",
    sha256: "f939437d12896eaf...",
  },
  weights: "pretrained",
  prediction: { class_id: 967, class_name: "espresso", confidence: 0.83 },
  top_k: [{ class_id: 967, class_name: "espresso", confidence: 0.83 }],
  image: { format: "jpeg", width: 600, height: 400, bytes: 68531, orientation: 1 },
  timings_ms: {
    read_body: 0.2,
    decode: 19.5,
    preprocess: 3.1,
    queue_wait: 0.1,
    inference: 44.9,
    postprocess: 0.3,
    total: 70.2,
  },
  inference_time_ms: 44.9,
};

export const predictRoute = createRoute({
  method: "post",
  path: "/predict",
  operationId: "predict",
  tags: ["Prediction"],
  summary: "Classify one or more images",
  description:
    "Multipart form with one or more `file` fields (up to MAX_IMAGES_PER_REQUEST), or one image as the raw body. " +
    `Accepted formats: ${
      IMAGE_TYPES.join(", ")
    }, judged by their bytes, not by the declared type; photos are ` +
    "turned upright as their EXIF orientation says (EXIF_ORIENTATION). " +
    "One file answers a Prediction; several answer a PredictionBatch whose entries succeed or fail independently.",
  request: {
    query: topKQuery,
    body: {
      required: true,
      description: "The image(s). The body is not validated before reading: limits apply while it streams.",
      content: {
        "multipart/form-data": {
          schema: {
            type: "object",
            properties: {
              file: {
                type: "array",
                items: { type: "string", format: "binary", contentMediaType: "application/octet-stream" },
                description: `One part per image: ${IMAGE_TYPES.join(", ")}`,
              },
            },
            required: ["file"],
          },
          encoding: { file: { contentType: [...IMAGE_TYPES, "application/octet-stream"].join(", ") } },
        },
        ...Object.fromEntries(IMAGE_TYPES.map((t) => [t, imageBody(t)])),
        "application/octet-stream": {
          schema: { type: "string", contentMediaType: "application/octet-stream" },
        },
      },
    },
  },
  responses: {
    200: {
      description: "Top-k classes (one image) or a list in upload order (several)",
      content: {
        "application/json": {
          schema: predictResponse.or(predictBatchResponse),
          example: predictExample,
        },
      },
    },
    ...problemResponses(
      "bad_request",
      "missing_file",
      "invalid_parameter",
      "too_many_images",
      "body_timeout",
      "payload_too_large",
      "unsupported_media_type",
      "undecodable_image",
      "too_many_pixels",
      "internal",
      "not_ready",
      "overloaded",
      "timeout",
    ),
  },
});

/** The `file` parts of a multipart body, as they were sent. */
function formUploads(body: Uint8Array, media: MediaType, config: Config): Upload[] {
  const boundary = media.params.get("boundary");
  if (!boundary) {
    throw new ProblemError("bad_request", "The multipart Content-Type has no boundary parameter");
  }
  let parts;
  try {
    parts = parseMultipart(body, boundary);
  } catch (err) {
    if (!(err instanceof MultipartError)) throw err;
    throw new ProblemError("bad_request", `The multipart body cannot be parsed: ${err.message}`);
  }
  const files = parts.filter((p) => p.name === "file");
  if (files.length === 0) throw new ProblemError("missing_file", "The multipart form has no `file` field");
  if (files.length > config.MAX_IMAGES_PER_REQUEST) {
    throw new ProblemError(
      "too_many_images",
      `The request has ${files.length} images; at most ${config.MAX_IMAGES_PER_REQUEST} are accepted`,
    );
  }
  const out: Upload[] = [];
  for (const file of files) {
    // A field sent as text (no file name, no type) is a form value, not an upload.
    if (file.filename === undefined && file.contentType === undefined) {
      throw new ProblemError("missing_file", "Each `file` field must be a file upload, not a text value");
    }
    out.push({ bytes: file.bytes, filename: file.filename || undefined });
  }
  if (out.length === 1 && out[0].bytes.byteLength === 0) {
    throw new ProblemError("missing_file", "The uploaded file is empty");
  }
  return out;
}

/** The images of a request: the `file` parts of a multipart form, or the body itself. */
async function uploads(c: Context<AppEnv>, config: Config): Promise<Upload[]> {
  const body = await readBodyLimited(c.req.raw, config.MAX_BODY_BYTES, config.BODY_TIMEOUT_MS);
  c.set("bytesIn", body.byteLength);
  const media = parseMediaType(c.req.header("content-type") ?? "");
  if (media?.essence === "multipart/form-data") return formUploads(body, media, config);
  if (body.byteLength === 0) {
    throw new ProblemError(
      "missing_file",
      "The request has no body: send an image (multipart field `file` or raw)",
    );
  }
  // curl --data-binary @photo.jpg without -H declares this type: the bytes, not the label, say what it is.
  if (media?.essence === "application/x-www-form-urlencoded" && !looksLikeImage(body)) {
    throw new ProblemError(
      "bad_request",
      "The body is a form, not an image: send the image as a raw body (curl --data-binary @photo.jpg " +
        "-H 'content-type: image/jpeg') or as multipart/form-data (curl -F file=@photo.jpg)",
    );
  }
  return [{ bytes: body }];
}

/**
 * Whether the magic bytes name an image format: ours (classified as a raw body would be, 422 if broken)
 * or another (which then gets its 415).
 */
function looksLikeImage(bytes: Uint8Array): boolean {
  try {
    readImageHeader(bytes);
  } catch (err) {
    // Not ours but named (a GIF, say): an image, which gets its 415.
    return errorCode(err) !== "image_unsupported" || (err as { detected?: string }).detected !== undefined;
  }
  return true;
}

export interface PredictDeps {
  config: Config;
  state: ModelState;
  /** The models `?model=` may name (the image models of serving/models.ts); without it only `state`'s. */
  models?: ModelCatalog;
  metrics: Metrics;
  /** /predict's images are counted as the image model's (serving/models.ts), which they are. */
  statistics?: ModelStatistics;
}

function predictHandler(
  { config, state, metrics, statistics, models }: PredictDeps,
): RouteHandler<typeof predictRoute, AppEnv> {
  /** The view `?model=&version=` names (404 naming it if it is not served), else the default model's. */
  const chosen = (
    model: string | undefined,
    version: string | undefined,
  ): { view: ModelView; name: string } => {
    if (model === undefined && version === undefined) return { view: state, name: config.MODEL_NAME };
    const name = model ?? state.classifier?.info.name ?? config.MODEL_NAME;
    const served: ServedModel | undefined = models
      ? models.find(name)
      : name === config.MODEL_NAME
      ? { name, kind: "image", state }
      : undefined;
    const view = served && viewOf(served, version);
    if (!view) {
      throw new ProblemError(
        "not_found",
        version === undefined
          ? `Model "${name}" is not served here`
          : `Model "${name}" has no version "${version}" serving`,
      );
    }
    return { view, name };
  };
  return async function predict(c) {
    const started = performance.now();
    const query = c.req.valid("query");
    const { view, name } = chosen(query.model, query.version);
    const k = query.top_k ?? view.topK ?? config.TOP_K;
    const stages = c.get("stages");
    const answer = await runInference({
      state: view,
      model: name,
      stages,
      signal: clientSignal(c),
      timeoutMs: config.REQUEST_TIMEOUT_MS,
      onConfidence: (v) => metrics.confidence.observe(v),
      ...(statistics ? { statistics: { table: statistics, model: name + IMAGE_MODEL_SUFFIX } } : {}),
      read: () =>
        stages.run("read_body", async (annotate) => {
          const images = await uploads(c, config);
          annotate({ "http.request.body.size": c.get("bytesIn"), "images.count": images.length });
          return { images, k, inputs: images.map((img) => ({ kind: "image" as const, bytes: img.bytes })) };
        }),
    });
    const info = answer.classifier.info;
    c.set("servedBy", { model: info.name, version: info.version });
    const { images } = answer.request;
    const head = {
      request_id: c.get("requestId"),
      model: {
        name: info.name,
        version: info.version,
        weights: info.weights,
        precision: info.precision,
        sha256: info.sha256,
      },
      weights: info.weights,
      ...(info.weights === "synthetic" ? { warning: SYNTHETIC_WEIGHTS_WARNING } : {}),
    };
    const round = (ms: number | undefined) => +(ms ?? 0).toFixed(3);

    if (images.length === 1) {
      const item = answer.items[0];
      if (!item.ok) throw item.error;
      const result = item.result as Classification;
      const t = stages.timings;
      return c.json({
        ...head,
        prediction: result.top[0],
        top_k: result.top,
        image: result.image,
        timings_ms: {
          read_body: round(t.read_body),
          decode: round(t.decode),
          preprocess: round(t.preprocess),
          queue_wait: round(t.queue_wait),
          inference: round(t.inference),
          postprocess: round(t.postprocess),
          total: round(performance.now() - started),
        },
        inference_time_ms: round(t.inference),
      }, 200);
    }

    // Several images: each succeeds or fails on its own; the answer keeps their order.
    const results = answer.items.map((item, index) => {
      const filename = images[index].filename;
      if (item.ok) {
        const r = item.result as Classification;
        return { index, filename, prediction: r.top[0], top_k: r.top, image: r.image };
      }
      const problem = asProblem(item.error);
      if (!(problem instanceof ProblemError)) throw item.error;
      recordSafely(
        "requests_rejected",
        [],
        () => metrics.rejected.inc({ reason: PROBLEMS[problem.code].reason }),
      );
      return { index, filename, error: problemBody(problem.code, problem.detail) };
    });
    return c.json({
      ...head,
      results,
      timings_ms: { read_body: round(stages.timings.read_body), total: round(performance.now() - started) },
    }, 200);
  };
}

export function registerPredict(app: OpenAPIHono<AppEnv>, deps: PredictDeps): void {
  app.openapi(predictRoute, predictHandler(deps));
}
