/**
 * The Open Inference Protocol (KServe "v2" REST), so clients, load testers
 * and gateways built for Triton, KServe or MLServer work unchanged. A Hono
 * sub-app mounted at /v2 with its own error handler: every error is
 * translated once, there, into the protocol's `{"error": "..."}` body.
 * Requests share /predict's middleware, limits, batcher, metrics and traces.
 *
 * Two model names, known from startup (before the model has loaded):
 * - MODEL_NAME (`resnet50`): the network itself, FP32 input [N,3,224,224]
 *   already preprocessed. For compatibility it also takes the `image` input.
 * - MODEL_NAME-image (`resnet50-image`): encoded images, a BYTES input
 *   `image` [N] (base64 in JSON, raw with the binary extension), decoded and
 *   preprocessed here as /predict does; the way Triton users put
 *   preprocessing in an ensemble in front of the network.
 * Both answer the network's output. Extensions: classification (the top k as
 * `logit:index:label`, as Triton defines it) and binary tensor data.
 */
import { createRoute, OpenAPIHono, type z } from "@hono/zod-openapi";
import type { Context } from "@hono/hono";
import type { Config } from "../config.ts";
import type { Classifier, Inference } from "../model/classifier.ts";
import { TENSOR_SIZE } from "../image/preprocess.ts";
import type { ModelState } from "../model/state.ts";
import { logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { recordSafely } from "../observability/telemetry_guard.ts";
import { clientSignal, readBodyLimited } from "./body.ts";
import { finiteOutput, NonFiniteOutputError } from "./model_output.ts";
import { asProblem, NOT_READY_RETRY_AFTER, ProblemError, PROBLEMS } from "./problem.ts";
import {
  v2Error,
  type V2InferRequest,
  v2InferRequest,
  v2InferResponse,
  v2ModelMetadata,
  v2ModelParams,
  v2ServerMetadata,
  v2VersionParams,
} from "./schemas.ts";
import type { AppEnv } from "./types.ts";
import {
  BinaryDataError,
  HEADER_LENGTH,
  joinBody,
  readBytesElements,
  readFloat32,
  splitBody,
  writeBytesElements,
  writeFloat32,
} from "./v2_binary.ts";

/** Name of the BYTES input that takes encoded image files. */
export const IMAGE_INPUT = "image";
/** Appended to MODEL_NAME for the model that takes encoded images. */
export const IMAGE_MODEL_SUFFIX = "-image";
export const SERVER_EXTENSIONS = ["classification", "binary_tensor_data"];
/** An 8x8 PNG: the documented example request, which the server accepts as it is. */
const TINY_PNG_BASE64 =
  "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR42mM4UWGDFTEMLQkAQfNfASkqKa0AAAAASUVORK5CYII=";

type V2Status = 400 | 404 | 408 | 413 | 499 | 500 | 503 | 504;

/** An answer in the protocol's terms; only this file knows it. */
class V2Error extends Error {
  constructor(
    readonly status: V2Status,
    message: string,
    /** Rejection reason for requests_rejected_total. */
    readonly reason: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "V2Error";
  }
}

const bad = (message: string) => new V2Error(400, message, "bad_request");

/** A failure of one image of a batch: the message says which. */
class ItemError extends Error {
  constructor(readonly index: number, override readonly cause: unknown) {
    super(`image ${index}`);
    this.name = "ItemError";
  }
}

/**
 * Any error in the protocol's terms, or undefined for a fault. Every input
 * problem is a 400 (the protocol has no 415 or 422); limits, time-outs and
 * overload keep their status.
 */
function toV2Error(err: unknown): V2Error | undefined {
  if (err instanceof V2Error) return err;
  const where = err instanceof ItemError ? `image ${err.index}: ` : "";
  const problem = asProblem(err instanceof ItemError ? err.cause : err);
  if (!(problem instanceof ProblemError)) return undefined;
  const status = problem.status >= 500 || [408, 413, 499].includes(problem.status) ? problem.status : 400;
  return new V2Error(
    status as V2Status,
    `${where}${problem.detail}`,
    PROBLEMS[problem.code].reason,
    problem.headers,
  );
}

/** Flattens nested JSON arrays (row-major), refusing more than `limit` values. */
function flatten(data: unknown[], limit: number): unknown[] {
  const out: unknown[] = [];
  const stack: Array<{ items: unknown[]; i: number }> = [{ items: data, i: 0 }];
  while (stack.length) {
    const top = stack[stack.length - 1];
    if (top.i >= top.items.length) {
      stack.pop();
      continue;
    }
    const v = top.items[top.i++];
    if (Array.isArray(v)) {
      if (stack.length > 8) throw bad("Tensor data is nested deeper than its shape");
      stack.push({ items: v, i: 0 });
    } else {
      if (out.length >= limit) throw bad(`Tensor data has more than the ${limit} values its shape declares`);
      out.push(v);
    }
  }
  return out;
}

/**
 * Padded standard base64, decoded natively. A validating regular expression
 * overflowed the stack on photo-sized strings (8 MB and up) and turned them
 * into 500s; the length check and the decoder's own refusal accept exactly
 * what it accepted.
 */
function decodeBase64(s: string, index: number): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const invalid = () => bad(`image ${index}: element is not valid base64`);
  if (clean.length === 0 || clean.length % 4 !== 0) throw invalid();
  try {
    return Uint8Array.fromBase64(clean);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    throw invalid();
  }
}

