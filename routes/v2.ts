/**
 * The Open Inference Protocol (KServe "v2" REST), so clients, load testers
 * and gateways built for Triton, KServe or MLServer work unchanged. Requests
 * share /predict's middleware, limits, batcher, metrics and traces. Errors use
 * the protocol's `{"error": "..."}` body.
 *
 * Inputs: the model's own FP32 input ([N,3,224,224], already preprocessed) or
 * a BYTES input named "image" ([N], base64 JPEG/PNG files we decode). The
 * classification extension (`parameters.classification: k` on a requested
 * output) returns the top k as BYTES strings `score:index:label`.
 */
import type { Context, Hono } from "@hono/hono";
import type { Config } from "../config.ts";
import type { Admission } from "../model/batcher.ts";
import type { Classifier, Inference } from "../model/classifier.ts";
import { TENSOR_SIZE } from "../image/preprocess.ts";
import type { ModelState } from "../model/state.ts";
import type { Metrics } from "../observability/metrics.ts";
import { readBodyLimited } from "./body.ts";
import { asProblem, ProblemError, PROBLEMS } from "./problem.ts";
import { v2InferRequest } from "./schemas.ts";
import type { AppEnv } from "./types.ts";

/** Name of the BYTES input that takes encoded image files. */
export const IMAGE_INPUT = "image";
export const SERVER_EXTENSIONS = ["classification"];

export class V2Error extends Error {
  constructor(
    readonly status: 400 | 404 | 408 | 413 | 499 | 500 | 503 | 504,
    message: string,
    /** Rejection reason for requests_rejected_total. */
    readonly reason: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "V2Error";
  }
}

const bad = (message: string, reason = "bad_request") => new V2Error(400, message, reason);

