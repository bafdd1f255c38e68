/**
 * The zod schemas of the HTTP API. The routes (createRoute) validate with
 * them and /openapi.json is generated from the same definitions, so the
 * document cannot drift from the code. A schema with a `meta({ id })` becomes
 * a named component of the document.
 */
import { z } from "@hono/zod-openapi";
import { IMAGE_FORMATS, type ImageFormat } from "../image/image_header.ts";
import { MODEL_STATUSES } from "../model/runtime/state.ts";
import { type ProblemCode, PROBLEMS } from "./problem.ts";
import { CONTROL_MODES, PRECISIONS } from "../config.ts";
import {
  UNAVAILABLE_REASONS,
  type UnavailableReason,
  VERSION_STATES,
} from "../model/repository/version_state.ts";

/**
 * The image formats the gateway decodes, with their media types. Typed by the
 * decoder's own list, so a format added there must be added (and documented) here.
 */
export const IMAGE_MEDIA_TYPES: Readonly<Record<ImageFormat, string>> = {
  jpeg: "image/jpeg",
  png: "image/png",
  webp: "image/webp",
};

// ---- Shared

export const problemSchema = z.object({
  type: z.string().meta({ example: "urn:inference-gateway:problem:unsupported_media_type" }),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.enum(Object.keys(PROBLEMS) as [ProblemCode, ...ProblemCode[]]),
  instance: z.string().optional(),
  request_id: z.string().optional(),
}).meta({ id: "Problem", description: "RFC 9457 problem details, served as application/problem+json" });

/** Documented error responses of a gateway route: the given problem codes, grouped by status. */
export function problemResponses(...codes: ProblemCode[]) {
  const byStatus = new Map<number, ProblemCode[]>();
  for (const code of codes) {
    byStatus.set(PROBLEMS[code].status, [...byStatus.get(PROBLEMS[code].status) ?? [], code]);
  }
  return Object.fromEntries([...byStatus].map(([status, group]) => [status, {
    description: group.map((c) => `\`${c}\`: ${PROBLEMS[c].title}`).join("; "),
    content: {
      "application/problem+json": {
        schema: problemSchema,
        example: {
          type: `urn:inference-gateway:problem:${group[0]}`,
          title: PROBLEMS[group[0]].title,
          status,
          detail: "A sentence saying what was wrong and what is accepted",
          code: group[0],
          request_id: "3f1c2b7e-0c39-4a8e-9d0b-2f4a1f6d2a10",
        },
      },
    },
  }]));
}

// ---- /predict

export const topKQuery = z.object({
  top_k: z.coerce.number({ error: "an integer from 1 to 20" })
    .int("an integer from 1 to 20")
    .min(1, "an integer from 1 to 20")
    .max(20, "an integer from 1 to 20")
    .optional()
    .meta({ description: "How many classes to return, 1 to 20 (default TOP_K)", example: 5 }),
  model: z.string().min(1, "a model name").max(64, "a model name").optional().meta({
    description:
      "Which model answers (a model repository's); default: MODEL_NAME, or the repository's default",
    example: "resnet50",
  }),
  // No example: Swagger UI's "Try it out" sends a parameter's example, and which versions exist is the
  // deployment's, so any fixed one would answer 404.
  version: z.string().min(1, "a version").max(16, "a version").optional().meta({
    description: "Which of its versions answers; default: its default (highest serving) version",
  }),
});

const classScore = z.object({
  class_id: z.number().int().meta({ example: 967 }),
  class_name: z.string().meta({ example: "espresso" }),
  confidence: z.number().min(0).max(1).meta({ example: 0.83 }),
}).meta({ id: "ClassScore" });

const weights = z.enum(["pretrained", "synthetic"]);

const modelRef = z.object({
  name: z.string().meta({ example: "resnet50" }),
  version: z.string().meta({
    description: "First 12 hex digits of the model file's sha256",
    example: "f939437d1289",
  }),
  weights,
  precision: z.enum(PRECISIONS).meta({
    description:
      "Arithmetic the served model runs in: MODEL_PRECISION, unless the int8 quality gate refused it",
  }),
  sha256: z.string(),
}).meta({ id: "ModelRef" });

const imageInfo = z.object({
  format: z.enum(IMAGE_FORMATS),
  width: z.number().int().meta({ description: "As stored, before the EXIF orientation is applied" }),
  height: z.number().int(),
  bytes: z.number().int(),
  orientation: z.number().int().min(1).max(8).meta({
    description: "The photo's EXIF Orientation tag (1: upright or none); turned upright before resizing " +
      "unless EXIF_ORIENTATION=ignore",
  }),
}).meta({ id: "ImageInfo" });