type ModelKind = "tensor" | "image";

interface Model {
  name: string;
  kind: ModelKind;
}

/** The model a name refers to; known from startup, loaded or not. */
function findModel(config: Config, name: string): Model {
  if (name === config.MODEL_NAME) return { name, kind: "tensor" };
  if (name === config.MODEL_NAME + IMAGE_MODEL_SUFFIX) return { name, kind: "image" };
  throw new V2Error(
    404,
    `Unknown model "${name}"; this server has "${config.MODEL_NAME}" and "${config.MODEL_NAME}${IMAGE_MODEL_SUFFIX}"`,
    "not_found",
  );
}

function notReady(model: Model, state: ModelState): V2Error {
  return new V2Error(503, `Model "${model.name}" is ${state.status}; retry shortly`, "not_ready", {
    "retry-after": NOT_READY_RETRY_AFTER,
  });
}

/** The loaded classifier, after checking the version if one was named; undefined while loading. */
function loaded(state: ModelState, model: Model, version: string | undefined): Classifier | undefined {
  const classifier = state.classifier;
  if (classifier && version !== undefined && version !== classifier.info.version) {
    throw new V2Error(
      404,
      `Model "${model.name}" has no version "${version}"; it serves "${classifier.info.version}"`,
      "not_found",
    );
  }
  return classifier;
}

function modelMetadata(model: Model, classifier: Classifier): z.infer<typeof v2ModelMetadata> {
  const info = classifier.info;
  const dims = (shape: ReadonlyArray<number | string>) => shape.map((d) => (typeof d === "number" ? d : -1));
  return {
    name: model.name,
    versions: [info.version],
    platform: model.kind === "tensor" ? "onnxruntime_onnx" : "ensemble",
    parameters: { precision: info.precision, weights: info.weights },
    inputs: model.kind === "tensor"
      ? [{ name: info.inputName, datatype: "FP32", shape: dims(info.inputShape) }]
      : [{ name: IMAGE_INPUT, datatype: "BYTES", shape: [-1] }],
    outputs: [{ name: info.outputName, datatype: "FP32", shape: dims(info.outputShape) }],
  };
}

type Items = { kind: "tensor"; items: Float32Array[] } | { kind: "image"; items: Uint8Array[] };

