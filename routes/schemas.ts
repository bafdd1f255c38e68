/**
 * The zod schemas of the HTTP API. Routes validate requests with them and
 * /openapi.json is generated from them (zod's JSON Schema output is the
 * dialect OpenAPI 3.1 uses), so the documentation cannot drift from the code.
 */
import { z } from "zod";
import { PROBLEMS } from "./problem.ts";

// ---- /predict

export const topKQuery = z.object({
  top_k: z.coerce.number().int().min(1).max(20).optional().meta({
    description: "How many classes to return (overrides TOP_K).",
    example: 5,
  }),
});

const classScore = z.object({
  class_id: z.number().int().meta({ example: 967 }),
  class_name: z.string().meta({ example: "espresso" }),
  confidence: z.number().min(0).max(1).meta({ example: 0.83 }),
});

const modelRef = z.object({
  name: z.string().meta({ example: "resnet50" }),
  version: z.string().meta({
    description: "First 12 hex digits of the model file's sha256",
    example: "f939437d1289",
  }),
  weights: z.enum(["pretrained", "synthetic"]),
  precision: z.enum(["fp32", "int8"]).meta({
    description:
      "Arithmetic the served model runs in: MODEL_PRECISION, unless the int8 quality gate refused it",
  }),
  sha256: z.string(),
});

const imageInfo = z.object({
  format: z.enum(["jpeg", "png", "webp"]),
  width: z.number().int().meta({ description: "As stored, before the EXIF orientation is applied" }),
  height: z.number().int(),
  bytes: z.number().int(),
  orientation: z.number().int().min(1).max(8).meta({
    description: "The photo's EXIF Orientation tag (1: upright or none); turned upright before resizing " +
      "unless EXIF_ORIENTATION=ignore",
  }),
});

const predictionHead = {
  request_id: z.string().meta({ description: "Also in the X-Request-ID header and every log line" }),
  model: modelRef,
  weights: z.enum(["pretrained", "synthetic"]).meta({
    description: "Repeated at top level so it cannot be missed",
  }),
  warning: z.string().optional().meta({ description: "Present when the weights are synthetic" }),
};

export const problemSchema = z.object({
  type: z.string().meta({ example: "urn:inference-gateway:problem:unsupported_media_type" }),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.enum(Object.keys(PROBLEMS) as [keyof typeof PROBLEMS, ...Array<keyof typeof PROBLEMS>]),
  instance: z.string().optional(),
  request_id: z.string().optional(),
}).meta({ description: "RFC 9457 problem details, served as application/problem+json" });

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
});

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
});

export const healthResponse = z.object({ status: z.literal("ok") });
export const readyResponse = z.object({ status: z.string(), error: z.string().optional() });

// ---- Open Inference Protocol (KServe v2)

/** A tensor's data: a flat or nested JSON array, in row-major order. */
const tensorData: z.ZodType<unknown[]> = z.array(z.unknown()).meta({
  description: "Row-major values; may be flat or nested to the tensor's shape",
});

export const v2InferInput = z.object({
  name: z.string().min(1),
  shape: z.array(z.number().int().nonnegative()).min(1),
  datatype: z.string().min(1),
  parameters: z.record(z.string(), z.unknown()).optional(),
  data: tensorData,
});

export const v2RequestedOutput = z.object({
  name: z.string().min(1),
  parameters: z.object({
    classification: z.number().int().min(1).max(1000).optional().meta({
      description: "Classification extension: return the top k as BYTES strings `score:index:label`",
    }),
  }).catchall(z.unknown()).optional(),
});

export const v2InferRequest = z.object({
  id: z.string().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  inputs: z.array(v2InferInput).min(1),
  outputs: z.array(v2RequestedOutput).optional(),
}).meta({
  example: {
    id: "42",
    inputs: [{ name: "image", shape: [1], datatype: "BYTES", data: ["<base64 JPEG, PNG or WebP>"] }],
    outputs: [{ name: "logits", parameters: { classification: 3 } }],
  },
});

export const v2InferOutput = z.object({
  name: z.string(),
  shape: z.array(z.number().int()),
  datatype: z.string(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  data: z.array(z.union([z.number(), z.string()])),
});

export const v2InferResponse = z.object({
  model_name: z.string(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  outputs: z.array(v2InferOutput),
});

const tensorMetadata = z.object({ name: z.string(), datatype: z.string(), shape: z.array(z.number().int()) });

export const v2ServerMetadata = z.object({
  name: z.string(),
  version: z.string(),
  extensions: z.array(z.string()),
});

export const v2ModelMetadata = z.object({
  name: z.string(),
  versions: z.array(z.string()),
  platform: z.string(),
  parameters: z.object({
    precision: z.enum(["fp32", "int8"]),
    weights: z.enum(["pretrained", "synthetic"]),
  }).meta({ description: "Arithmetic of the served model and whether its weights are pretrained" }),
  inputs: z.array(tensorMetadata),
  outputs: z.array(tensorMetadata),
});

export const v2Error = z.object({ error: z.string() });
