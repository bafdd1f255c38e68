/**
 * The Open Inference Protocol's routes, each defined once with createRoute:
 * its parameters, its bodies and its answers, from which the OpenAPI
 * document is generated. The handlers are in handlers.ts.
 */
import { createRoute, type RouteConfig } from "@hono/zod-openapi";
import { IMAGE_MODEL_SUFFIX } from "../../serving/models.ts";
import { IMAGE_INPUT } from "./codec.ts";
import {
  v2Error,
  v2InferResponse,
  v2ModelConfig,
  v2ModelList,
  v2ModelMetadata,
  v2ModelParams,
  v2ModelReady,
  v2ModelStats,
  v2RepositoryIndex,
  v2ServerLive,
  v2ServerMetadata,
  v2ServerReady,
  v2VersionParams,
} from "./schemas.ts";

/** An 8x8 PNG: the documented example request, which the server accepts as it is. */
const TINY_PNG_BASE64 =
  "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR42mM4UWGDFTEMLQkAQfNfASkqKa0AAAAASUVORK5CYII=";

const v2ErrorResponse = (description: string, example: string) => ({
  description,
  content: { "application/json": { schema: v2Error, example: { error: example } } },
});
const tags = ["Open Inference Protocol"];
const json = <T>(description: string, schema: T, example?: unknown) => ({
  description,
  content: { "application/json": { schema, ...(example !== undefined ? { example } : {}) } },
});
const unknownModel = v2ErrorResponse("Unknown model or version", 'Unknown model "resnet18"');
const loading = v2ErrorResponse(
  "The model is still loading (Retry-After)",
  'Model "resnet50" is loading; retry shortly',
);

/** What a route on a model and its twin on one version of it (`/versions/{version}`) share. */
interface ModelRouteSpec<R extends RouteConfig["responses"]> {
  method: "get" | "post";
  /** What follows `/models/{name}` (or `/models/{name}/versions/{version}`). */
  suffix: string;
  /** Named `v2Model<operation>` and `v2ModelVersion<operation>` in the document. */
  operation: string;
  summary: [model: string, version: string];
  description?: string;
  body?: NonNullable<RouteConfig["request"]>["body"];
  responses: R;
}

/** The spec pairs each model route with a version route; both are defined here, from one spec. */
function modelRoutes<R extends RouteConfig["responses"]>(spec: ModelRouteSpec<R>) {
  const shared = {
    method: spec.method,
    tags,
    ...(spec.description ? { description: spec.description } : {}),
    responses: spec.responses,
  };
  const body = spec.body ? { body: spec.body } : {};
  return {
    model: createRoute({
      ...shared,
      path: `/models/{name}${spec.suffix}`,
      operationId: `v2Model${spec.operation}`,
      summary: spec.summary[0],
      request: { params: v2ModelParams, ...body },
    }),
    version: createRoute({
      ...shared,
      path: `/models/{name}/versions/{version}${spec.suffix}`,
      operationId: `v2ModelVersion${spec.operation}`,
      summary: spec.summary[1],
      request: { params: v2VersionParams, ...body },
    }),
  };
}

export const serverMetadataRoute = createRoute({
  method: "get",
  path: "/",
  operationId: "v2ServerMetadata",
  tags,
  summary: "Server metadata",
  responses: {
    200: { description: "Server metadata", content: { "application/json": { schema: v2ServerMetadata } } },
  },
});
export const serverLiveRoute = createRoute({
  method: "get",
  path: "/health/live",
  operationId: "v2ServerLive",
  tags,
  summary: "Server live",
  responses: { 200: json("Live", v2ServerLive, { live: true }) },
});
export const serverReadyRoute = createRoute({
  method: "get",
  path: "/health/ready",
  operationId: "v2ServerReady",
  tags,
  summary: "Server ready",
  responses: {
    200: json("Ready", v2ServerReady, { ready: true }),
    400: json("Not ready: the model is loading, failed or draining", v2ServerReady, { ready: false }),
  },
});