/** The one input of a request, as tensors or encoded images, checked against the model. */
function parseInputs(
  request: V2InferRequest,
  binary: Uint8Array | undefined,
  model: Model,
  classifier: Classifier,
  max: number,
): Items {
  const info = classifier.info;
  const accepted = model.kind === "tensor"
    ? `"${info.inputName}" (FP32 [N,3,224,224]; "${IMAGE_INPUT}" BYTES is accepted too)`
    : `"${IMAGE_INPUT}" (BYTES [N])`;
  if (request.inputs.length !== 1) {
    throw bad(`Model "${model.name}" takes exactly one input, ${accepted}; got ${request.inputs.length}`);
  }
  const input = request.inputs[0];
  const binarySize = input.parameters?.binary_data_size;
  if (binarySize !== undefined && input.data !== undefined) {
    throw bad(`Input "${input.name}" has both data and binary_data_size; send one`);
  }
  if (binarySize === undefined && input.data === undefined) {
    throw bad(`Input "${input.name}" has no data (nor binary_data_size for binary tensor data)`);
  }
  let raw: Uint8Array | undefined;
  if (binarySize !== undefined) {
    if (!binary) {
      throw bad(
        `Input "${input.name}" declares binary_data_size but the request has no Inference-Header-Content-Length`,
      );
    }
    if (binarySize !== binary.byteLength) {
      throw bad(
        `Input "${input.name}" declares binary_data_size ${binarySize}, but ${binary.byteLength} bytes follow the JSON header`,
      );
    }
    raw = binary;
  } else if (binary && binary.byteLength > 0) {
    throw bad(`${binary.byteLength} bytes follow the JSON header but no input declares binary_data_size`);
  }
  const n = input.shape[0];
  const shape = `[${input.shape.join(",")}]`;

  if (input.name === info.inputName && model.kind === "tensor") {
    if (input.datatype !== "FP32") throw bad(`Input "${input.name}" must be FP32, got ${input.datatype}`);
    const [, c, h, w] = input.shape;
    if (input.shape.length !== 4 || c !== 3 || h !== 224 || w !== 224) {
      throw bad(`Input "${input.name}" must have shape [N,3,224,224], got ${shape}`);
    }
    if (n < 1 || n > max) throw bad(`Batch size must be from 1 to ${max}, got ${n}`);
    const count = n * TENSOR_SIZE;
    // Checked as FP32, the type the model computes in: 1e39 is a finite double but Infinity in FP32.
    const notFinite = (i: number, sent: unknown) =>
      bad(
        `Input "${input.name}" value ${i} (${sent}) is not a finite FP32 number (FP32 holds at most ±3.4e38)`,
      );
    let values: Float32Array;
    if (raw) {
      try {
        values = readFloat32(raw, count);
      } catch (err) {
        if (!(err instanceof BinaryDataError)) throw err;
        throw bad(`Input "${input.name}" binary data ${err.message} for shape ${shape}`);
      }
      for (let i = 0; i < count; i++) if (!Number.isFinite(values[i])) throw notFinite(i, values[i]);
    } else {
      const flat = flatten(input.data!, count);
      if (flat.length !== count) {
        throw bad(`Input "${input.name}" has ${flat.length} values; shape ${shape} needs ${count}`);
      }
      values = new Float32Array(count);
      for (let i = 0; i < count; i++) {
        const v = flat[i];
        if (typeof v !== "number") throw bad(`Input "${input.name}" value ${i} is not a number`);
        values[i] = v;
        if (!Number.isFinite(values[i])) throw notFinite(i, v);
      }
    }
    const items: Float32Array[] = [];
    for (let b = 0; b < n; b++) items.push(values.subarray(b * TENSOR_SIZE, (b + 1) * TENSOR_SIZE));
    return { kind: "tensor", items };
  }

  if (input.name === IMAGE_INPUT) {
    if (input.datatype !== "BYTES") throw bad(`Input "${IMAGE_INPUT}" must be BYTES, got ${input.datatype}`);
    if (!(input.shape.length === 1 || (input.shape.length === 2 && input.shape[1] === 1))) {
      throw bad(`Input "${IMAGE_INPUT}" must have shape [N] or [N,1], got ${shape}`);
    }
    if (n < 1 || n > max) throw bad(`Batch size must be from 1 to ${max}, got ${n}`);
    let items: Uint8Array[];
    if (raw) {
      try {
        items = readBytesElements(raw);
      } catch (err) {
        if (!(err instanceof BinaryDataError)) throw err;
        throw bad(`Input "${IMAGE_INPUT}" binary data ${err.message}`);
      }
      if (items.length !== n) {
        throw bad(`Input "${IMAGE_INPUT}" has ${items.length} elements; its shape says ${n}`);
      }
    } else {
      const values = flatten(input.data!, n);
      if (values.length !== n) {
        throw bad(`Input "${IMAGE_INPUT}" has ${values.length} elements; its shape says ${n}`);
      }
      items = values.map((v, i) => {
        if (typeof v !== "string") throw bad(`image ${i}: BYTES elements must be base64 strings`);
        return decodeBase64(v, i);
      });
    }
    return { kind: "image", items };
  }
  throw bad(`Unknown input "${input.name}"; model "${model.name}" takes ${accepted}`);
}