const predictionHead = {
  request_id: z.string().meta({ description: "Also in the X-Request-ID header and every log line" }),
  model: modelRef,
  weights: weights.meta({ description: "Repeated at top level so it cannot be missed" }),
  warning: z.string().optional().meta({ description: "Present when the weights are synthetic" }),
};

export const predictResponse = z.object({
  ...predictionHead,
  prediction: classScore,
  top_k: z.array(classScore),
  image: imageInfo,
  timings_ms: z.object({
    read_body: z.number(),
    decode: z.number(),
    preprocess: z.number(),
    queue_wait: z.number(),
    inference: z.number(),
    postprocess: z.number(),
    total: z.number(),
  }),
  inference_time_ms: z.number(),
}).meta({ id: "Prediction", description: "The answer for one image" });

export const predictBatchResponse = z.object({
  ...predictionHead,
  results: z.array(z.union([
    z.object({
      index: z.number().int(),
      filename: z.string().optional(),
      prediction: classScore,
      top_k: z.array(classScore),
      image: imageInfo,
    }),
    z.object({ index: z.number().int(), filename: z.string().optional(), error: problemSchema }),
  ])).meta({
    description: "One entry per uploaded file, in upload order; a bad image fails only its own entry",
  }),
  timings_ms: z.object({ read_body: z.number(), total: z.number() }),
}).meta({ id: "PredictionBatch", description: "The answer for several images" });

// ---- Operations

export const healthResponse = z.object({ status: z.literal("ok") }).meta({ id: "Health" });
/** One model version in the repository, as the repository index lists it. */
export const repositoryEntry = z.object({
  name: z.string(),
  version: z.string(),
  state: z.enum(VERSION_STATES),
  reason: z.string().meta({ description: "Why it is UNAVAILABLE; empty otherwise" }),
  code: z.enum(Object.keys(UNAVAILABLE_REASONS) as [UnavailableReason, ...UnavailableReason[]]).optional()
    .meta({
      description: "The reason as a code: corrupt_file, wrong_shape, int8_gate, memory_limit, ...",
    }),
}).meta({ id: "RepositoryIndexEntry" });

export const readyResponse = z.object({
  status: z.enum(MODEL_STATUSES),
  error: z.string().optional(),
  models: z.array(z.object({ name: z.string(), reason: z.string() })).optional().meta({
    description: "With a model repository: the models that should serve and are not ready, and why",
  }),
}).meta({ id: "Readiness" });

export const infoResponse = z.object({
  service: z.string(),
  version: z.string(),
  deno: z.string(),
  v8: z.string(),
  typescript: z.string(),
  status: z.enum(MODEL_STATUSES),
  model: z.object({
    name: z.string(),
    version: z.string(),
    weights,
    warning: z.string().optional(),
    precision: z.enum(PRECISIONS),
    quantization: z.object({}).catchall(z.unknown()).optional().meta({
      description: "What the int8 step did (MODEL_PRECISION=int8): origin, calibration, the quality gate",
    }),
    sha256: z.string(),
    source: z.enum(["file", "url", "zoo", "synthetic"]),
    path: z.string(),
    input: z.object({ name: z.string(), shape: z.array(z.union([z.number().int(), z.string()])) }),
    output: z.object({
      name: z.string(),
      shape: z.array(z.union([z.number().int(), z.string()])),
      softmax_applied_by: z.enum(["model", "gateway"]),
    }),
    classes: z.number().int(),
    runtime: z.string(),
    runtime_version: z.string(),
    intra_op_threads: z.number().int(),
    load_seconds: z.number().optional(),
    warmup_ms: z.number().optional(),
  }).nullable().meta({ description: "The model served (null while loading)" }),
  trace_ui_url: z.string().nullable().meta({
    description: "TRACE_UI_URL: a link to a trace with `{trace_id}` to replace, or null",
    example: "http://localhost:16686/trace/{trace_id}",
  }),
  error: z.string().optional(),
  repository: z.object({
    root: z.string().nullable().meta({ description: "MODEL_REPOSITORY, or null for the single model" }),
    control_mode: z.enum(CONTROL_MODES),
    default_model: z.string().meta({ description: "The model /predict answers with when none is named" }),
    models: z.array(repositoryEntry),
  }).optional().meta({ description: "Every model and version the gateway knows, with its state" }),
  config: z.object({}).catchall(z.unknown()).meta({
    description: "The effective configuration, secrets redacted",
  }),
}).meta({ id: "Info" });