/** Pipeline errors in the protocol's terms: every input problem is a 400. */
function asV2Error(err: unknown, index?: number): unknown {
  const problem = asProblem(err);
  if (!(problem instanceof ProblemError)) return err;
  const where = index === undefined ? "" : `image ${index}: `;
  const status = problem.status >= 500 || problem.status === 499
    ? problem.status
    : problem.status === 413 || problem.status === 408
    ? problem.status
    : 400;
  return new V2Error(
    status as V2Error["status"],
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

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeBase64(s: string, index: number): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  if (clean.length === 0 || !BASE64.test(clean)) throw bad(`image ${index}: element is not valid base64`);
  const bin = atob(clean);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function serving(state: ModelState, name: string, version?: string): Classifier {
  const classifier = state.classifier;
  if (!classifier || name !== classifier.info.name) {
    throw new V2Error(404, `Unknown model "${name}"`, "not_found");
  }
  if (version !== undefined && version !== classifier.info.version) {
    throw new V2Error(
      404,
      `Model "${name}" has no version "${version}"; it serves "${classifier.info.version}"`,
      "not_found",
    );
  }
  if (!state.serving) {
    throw new V2Error(503, `Model "${name}" is ${state.status}`, "not_ready", { "retry-after": "5" });
  }
  return classifier;
}

function modelMetadata(classifier: Classifier) {
  const info = classifier.info;
  const dims = (shape: ReadonlyArray<number | string>) => shape.map((d) => (typeof d === "number" ? d : -1));
  return {
    name: info.name,
    versions: [info.version],
    platform: "onnxruntime_onnx",
    parameters: { precision: info.precision, weights: info.weights },
    inputs: [
      { name: info.inputName, datatype: "FP32", shape: dims(info.inputShape) },
      { name: IMAGE_INPUT, datatype: "BYTES", shape: [-1] },
    ],
    outputs: [{ name: info.outputName, datatype: "FP32", shape: dims(info.outputShape) }],
  };
}

interface ParsedInputs {
  kind: "tensor" | "image";
  items: Array<Float32Array | Uint8Array>;
}

function parseInputs(
  request: ReturnType<typeof v2InferRequest.parse>,
  classifier: Classifier,
  max: number,
): ParsedInputs {
  const info = classifier.info;
  if (request.inputs.length !== 1) {
    throw bad(
      `Expected exactly one input ("${info.inputName}" FP32 or "${IMAGE_INPUT}" BYTES), got ${request.inputs.length}`,
    );
  }
  const input = request.inputs[0];
  const n = input.shape[0];
  if (input.name === info.inputName) {
    if (input.datatype !== "FP32") throw bad(`Input "${input.name}" must be FP32, got ${input.datatype}`);
    const [, c, h, w] = input.shape;
    if (input.shape.length !== 4 || c !== 3 || h !== 224 || w !== 224) {
      throw bad(`Input "${input.name}" must have shape [N,3,224,224], got [${input.shape.join(",")}]`);
    }
    if (n < 1 || n > max) throw bad(`Batch size must be from 1 to ${max}, got ${n}`);
    const values = flatten(input.data, n * TENSOR_SIZE);
    if (values.length !== n * TENSOR_SIZE) {
      throw bad(
        `Input "${input.name}" has ${values.length} values; shape [${input.shape.join(",")}] needs ${
          n * TENSOR_SIZE
        }`,
      );
    }
    const items: Float32Array[] = [];
    for (let b = 0; b < n; b++) {
      const t = new Float32Array(TENSOR_SIZE);
      for (let i = 0; i < TENSOR_SIZE; i++) {
        const v = values[b * TENSOR_SIZE + i];
        if (typeof v !== "number" || !Number.isFinite(v)) {
          throw bad(`Input "${input.name}" value ${b * TENSOR_SIZE + i} is not a finite number`);
        }
        t[i] = v;
      }
      items.push(t);
    }
    return { kind: "tensor", items };
  }
  if (input.name === IMAGE_INPUT) {
    if (input.datatype !== "BYTES") throw bad(`Input "${IMAGE_INPUT}" must be BYTES, got ${input.datatype}`);
    if (!(input.shape.length === 1 || (input.shape.length === 2 && input.shape[1] === 1))) {
      throw bad(`Input "${IMAGE_INPUT}" must have shape [N] or [N,1], got [${input.shape.join(",")}]`);
    }
    if (n < 1 || n > max) throw bad(`Batch size must be from 1 to ${max}, got ${n}`);
    const values = flatten(input.data, n);
    if (values.length !== n) {
      throw bad(`Input "${IMAGE_INPUT}" has ${values.length} elements; its shape says ${n}`);
    }
    return {
      kind: "image",
      items: values.map((v, i) => {
        if (typeof v !== "string") throw bad(`image ${i}: BYTES elements must be base64 strings`);
        return decodeBase64(v, i);
      }),
    };
  }
  throw bad(
    `Unknown input "${input.name}"; model "${info.name}" takes "${info.inputName}" (FP32 [N,3,224,224]) or "${IMAGE_INPUT}" (BYTES [N])`,
  );
}

export function registerV2(
  app: Hono<AppEnv>,
  config: Config,
  state: ModelState,
  metrics: Metrics,
  version: string,
): void {
  app.get("/v2", (c) => c.json({ name: "inference-gateway", version, extensions: SERVER_EXTENSIONS }));
  app.get("/v2/health/live", (c) => c.body(null, 200));
  // The protocol: 200 means ready, a 4xx status means not (the body stays empty).
  app.get("/v2/health/ready", (c) => c.body(null, state.status === "ready" ? 200 : 400));

  const metadata = (c: Context<AppEnv>) =>
    c.json(modelMetadata(serving(state, c.req.param("name")!, c.req.param("version"))));
  app.get("/v2/models/:name", metadata);
  app.get("/v2/models/:name/versions/:version", metadata);

  const ready = (c: Context<AppEnv>) => {
    try {
      serving(state, c.req.param("name")!, c.req.param("version"));
      return c.body(null, 200);
    } catch (err) {
      if (err instanceof V2Error && err.status === 503) return c.body(null, 400);
      throw err;
    }
  };
  app.get("/v2/models/:name/ready", ready);
  app.get("/v2/models/:name/versions/:version/ready", ready);

  const infer = async (c: Context<AppEnv>) => {
    const classifier = serving(state, c.req.param("name")!, c.req.param("version"));
    const stages = c.get("stages");
    let first: Admission;
    try {
      first = classifier.admit();
    } catch (err) {
      throw asV2Error(err);
    }
    const admissions = [first];
    try {
      const request = await stages.run("read_body", async () => {
        let body: Uint8Array<ArrayBuffer>;
        try {
          body = await readBodyLimited(c.req.raw, config.MAX_BODY_BYTES, config.BODY_TIMEOUT_MS);
        } catch (err) {
          throw asV2Error(err);
        }
        c.set("bytesIn", body.byteLength);
        let json: unknown;
        try {
          json = JSON.parse(new TextDecoder().decode(body));
        } catch {
          throw bad("The request body is not valid JSON");
        }
        const parsed = v2InferRequest.safeParse(json);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          throw bad(`Invalid inference request at ${issue.path.join(".") || "(root)"}: ${issue.message}`);
        }
        return parsed.data;
      });
      const info = classifier.info;
      const inputs = parseInputs(request, classifier, config.MAX_IMAGES_PER_REQUEST);
      const outputs = request.outputs ?? [{ name: info.outputName }];
      for (const o of outputs) {
        if (o.name !== info.outputName) {
          throw bad(`Unknown output "${o.name}"; model "${info.name}" outputs "${info.outputName}"`);
        }
      }
      const k = Math.max(1, ...outputs.map((o) => o.parameters?.classification ?? 1));
      try {
        admissions.push(...classifier.admitAll(inputs.items.length - 1));
      } catch (err) {
        throw asV2Error(err);
      }
      const options = (i: number) => ({
        admission: admissions[i],
        signal: c.req.raw.signal,
        timeoutMs: config.REQUEST_TIMEOUT_MS,
      });
      const results: Inference[] = await Promise.all(inputs.items.map(async (item, i) => {
        try {
          if (inputs.kind === "tensor") {
            return await classifier.classifyTensor(item as Float32Array, k, stages, options(i));
          }
          const bytes = item as Uint8Array;
          const header = classifier.inspect(bytes);
          metrics.inputBytes.observe(bytes.byteLength);
          metrics.inputPixels.observe(header.width * header.height);
          return await classifier.classify(bytes, k, stages, options(i));
        } catch (err) {
          throw asV2Error(err, inputs.items.length > 1 || inputs.kind === "image" ? i : undefined);
        }
      }));
      for (const r of results) metrics.confidence.observe(r.top[0].confidence);
      const n = results.length;
      return c.json({
        model_name: info.name,
        model_version: info.version,
        ...(request.id !== undefined ? { id: request.id } : {}),
        outputs: outputs.map((o) => {
          const top = o.parameters?.classification;
          if (top !== undefined) {
            return {
              name: o.name,
              shape: [n, top],
              datatype: "BYTES",
              parameters: { classification: top },
              data: results.flatMap((r) =>
                r.top.slice(0, top).map((s) => `${s.confidence}:${s.class_id}:${s.class_name}`)
              ),
            };
          }
          const data: number[] = [];
          for (const r of results) for (const v of r.output) data.push(v);
          return { name: o.name, shape: [n, info.classes], datatype: "FP32", data };
        }),
      });
    } finally {
      for (const a of admissions) a.release();
    }
  };
  app.post("/v2/models/:name/infer", infer);
  app.post("/v2/models/:name/versions/:version/infer", infer);
}