/** The request's JSON, and the binary tail when the binary tensor data extension is used. */
async function readInferRequest(
  c: Context<AppEnv>,
  config: Config,
): Promise<{ request: V2InferRequest; binary?: Uint8Array }> {
  const body = await readBodyLimited(c.req.raw, config.MAX_BODY_BYTES, config.BODY_TIMEOUT_MS);
  c.set("bytesIn", body.byteLength);
  const headerLength = c.req.header(HEADER_LENGTH);
  let json: Uint8Array = body;
  let binary: Uint8Array | undefined;
  if (headerLength !== undefined) {
    try {
      ({ json, binary } = splitBody(body, headerLength));
    } catch (err) {
      if (!(err instanceof BinaryDataError)) throw err;
      throw bad(err.message);
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(json));
  } catch {
    throw bad(
      headerLength === undefined
        ? "The request body is not valid JSON (binary tensor data needs the Inference-Header-Content-Length header)"
        : `The first ${json.byteLength} bytes (Inference-Header-Content-Length) are not valid JSON`,
    );
  }
  // Validated here, not by the route's validator: the body is read under the size and time limits,
  // may carry binary data after the JSON, and is accepted whatever its declared Content-Type
  // (Triton's client declares none).
  const result = v2InferRequest.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw bad(`Invalid inference request at ${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  return { request: result.data, binary };
}

const v2ErrorResponse = (description: string, example: string) => ({
  description,
  content: { "application/json": { schema: v2Error, example: { error: example } } },
});
const tags = ["Open Inference Protocol"];
const noContent = (description: string) => ({ description });

const serverMetadataRoute = createRoute({
  method: "get",
  path: "/",
  operationId: "v2ServerMetadata",
  tags,
  summary: "Server metadata",
  responses: {
    200: { description: "Server metadata", content: { "application/json": { schema: v2ServerMetadata } } },
  },
});
const serverLiveRoute = createRoute({
  method: "get",
  path: "/health/live",
  operationId: "v2ServerLive",
  tags,
  summary: "Server live",
  responses: { 200: noContent("Live (empty body)") },
});
const serverReadyRoute = createRoute({
  method: "get",
  path: "/health/ready",
  operationId: "v2ServerReady",
  tags,
  summary: "Server ready",
  responses: { 200: noContent("Ready (empty body)"), 400: noContent("Not ready (empty body)") },
});

const metadataResponses = {
  200: { description: "Model metadata", content: { "application/json": { schema: v2ModelMetadata } } },
  404: v2ErrorResponse("Unknown model or version", 'Unknown model "resnet18"'),
  503: v2ErrorResponse(
    "The model is still loading (Retry-After)",
    'Model "resnet50" is loading; retry shortly',
  ),
};
const modelMetadataRoute = createRoute({
  method: "get",
  path: "/models/{name}",
  operationId: "v2ModelMetadata",
  tags,
  summary: "Model metadata",
  description:
    `\`resnet50\` (MODEL_NAME) lists the network's FP32 input; \`resnet50${IMAGE_MODEL_SUFFIX}\` ` +
    `lists the BYTES input \`${IMAGE_INPUT}\` for encoded images.`,
  request: { params: v2ModelParams },
  responses: metadataResponses,
});
const versionMetadataRoute = createRoute({
  method: "get",
  path: "/models/{name}/versions/{version}",
  operationId: "v2ModelVersionMetadata",
  tags,
  summary: "Model metadata for a version",
  request: { params: v2VersionParams },
  responses: metadataResponses,
});

