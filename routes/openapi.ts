/**
 * The OpenAPI 3.1 document, generated from the zod schemas the routes
 * validate with (routes/schemas.ts), and the interactive docs page. Swagger
 * UI is served from the npm package, so /docs works with no internet access.
 */
import { z } from "zod";
import { PROBLEMS } from "./problem.ts";
import {
  healthResponse,
  predictBatchResponse,
  predictResponse,
  problemSchema,
  readyResponse,
  topKQuery,
  v2Error,
  v2InferRequest,
  v2InferResponse,
  v2ModelMetadata,
  v2ServerMetadata,
} from "./schemas.ts";

type Json = Record<string, unknown>;

/** zod -> JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1), without the $schema key. */
function schema(s: z.ZodType, io: "input" | "output" = "output"): Json {
  const { $schema: _, ...rest } = z.toJSONSchema(s, {
    target: "draft-2020-12",
    io,
    unrepresentable: "any",
  }) as Json;
  return rest;
}

const json = (s: z.ZodType, description: string, example?: unknown) => ({
  description,
  content: { "application/json": { schema: schema(s), ...(example !== undefined ? { example } : {}) } },
});

const problem = (...codes: Array<keyof typeof PROBLEMS>) => ({
  description: codes.map((c) => `\`${c}\`: ${PROBLEMS[c].title}`).join("; "),
  content: {
    "application/problem+json": {
      schema: { $ref: "#/components/schemas/Problem" },
      example: {
        type: `urn:inference-gateway:problem:${codes[0]}`,
        title: PROBLEMS[codes[0]].title,
        status: PROBLEMS[codes[0]].status,
        detail: "A sentence saying what was wrong and what is accepted",
        code: codes[0],
        request_id: "3f1c2b7e-0c39-4a8e-9d0b-2f4a1f6d2a10",
      },
    },
  },
});

const v2err = (description: string, example: string) => ({
  description,
  content: {
    "application/json": {
      schema: { $ref: "#/components/schemas/InferenceError" },
      example: { error: example },
    },
  },
});

const nameParam = {
  name: "name",
  in: "path",
  required: true,
  schema: { type: "string" },
  example: "resnet50",
  description: "The model name (MODEL_NAME)",
};
const versionParam = {
  name: "version",
  in: "path",
  required: true,
  schema: { type: "string" },
  description: "The model version: the first 12 hex digits of its sha256, as GET /v2/models/{name} lists",
};

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

