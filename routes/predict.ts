/**
 * POST /predict: images as multipart `file` fields (what the FastAPI gateway
 * this replaces took; several for a batch) or one image as a raw body;
 * answers the top-k ImageNet classes.
 */
import type { Context } from "@hono/hono";
import type { Config } from "../config.ts";
import type { Admission } from "../model/batcher.ts";
import type { Classification, Classifier } from "../model/classifier.ts";
import type { ModelState } from "../model/state.ts";
import { SYNTHETIC_WEIGHTS_WARNING } from "../model/runner.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { RequestStages } from "../observability/stages.ts";
import { readBodyLimited } from "./body.ts";
import { asProblem, problemBody, ProblemError, PROBLEMS } from "./problem.ts";
import { topKQuery } from "./schemas.ts";
import type { AppEnv } from "./types.ts";

export const SYNTHETIC_WARNING = SYNTHETIC_WEIGHTS_WARNING;

interface Upload {
  bytes: Uint8Array;
  filename?: string;
}

/** The images of a request: the `file` parts of a multipart form, or the body itself. */
async function uploads(c: Context<AppEnv>, config: Config): Promise<Upload[]> {
  const body = await readBodyLimited(c.req.raw, config.MAX_BODY_BYTES, config.BODY_TIMEOUT_MS);
  c.set("bytesIn", body.byteLength);
  const type = (c.req.header("content-type") ?? "").toLowerCase();
  if (type.startsWith("multipart/form-data")) {
    let form: FormData;
    try {
      form = await new Response(body, { headers: { "content-type": type } }).formData();
    } catch {
      throw new ProblemError("bad_request", "The multipart body cannot be parsed");
    }
    const files = form.getAll("file");
    if (files.length === 0) throw new ProblemError("missing_file", "The multipart form has no `file` field");
    if (files.length > config.MAX_IMAGES_PER_REQUEST) {
      throw new ProblemError(
        "too_many_images",
        `The request has ${files.length} images; at most ${config.MAX_IMAGES_PER_REQUEST} are accepted`,
      );
    }
    const out: Upload[] = [];
    for (const file of files) {
      if (typeof file === "string") {
        throw new ProblemError("missing_file", "Each `file` field must be a file upload, not a text value");
      }
      out.push({ bytes: new Uint8Array(await file.arrayBuffer()), filename: file.name || undefined });
    }
    if (out.length === 1 && out[0].bytes.byteLength === 0) {
      throw new ProblemError("missing_file", "The uploaded file is empty");
    }
    return out;
  }
  if (type.startsWith("application/x-www-form-urlencoded")) {
    throw new ProblemError("bad_request", "Send the image as multipart/form-data or as a raw image body");
  }
  if (body.byteLength === 0) {
    throw new ProblemError(
      "missing_file",
      "The request has no body: send an image (multipart field `file` or raw)",
    );
  }
  return [{ bytes: body }];
}

async function classifyOne(
  c: Context<AppEnv>,
  config: Config,
  classifier: Classifier,
  metrics: Metrics,
  upload: Upload,
  k: number,
  stages: RequestStages,
  admission: Admission,
): Promise<Classification> {
  const header = classifier.inspect(upload.bytes);
  metrics.inputBytes.observe(upload.bytes.byteLength);
  metrics.inputPixels.observe(header.width * header.height);
  const result = await classifier.classify(upload.bytes, k, stages, {
    admission,
    signal: c.req.raw.signal,
    timeoutMs: config.REQUEST_TIMEOUT_MS,
  });
  metrics.confidence.observe(result.top[0].confidence);
  return result;
}

export function predictHandler(config: Config, state: ModelState, metrics: Metrics) {
  return async function predict(c: Context<AppEnv>): Promise<Response> {
    const started = performance.now();
    const query = topKQuery.safeParse(c.req.query());
    if (!query.success) {
      throw new ProblemError(
        "invalid_parameter",
        `top_k must be an integer from 1 to 20, got "${c.req.query("top_k")}"`,
      );
    }
    const k = query.data.top_k ?? config.TOP_K;
    const classifier = state.serving;
    if (!classifier) {
      throw new ProblemError("not_ready", `The model is ${state.status}; retry shortly`, {
        "retry-after": "5",
      });
    }
    const stages = c.get("stages");
    // Take a queue place before reading the body: when full, refuse before spending anything.
    let first: Admission;
    try {
      first = classifier.admit();
    } catch (err) {
      throw asProblem(err);
    }
    const admissions = [first];
    try {
      const images = await stages.run("read_body", async (annotate) => {
        const list = await uploads(c, config);
        annotate({ "http.request.body.size": c.get("bytesIn"), "images.count": list.length });
        return list;
      });
      try {
        admissions.push(...classifier.admitAll(images.length - 1));
      } catch (err) {
        throw asProblem(err);
      }
      const info = classifier.info;
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
        ...(info.weights === "synthetic" ? { warning: SYNTHETIC_WARNING } : {}),
      };
      const round = (ms: number | undefined) => +(ms ?? 0).toFixed(3);

      if (images.length === 1) {
        let result: Classification;
        try {
          result = await classifyOne(c, config, classifier, metrics, images[0], k, stages, admissions[0]);
        } catch (err) {
          throw asProblem(err);
        }
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
        });
      }

      // Several images: each succeeds or fails on its own; the answer keeps their order.
      const settled = await Promise.allSettled(
        images.map((img, i) => classifyOne(c, config, classifier, metrics, img, k, stages, admissions[i])),
      );
      const results = settled.map((s, index) => {
        const filename = images[index].filename;
        if (s.status === "fulfilled") {
          return { index, filename, prediction: s.value.top[0], top_k: s.value.top, image: s.value.image };
        }
        const problem = asProblem(s.reason);
        if (!(problem instanceof ProblemError)) throw s.reason;
        metrics.rejected.inc({ reason: PROBLEMS[problem.code].reason });
        return { index, filename, error: problemBody(problem.code, problem.detail) };
      });
      return c.json({
        ...head,
        results,
        timings_ms: { read_body: round(stages.timings.read_body), total: round(performance.now() - started) },
      });
    } finally {
      for (const a of admissions) a.release();
    }
  };
}
