/**
 * POST /predict: an image as multipart field `file` (what the FastAPI gateway
 * this replaces took) or as a raw body; answers the top-k ImageNet classes.
 */
import type { Context } from "@hono/hono";
import type { Config } from "../config.ts";
import { CancelledError, DeadlineError, DrainingError, OverloadedError } from "../model/batcher.ts";
import { type Classification, DecodeError, ImageHeaderError, PixelLimitError } from "../model/classifier.ts";
import type { ModelState } from "../model/state.ts";
import type { Metrics } from "../observability/metrics.ts";
import { readBodyLimited } from "./body.ts";
import { ProblemError } from "./problem.ts";
import type { AppEnv } from "./types.ts";

export const SYNTHETIC_WARNING =
  "This model has synthetic (random) weights: predictions are meaningless. Set MODEL_PATH or MODEL_SOURCE=zoo for pretrained weights.";

function parseTopK(raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const k = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isInteger(k) || k < 1 || k > 20) {
    throw new ProblemError("invalid_parameter", `top_k must be an integer from 1 to 20, got "${raw}"`);
  }
  return k;
}

/** The image bytes of a request: the `file` part of a multipart form, or the body itself. */
async function imageBytes(c: Context<AppEnv>, limit: number): Promise<Uint8Array> {
  const body = await readBodyLimited(c.req.raw, limit);
  c.set("bytesIn", body.byteLength);
  const type = (c.req.header("content-type") ?? "").toLowerCase();
  if (type.startsWith("multipart/form-data")) {
    let form: FormData;
    try {
      form = await new Response(body, { headers: { "content-type": type } }).formData();
    } catch {
      throw new ProblemError("bad_request", "The multipart body cannot be parsed");
    }
    const file = form.get("file");
    if (file === null) throw new ProblemError("missing_file", "The multipart form has no `file` field");
    if (typeof file === "string") {
      throw new ProblemError("missing_file", "The `file` field must be a file upload, not a text value");
    }
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (bytes.byteLength === 0) throw new ProblemError("missing_file", "The uploaded file is empty");
    return bytes;
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
  return body;
}

/** Maps pipeline errors to problems; anything else is a 500 via the app's error handler. */
function asProblem(err: unknown): unknown {
  if (err instanceof ImageHeaderError) {
    return new ProblemError(
      err.kind === "unsupported" ? "unsupported_media_type" : "undecodable_image",
      err.message,
    );
  }
  if (err instanceof PixelLimitError) return new ProblemError("too_many_pixels", err.message);
  if (err instanceof DecodeError) return new ProblemError("undecodable_image", err.message);
  if (err instanceof OverloadedError) {
    return new ProblemError("overloaded", err.message, { "retry-after": "1" });
  }
  if (err instanceof DeadlineError) return new ProblemError("timeout", err.message);
  if (err instanceof CancelledError) return new ProblemError("client_closed", err.message);
  if (err instanceof DrainingError) return new ProblemError("not_ready", err.message, { "retry-after": "5" });
  return err;
}

export function predictHandler(config: Config, state: ModelState, metrics: Metrics) {
  return async function predict(c: Context<AppEnv>): Promise<Response> {
    const started = performance.now();
    const k = parseTopK(c.req.query("top_k"), config.TOP_K);
    const classifier = state.serving;
    if (!classifier) {
      throw new ProblemError("not_ready", `The model is ${state.status}; retry shortly`, {
        "retry-after": "5",
      });
    }
    const stages = c.get("stages");
    // Take a queue place before reading the body: when full, refuse before spending anything.
    let admission;
    try {
      admission = classifier.admit();
    } catch (err) {
      throw asProblem(err);
    }
    let result: Classification;
    try {
      const bytes = await stages.run("read_body", async (annotate) => {
        const b = await imageBytes(c, config.MAX_BODY_BYTES);
        annotate({ "http.request.body.size": c.get("bytesIn"), "image.bytes": b.byteLength });
        return b;
      });
      const header = classifier.inspect(bytes);
      metrics.inputBytes.observe(bytes.byteLength);
      metrics.inputPixels.observe(header.width * header.height);
      result = await classifier.classify(bytes, k, stages, {
        admission,
        signal: c.req.raw.signal,
        timeoutMs: config.REQUEST_TIMEOUT_MS,
      });
    } catch (err) {
      throw asProblem(err);
    } finally {
      admission.release();
    }
    metrics.confidence.observe(result.top[0].confidence);
    const info = classifier.info;
    const t = stages.timings;
    const round = (ms: number | undefined) => +(ms ?? 0).toFixed(3);
    return c.json({
      request_id: c.get("requestId"),
      model: { name: info.name, version: info.version, weights: info.weights, sha256: info.sha256 },
      weights: info.weights,
      ...(info.weights === "synthetic" ? { warning: SYNTHETIC_WARNING } : {}),
      prediction: result.top[0],
      top_k: result.top,
      image: result.image,
      timings_ms: {
        read_body: round(t.read_body),
        decode: round(t.decode),
        preprocess: round(t.preprocess),
        inference: round(t.inference),
        postprocess: round(t.postprocess),
        total: round(performance.now() - started),
      },
      inference_time_ms: round(t.inference),
    });
  };
}