const metadataResponses = {
  200: { description: "Model metadata", content: { "application/json": { schema: v2ModelMetadata } } },
  404: unknownModel,
  503: loading,
};
export const { model: modelMetadataRoute, version: versionMetadataRoute } = modelRoutes({
  method: "get",
  suffix: "",
  operation: "Metadata",
  summary: ["Model metadata", "Model metadata for a version"],
  description:
    `\`resnet50\` (MODEL_NAME) lists the network's FP32 input; \`resnet50${IMAGE_MODEL_SUFFIX}\` ` +
    `lists the BYTES input \`${IMAGE_INPUT}\` for encoded images.`,
  responses: metadataResponses,
});

const readyResponses = {
  200: json("Ready", v2ModelReady, { name: "resnet50", ready: true }),
  400: json("Known but not ready: loading or draining", v2ModelReady, { name: "resnet50", ready: false }),
  404: unknownModel,
};
export const { model: modelReadyRoute, version: versionReadyRoute } = modelRoutes({
  method: "get",
  suffix: "/ready",
  operation: "Ready",
  summary: ["Model ready", "Model version ready"],
  responses: readyResponses,
});

const inferDescription =
  `Models: \`resnet50\` (MODEL_NAME) takes its FP32 input \`input\`, shape [N,3,224,224], already preprocessed ` +
  `(ImageNet normalization, NCHW; 150528 values per image). \`resnet50${IMAGE_MODEL_SUFFIX}\` takes a BYTES ` +
  `input \`${IMAGE_INPUT}\`, shape [N], whose elements are base64-encoded JPEG, PNG or WebP files (raw bytes with the ` +
  `binary extension); \`resnet50\` accepts that input too, for compatibility. ` +
  "Returns the model's FP32 output [N,1000] (logits). With `parameters.classification: k` on a requested " +
  "output, the top k as BYTES strings `logit:index:label` instead (the classification extension). " +
  "Binary tensor data extension: send `Inference-Header-Content-Length` with the JSON header's length and " +
  "the tensors' bytes after it (`parameters.binary_data_size` on each input); ask for binary outputs with " +
  "`binary_data: true` on an output or `binary_data_output: true` on the request. A body sent with " +
  "`Content-Encoding: gzip` or `deflate` is decompressed as it streams, MAX_BODY_BYTES applying to its " +
  "decompressed size.";

const inferExample = {
  id: "42",
  inputs: [{ name: IMAGE_INPUT, shape: [1], datatype: "BYTES", data: [TINY_PNG_BASE64] }],
  outputs: [{ name: "logits", parameters: { classification: 3 } }],
};

const inferResponses = {
  200: {
    description: "The outputs; as JSON, or with binary outputs as the JSON header followed by their bytes " +
      "(Inference-Header-Content-Length gives the header's length)",
    content: {
      "application/json": {
        schema: v2InferResponse,
        example: {
          model_name: `resnet50${IMAGE_MODEL_SUFFIX}`,
          model_version: "f939437d1289",
          id: "42",
          outputs: [{
            name: "logits",
            shape: [1, 3],
            datatype: "BYTES",
            parameters: { classification: 3 },
            data: ["15.21:967:espresso", "12.03:968:cup", "11.37:504:coffee mug"],
          }],
        },
      },
      "application/octet-stream": {
        schema: { type: "string" as const, contentMediaType: "application/octet-stream" },
      },
    },
  },
  400: v2ErrorResponse(
    "Malformed request: wrong shape, datatype, size, values not finite in FP32 or that drive the model to " +
      "non-finite outputs, bad base64 or binary data, unknown input or output, undecodable image",
    'Input "input" must have shape [N,3,224,224], got [1,3,32,32]',
  ),
  404: unknownModel,
  408: v2ErrorResponse(
    "Body not received within BODY_TIMEOUT_MS",
    "The request body was not received within 30000 ms",
  ),
  413: v2ErrorResponse(
    "Body over MAX_BODY_BYTES (after decompression, for a gzip or deflate body)",
    "Request body exceeds the limit of 10485760 bytes",
  ),
  415: v2ErrorResponse(
    "A Content-Encoding other than gzip, deflate or identity",
    'Content-Encoding "br" is not supported; send gzip, deflate or identity',
  ),
  500: v2ErrorResponse(
    "A fault, logged with the request id",
    "An unexpected error occurred; it has been logged with this request id",
  ),
  503: v2ErrorResponse(
    "Loading, draining, or overloaded (Retry-After)",
    "The inference queue is full (32 requests waiting); retry shortly",
  ),
  504: v2ErrorResponse(
    "Did not reach the model within REQUEST_TIMEOUT_MS",
    "The request waited 5000 ms without reaching the model and was dropped",
  ),
};
const inferBody = {
  required: true,
  content: {
    "application/json": {
      // A reference, not the zod schema: the handler reads and validates the body itself (see readInferRequest).
      schema: { $ref: "#/components/schemas/InferenceRequest" },
      examples: {
        image: { summary: "An encoded image, top 3 by the classification extension", value: inferExample },
      },
    },
    "application/octet-stream": {
      schema: {
        type: "string" as const,
        contentMediaType: "application/octet-stream",
        description: "Binary tensor data extension: the JSON header, then the tensors' bytes",
      },
    },
  },
};
export const { model: inferRoute, version: versionInferRoute } = modelRoutes({
  method: "post",
  suffix: "/infer",
  operation: "Infer",
  summary: ["Run inference", "Run inference on a version"],
  description: inferDescription,
  body: inferBody,
  responses: inferResponses,
});