export function openApiDocument(version: string): Json {
  const modelOps = (extra: Json[] = []) => [nameParam, ...extra];
  const inferOp = (params: Json[]) => ({
    tags: ["Open Inference Protocol"],
    summary: "Run inference",
    description:
      "Either the model's FP32 input, shape [N,3,224,224], already preprocessed (ImageNet normalization, NCHW), " +
      'or a BYTES input named "image", shape [N], whose elements are base64-encoded JPEG, PNG or WebP files. ' +
      "Returns the model's FP32 output [N,1000]; with `parameters.classification: k` on a requested output, " +
      "the top k as BYTES strings `score:index:label` instead.",
    parameters: params,
    requestBody: {
      required: true,
      content: {
        "application/json": {
          schema: schema(v2InferRequest, "input"),
          examples: {
            image: {
              summary: "Encoded image, classification extension",
              value: {
                id: "42",
                inputs: [{ name: "image", shape: [1], datatype: "BYTES", data: ["/9j/4AAQSkZJRgABAQ..."] }],
                outputs: [{ name: "logits", parameters: { classification: 3 } }],
              },
            },
            tensor: {
              summary: "Preprocessed tensor (150528 values per image)",
              value: {
                inputs: [{
                  name: "input",
                  shape: [1, 3, 224, 224],
                  datatype: "FP32",
                  data: [0.12, -0.4, "..."],
                }],
              },
            },
          },
        },
      },
    },
    responses: {
      "200": json(v2InferResponse, "The outputs", {
        model_name: "resnet50",
        model_version: "f939437d1289",
        id: "42",
        outputs: [{
          name: "logits",
          shape: [1, 3],
          datatype: "BYTES",
          parameters: { classification: 3 },
          data: ["0.83:967:espresso", "0.05:968:cup", "0.02:504:coffee mug"],
        }],
      }),
      "400": v2err(
        "Malformed request: wrong shape, datatype, size, bad base64, unknown input or output, undecodable image",
        'Input "input" must have shape [N,3,224,224], got [1,3,32,32]',
      ),
      "404": v2err("Unknown model or version", 'Unknown model "resnet18"'),
      "408": v2err(
        "Body not received within BODY_TIMEOUT_MS",
        "The request body was not received within 30000 ms",
      ),
      "413": v2err("Body over MAX_BODY_BYTES", "Request body exceeds the limit of 10485760 bytes"),
      "503": v2err(
        "Not ready, draining, or overloaded (Retry-After)",
        "The inference queue is full (32 requests waiting); retry shortly",
      ),
      "504": v2err(
        "Did not reach the model within REQUEST_TIMEOUT_MS",
        "The request waited 5000 ms without reaching the model and was dropped",
      ),
    },
  });

  return {
    openapi: "3.1.0",
    info: {
      title: "inference-gateway",
      version,
      description:
        "ResNet-50 image classification over HTTP, with metrics, traces and logs linked by trace id. " +
        "Every response carries X-Request-ID, traceparent and Server-Timing headers.",
    },
    servers: [{ url: "/" }],
    tags: [
      { name: "Prediction", description: "The gateway's own API" },
      { name: "Operations", description: "Health, readiness, metadata, metrics" },
      {
        name: "Open Inference Protocol",
        description: "KServe v2 REST, as Triton, KServe and MLServer speak it",
      },
    ],
    paths: {
      "/predict": {
        post: {
          tags: ["Prediction"],
          summary: "Classify one or more images",
          description:
            "Multipart form with one or more `file` fields (up to MAX_IMAGES_PER_REQUEST), or one image as the raw body. " +
            "JPEG, PNG or WebP, judged by magic bytes, not by the declared type; photos are turned upright as their " +
            "EXIF orientation says (EXIF_ORIENTATION). One file answers a Prediction; several " +
            "answer a PredictionBatch whose entries succeed or fail independently.",
          parameters: [{
            name: "top_k",
            in: "query",
            required: false,
            schema: schema(topKQuery.shape.top_k.unwrap(), "input"),
            description: "How many classes to return, 1 to 20 (default TOP_K)",
          }],
          requestBody: {
            required: true,
            content: {
              "multipart/form-data": {
                schema: {
                  type: "object",
                  properties: {
                    // `format: binary` is what makes Swagger UI's "Try it out" offer a file picker.
                    file: {
                      type: "array",
                      items: { type: "string", format: "binary", contentMediaType: "image/jpeg" },
                    },
                  },
                  required: ["file"],
                },
              },
              "image/jpeg": { schema: { type: "string", format: "binary", contentMediaType: "image/jpeg" } },
              "image/png": { schema: { type: "string", format: "binary", contentMediaType: "image/png" } },
              "image/webp": { schema: { type: "string", format: "binary", contentMediaType: "image/webp" } },
            },
          },
          responses: {
            "200": {
              description: "Top-k classes (one image) or a list in upload order (several)",
              content: {
                "application/json": {
                  schema: {
                    oneOf: [{ $ref: "#/components/schemas/Prediction" }, {
                      $ref: "#/components/schemas/PredictionBatch",
                    }],
                  },
                  example: predictExample,
                },
              },
            },
            "400": problem("bad_request", "missing_file", "invalid_parameter", "too_many_images"),
            "408": problem("body_timeout"),
            "413": problem("payload_too_large"),
            "415": problem("unsupported_media_type"),
            "422": problem("undecodable_image", "too_many_pixels"),
            "500": problem("internal"),
            "503": problem("not_ready", "overloaded"),
            "504": problem("timeout"),
          },
        },
      },
      "/health": {
        get: {
          tags: ["Operations"],
          summary: "Liveness",
          responses: { "200": json(healthResponse, "The process answers", { status: "ok" }) },
        },
      },
      "/ready": {
        get: {
          tags: ["Operations"],
          summary: "Readiness: model loaded and warm, not draining",
          responses: {
            "200": json(readyResponse, "Ready", { status: "ready" }),
            "503": json(readyResponse, "Loading, failed or draining", { status: "loading" }),
          },
        },
      },
      "/info": {
        get: {
          tags: ["Operations"],
          summary: "Service and model metadata, runtime versions, effective configuration (secrets redacted)",
          responses: {
            "200": {
              description: "Metadata",
              content: { "application/json": { schema: { type: "object" } } },
            },
          },
        },
      },
      "/metrics": {
        get: {
          tags: ["Operations"],
          summary: "Prometheus metrics; OpenMetrics with trace exemplars when the Accept header asks for it",
          responses: {
            "200": {
              description: "Metrics",
              content: {
                "text/plain; version=0.0.4": { schema: { type: "string" } },
                "application/openmetrics-text; version=1.0.0": { schema: { type: "string" } },
              },
            },
          },
        },
      },
      "/openapi.json": {
        get: {
          tags: ["Operations"],
          summary: "This document",
          responses: { "200": { description: "OpenAPI 3.1" } },
        },
      },
      "/docs": {
        get: {
          tags: ["Operations"],
          summary: "Interactive API documentation",
          responses: {
            "200": { description: "HTML", content: { "text/html": { schema: { type: "string" } } } },
          },
        },
      },
      "/v2": {
        get: {
          tags: ["Open Inference Protocol"],
          summary: "Server metadata",
          responses: {
            "200": json(v2ServerMetadata, "Server metadata", {
              name: "inference-gateway",
              version,
              extensions: ["classification"],
            }),
          },
        },
      },
      "/v2/health/live": {
        get: {
          tags: ["Open Inference Protocol"],
          summary: "Server live",
          responses: { "200": { description: "Live (empty body)" } },
        },
      },
      "/v2/health/ready": {
        get: {
          tags: ["Open Inference Protocol"],
          summary: "Server ready",
          responses: {
            "200": { description: "Ready (empty body)" },
            "400": { description: "Not ready (empty body)" },
          },
        },
      },
      "/v2/models/{name}": {
        get: {
          tags: ["Open Inference Protocol"],
          summary: "Model metadata",
          parameters: modelOps(),
          responses: {
            "200": json(v2ModelMetadata, "Model metadata"),
            "404": v2err("Unknown model", 'Unknown model "x"'),
          },
        },
      },
      "/v2/models/{name}/versions/{version}": {
        get: {
          tags: ["Open Inference Protocol"],
          summary: "Model metadata for a version",
          parameters: modelOps([versionParam]),
          responses: {
            "200": json(v2ModelMetadata, "Model metadata"),
            "404": v2err("Unknown model or version", 'Model "resnet50" has no version "2"'),
          },
        },
      },
      "/v2/models/{name}/ready": {
        get: {
          tags: ["Open Inference Protocol"],
          summary: "Model ready",
          parameters: modelOps(),
          responses: {
            "200": { description: "Ready (empty body)" },
            "400": { description: "Not ready (empty body)" },
            "404": v2err("Unknown model", 'Unknown model "x"'),
          },
        },
      },
      "/v2/models/{name}/versions/{version}/ready": {
        get: {
          tags: ["Open Inference Protocol"],
          summary: "Model version ready",
          parameters: modelOps([versionParam]),
          responses: {
            "200": { description: "Ready (empty body)" },
            "400": { description: "Not ready (empty body)" },
            "404": v2err("Unknown model or version", 'Unknown model "x"'),
          },
        },
      },
      "/v2/models/{name}/infer": { post: inferOp(modelOps()) },
      "/v2/models/{name}/versions/{version}/infer": { post: inferOp(modelOps([versionParam])) },
    },
    components: {
      schemas: {
        Problem: schema(problemSchema),
        Prediction: schema(predictResponse),
        PredictionBatch: schema(predictBatchResponse),
        InferenceError: schema(v2Error),
      },
    },
  };
}

/** Swagger UI, loaded from this server (no CDN). */
export const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>inference-gateway API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>SwaggerUIBundle({ url: "/openapi.json", dom_id: "#ui", deepLinking: true });</script>
</body>
</html>
`;