const readyResponses = {
  200: noContent("Ready (empty body)"),
  400: noContent("Known but not ready: loading or draining (empty body)"),
  404: v2ErrorResponse("Unknown model or version", 'Unknown model "resnet18"'),
};
const modelReadyRoute = createRoute({
  method: "get",
  path: "/models/{name}/ready",
  operationId: "v2ModelReady",
  tags,
  summary: "Model ready",
  request: { params: v2ModelParams },
  responses: readyResponses,
});
const versionReadyRoute = createRoute({
  method: "get",
  path: "/models/{name}/versions/{version}/ready",
  operationId: "v2ModelVersionReady",
  tags,
  summary: "Model version ready",
  request: { params: v2VersionParams },
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
  "`binary_data: true` on an output or `binary_data_output: true` on the request.";

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
  404: v2ErrorResponse("Unknown model or version", 'Unknown model "resnet18"'),
  408: v2ErrorResponse(
    "Body not received within BODY_TIMEOUT_MS",
    "The request body was not received within 30000 ms",
  ),
  413: v2ErrorResponse("Body over MAX_BODY_BYTES", "Request body exceeds the limit of 10485760 bytes"),
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
const inferRoute = createRoute({
  method: "post",
  path: "/models/{name}/infer",
  operationId: "v2ModelInfer",
  tags,
  summary: "Run inference",
  description: inferDescription,
  request: { params: v2ModelParams, body: inferBody },
  responses: inferResponses,
});
const versionInferRoute = createRoute({
  method: "post",
  path: "/models/{name}/versions/{version}/infer",
  operationId: "v2ModelVersionInfer",
  tags,
  summary: "Run inference on a version",
  description: inferDescription,
  request: { params: v2VersionParams, body: inferBody },
  responses: inferResponses,
});

const encoder = new TextEncoder();

export interface V2Deps {
  config: Config;
  state: ModelState;
  metrics: Metrics;
  version: string;
}

export function v2App({ config, state, metrics, version }: V2Deps): OpenAPIHono<AppEnv> {
  const log = logger("http");
  const v2 = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        throw bad(`Invalid ${result.target} ${issue.path.join(".")}: ${issue.message}`);
      }
    },
  });

  // Referenced by the infer routes' request bodies (see inferBody).
  v2.openAPIRegistry.register("InferenceRequest", v2InferRequest);

  v2.onError((err, c) => {
    const e = toV2Error(err);
    if (!e) {
      c.set("rejectReason", "internal");
      // The stack goes to the log, never to the client.
      log.error("Unhandled error: {error}", { error: String(err), stack: (err as Error).stack });
      return c.json({ error: "An unexpected error occurred; it has been logged with this request id" }, 500);
    }
    c.set("rejectReason", e.reason);
    // Built by hand: 499 (client closed) is not a status Hono's c.json accepts.
    return new Response(JSON.stringify({ error: e.message }), {
      status: e.status,
      headers: { "content-type": "application/json", ...e.headers },
    });
  });

  v2.openapi(
    serverMetadataRoute,
    (c) => c.json({ name: "inference-gateway", version, extensions: SERVER_EXTENSIONS }, 200),
  );
  v2.openapi(serverLiveRoute, (c) => c.body(null, 200));
  // The protocol: 200 means ready, a 4xx status means not (the body stays empty).
  v2.openapi(serverReadyRoute, (c) => c.body(null, state.status === "ready" ? 200 : 400));

  const metadata = (name: string, version?: string) => {
    const model = findModel(config, name);
    const classifier = loaded(state, model, version);
    if (!classifier) throw notReady(model, state);
    return modelMetadata(model, classifier);
  };
  v2.openapi(modelMetadataRoute, (c) => c.json(metadata(c.req.valid("param").name), 200));
  v2.openapi(versionMetadataRoute, (c) => {
    const { name, version } = c.req.valid("param");
    return c.json(metadata(name, version), 200);
  });

  const ready = (name: string, version?: string) => {
    const model = findModel(config, name);
    loaded(state, model, version);
    return state.serving ? 200 : 400;
  };
  v2.openapi(modelReadyRoute, (c) => c.body(null, ready(c.req.valid("param").name)));
  v2.openapi(versionReadyRoute, (c) => {
    const { name, version } = c.req.valid("param");
    return c.body(null, ready(name, version));
  });

  const infer = async (c: Context<AppEnv>, name: string, version: string | undefined) => {
    const model = findModel(config, name);
    loaded(state, model, version);
    const classifier = state.serving;
    if (!classifier) throw notReady(model, state);
    const stages = c.get("stages");
    // A queue place is taken before the body is read: when full, refuse before spending anything.
    const admissions = [classifier.admit()];
    try {
      const { request, binary } = await stages.run("read_body", () => readInferRequest(c, config));
      const info = classifier.info;
      const inputs = parseInputs(request, binary, model, classifier, config.MAX_IMAGES_PER_REQUEST);
      const outputs = request.outputs ?? [{ name: info.outputName }];
      for (const o of outputs) {
        if (o.name !== info.outputName) {
          throw bad(`Unknown output "${o.name}"; model "${model.name}" outputs "${info.outputName}"`);
        }
      }
      const k = Math.max(1, ...outputs.map((o) => o.parameters?.classification ?? 1));
      admissions.push(...classifier.admitAll(inputs.items.length - 1));
      const options = (i: number) => ({
        admission: admissions[i],
        signal: clientSignal(c),
        timeoutMs: config.REQUEST_TIMEOUT_MS,
      });
      const indexed = inputs.items.length > 1 || inputs.kind === "image";
      const results: Inference[] = await Promise.all(inputs.items.map((item, i) => {
        let run: Promise<Inference>;
        if (inputs.kind === "tensor") {
          run = classifier.classifyTensor(item as Float32Array, k, stages, options(i));
        } else {
          run = classifier.classify(item as Uint8Array, k, stages, options(i));
        }
        // Which image failed goes into the message; the error itself is translated once, by onError.
        return indexed ? run.catch((err) => Promise.reject(new ItemError(i, err))) : run;
      }));
      results.forEach((r, i) => {
        if (finiteOutput(r)) return;
        const which = indexed ? ` (item ${i})` : "";
        if (inputs.kind === "tensor") {
          throw bad(
            `Input "${info.inputName}"${which} drives the model to non-finite outputs; ` +
              "preprocessed image tensors lie within about ±3",
          );
        }
        throw new NonFiniteOutputError(model.name, `image ${i}`);
      });
      for (const r of results) {
        const confidence = r.top[0].confidence;
        recordSafely("prediction_confidence", [confidence], () => metrics.confidence.observe(confidence));
      }

      const n = results.length;
      const binaryAll = request.parameters?.binary_data_output === true;
      const tails: Uint8Array[] = [];
      const body = {
        model_name: model.name,
        model_version: info.version,
        ...(request.id !== undefined ? { id: request.id } : {}),
        outputs: outputs.map((o) => {
          const asBinary = o.parameters?.binary_data ?? binaryAll;
          const top = o.parameters?.classification;
          if (top !== undefined) {
            // Classification extension (Triton): "value:index:label", the value being the model's output there.
            const data = results.flatMap((r) =>
              r.top.slice(0, top).map((s) => `${r.output[s.class_id]}:${s.class_id}:${s.class_name}`)
            );
            const head = { name: o.name, shape: [n, top], datatype: "BYTES" };
            if (!asBinary) return { ...head, parameters: { classification: top }, data };
            const bytes = writeBytesElements(data.map((s) => encoder.encode(s)));
            tails.push(bytes);
            return { ...head, parameters: { classification: top, binary_data_size: bytes.byteLength } };
          }
          const head = { name: o.name, shape: [n, info.classes], datatype: "FP32" };
          if (!asBinary) return { ...head, data: results.flatMap((r) => Array.from(r.output)) };
          const bytes = writeFloat32(results.flatMap((r) => Array.from(r.output)));
          tails.push(bytes);
          return { ...head, parameters: { binary_data_size: bytes.byteLength } };
        }),
      };
      if (tails.length === 0) return c.json(body, 200);
      const joined = joinBody(body, tails);
      return c.body(joined.body, 200, {
        "content-type": "application/octet-stream",
        [HEADER_LENGTH]: String(joined.headerLength),
      });
    } finally {
      for (const a of admissions) a.release();
    }
  };
  v2.openapi(inferRoute, (c) => infer(c, c.req.valid("param").name, undefined));
  v2.openapi(versionInferRoute, (c) => {
    const { name, version } = c.req.valid("param");
    return infer(c, name, version);
  });
  return v2;
}