const configResponses = {
  200: json("The model's configuration", v2ModelConfig),
  404: unknownModel,
  503: loading,
};
export const { model: modelConfigRoute, version: versionConfigRoute } = modelRoutes({
  method: "get",
  suffix: "/config",
  operation: "Config",
  summary: ["Model configuration (Triton's extension)", "Model configuration for a version"],
  description: "What Triton's clients and examples read to build requests: datatypes, dims (without the " +
    "batch dimension), max_batch_size and the dynamic batcher's limits, as this gateway applies them.",
  responses: configResponses,
});

const statsDescription = "Triton's statistics extension, counted since the process started: items answered " +
  "and failed, and the time they spent queued (queue), decoding and preprocessing (compute_input), in the " +
  "model (compute_infer) and ranking (compute_output). Model executions and batch_stats are the network's " +
  `(\`resnet50\`); \`resnet50${IMAGE_MODEL_SUFFIX}\` runs on it, as an ensemble's steps do.`;
const statsResponses = { 200: json("Statistics", v2ModelStats), 404: unknownModel };
export const allStatsRoute = createRoute({
  method: "get",
  path: "/models/stats",
  operationId: "v2ModelsStatistics",
  tags,
  summary: "Statistics of every model",
  description: statsDescription,
  responses: statsResponses,
});
export const { model: modelStatsRoute, version: versionStatsRoute } = modelRoutes({
  method: "get",
  suffix: "/stats",
  operation: "Statistics",
  summary: ["Model statistics (Triton's extension)", "Model statistics for a version"],
  description: statsDescription,
  responses: statsResponses,
});

export const repositoryIndexRoute = createRoute({
  method: "post",
  path: "/repository/index",
  operationId: "v2RepositoryIndex",
  tags,
  summary: "The models served, with their state (Triton's model repository extension)",
  request: {
    body: {
      required: false,
      content: {
        "application/json": {
          // A reference, not the zod schema: the handler reads the (optional) body under its own limits.
          schema: { $ref: "#/components/schemas/RepositoryIndexRequest" },
          example: { ready: true },
        },
      },
    },
  },
  responses: {
    200: json("The models", v2RepositoryIndex, [{
      name: "resnet50",
      version: "f939437d1289",
      state: "READY",
      reason: "",
    }]),
    400: v2ErrorResponse("The body is not the index request", 'The body must be JSON like {"ready": true}'),
  },
});

export const modelListRoute = createRoute({
  method: "get",
  path: "/models",
  operationId: "v2Models",
  tags,
  summary: "The names of the models served (KServe)",
  responses: {
    200: json("The models", v2ModelList, { models: ["resnet50", `resnet50${IMAGE_MODEL_SUFFIX}`] }),
  },
});
