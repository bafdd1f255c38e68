/**
 * One inference request, the same whatever carried it: take a queue place,
 * read the request under it, take the places for its other items (all or
 * none), classify each item, refuse an answer that is not finite, record the
 * confidence and the model's statistics, and give every place back. HTTP's
 * /predict and /v2 call it; a gRPC server would too. Nothing here knows a
 * transport: errors are thrown with a `code`, and each transport maps codes to
 * its own statuses.
 */
import { CodedError } from "../core/errors.ts";
import type { Admission } from "../model/runtime/batcher.ts";
import type { Classification, Classifier, Inference } from "../model/runtime/classifier.ts";
import type { ModelView } from "./models.ts";
import type { StageName } from "../observability/metrics.ts";
import type { Annotate, StageRunner } from "../observability/stages.ts";
import { recordSafely } from "../observability/telemetry_guard.ts";
import type { ModelStatistics } from "./stats.ts";

/** One item of a request: an encoded image, or a tensor already preprocessed (TENSOR_SIZE floats, NCHW). */
export type ModelInput = { kind: "image"; bytes: Uint8Array } | { kind: "tensor"; tensor: Float32Array };

/** What reading a request yields: its items, how many classes to rank, and whatever the transport keeps. */
export interface ReadRequest {
  inputs: ModelInput[];
  k: number;
}

/** The model cannot take requests now (loading, failed, draining). */
export class ModelNotReadyError extends CodedError {
  constructor(readonly model: string, readonly status: string) {
    super("not_ready", `Model "${model}" is ${status}; retry shortly`);
  }
}

/**
 * The model answered NaN or ±Infinity. For a tensor the client sent, the tensor is at fault (preprocessed
 * images lie within about ±3); for an image the gateway preprocessed itself, the server or its model is.
 */
export class NonFiniteOutputError extends CodedError {
  constructor(readonly model: string, readonly input: ModelInput["kind"]) {
    super(
      input === "tensor" ? "non_finite_input" : "non_finite_output",
      input === "tensor"
        ? "The input drives the model to non-finite outputs; preprocessed image tensors lie within about ±3"
        : `Model "${model}" produced non-finite outputs (NaN or Infinity) for the image`,
    );
  }
}

/** True when the output row and the confidences derived from it hold only finite numbers. */
export function finiteOutput(result: Inference): boolean {
  for (let i = 0; i < result.output.length; i++) if (!Number.isFinite(result.output[i])) return false;
  return result.top.every((s) => Number.isFinite(s.confidence));
}

export type ItemOutcome<R> = { ok: true; result: R } | { ok: false; error: unknown };

export interface InferenceCall<P extends ReadRequest> {
  state: ModelView;
  /** The name the request used (it goes into messages and statistics). */
  model: string;
  /**
   * Reads and parses the request; runs once the first queue place is held, so a full server refuses
   * before reading a byte. Throws to refuse the request.
   */
  read: (classifier: Classifier) => Promise<P>;
  stages: StageRunner;
  /** Aborts when the client goes away: its queued items leave the queue. */
  signal?: AbortSignal;
  timeoutMs: number;
  /** Each answered item's top-1 confidence (a metric); run through the telemetry guard. */
  onConfidence?: (confidence: number) => void;
  /** Where each item is counted, and under which model's name. */
  statistics?: { table: ModelStatistics; model: string };
}

export interface InferenceAnswer<P, R> {
  classifier: Classifier;
  request: P;
  /** One outcome per input, in order; items succeed or fail on their own. */
  items: ItemOutcome<R>[];
}

/** Stage timings of one item, passed on to the request's runner (spans, histograms, Server-Timing). */
class ItemStages implements StageRunner {
  readonly ms: Partial<Record<StageName, number>> = {};
  constructor(private readonly inner: StageRunner) {}

  async run<T>(stage: StageName, fn: (annotate: Annotate) => T | Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await this.inner.run(stage, fn);
    } finally {
      this.ms[stage] = (this.ms[stage] ?? 0) + performance.now() - t0;
    }
  }

  record(...args: Parameters<StageRunner["record"]>): void {
    this.inner.record(...args);
    this.ms[args[0]] = (this.ms[args[0]] ?? 0) + args[2];
  }
}

/** Runs one request through the model; see the module's comment for the sequence. */
export async function runInference<P extends ReadRequest>(
  call: InferenceCall<P>,
): Promise<InferenceAnswer<P, Inference | Classification>> {
  const classifier = call.state.serving;
  if (!classifier) throw new ModelNotReadyError(call.model, call.state.status);
  const admissions: Admission[] = [classifier.admit()];
  try {
    const request = await call.read(classifier);
    admissions.push(...classifier.admitAll(request.inputs.length - 1));
    const items = await Promise.all(
      request.inputs.map((input, i) => runItem(call, classifier, input, request.k, admissions[i])),
    );
    return { classifier, request, items };
  } finally {
    for (const a of admissions) a.release();
  }
}

async function runItem<P extends ReadRequest>(
  call: InferenceCall<P>,
  classifier: Classifier,
  input: ModelInput,
  k: number,
  admission: Admission,
): Promise<ItemOutcome<Inference | Classification>> {
  const started = performance.now();
  const stages = new ItemStages(call.stages);
  const options = { admission, signal: call.signal, timeoutMs: call.timeoutMs };
  try {
    const result = input.kind === "tensor"
      ? await classifier.classifyTensor(input.tensor, k, stages, options)
      : await classifier.classify(input.bytes, k, stages, options);
    if (!finiteOutput(result)) throw new NonFiniteOutputError(call.model, input.kind);
    const confidence = result.top[0].confidence;
    if (call.onConfidence) {
      recordSafely("prediction_confidence", [confidence], () => call.onConfidence!(confidence));
    }
    call.statistics?.table.record(call.statistics.model, true, performance.now() - started, stages.ms);
    return { ok: true, result };
  } catch (error) {
    call.statistics?.table.record(call.statistics.model, false, performance.now() - started, stages.ms);
    return { ok: false, error };
  }
}
