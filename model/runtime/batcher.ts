/**
 * Dynamic batching with back-pressure, as Triton and TorchServe do it:
 * requests wait in one bounded FIFO queue; whenever a runner is idle, up to
 * `maxBatchSize` of them go to it as one `run`, after waiting at most
 * `maxBatchDelayMs` for the batch to fill. A full queue refuses at once
 * (overloaded), a request that has not started by its deadline is dropped
 * (timeout), and a request whose client went away leaves the queue.
 */
import { type Link, ROOT_CONTEXT, type SpanContext, SpanKind, type Tracer } from "@opentelemetry/api";
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import { guarded } from "../../observability/telemetry_guard.ts";
import type { ModelRunner } from "./runner.ts";
import { CodedError } from "../../core/errors.ts";

export class OverloadedError extends CodedError {
  constructor(readonly queueLimit: number) {
    super("overloaded", `The inference queue is full (${queueLimit} requests waiting); retry shortly`);
  }
}

export class DeadlineError extends CodedError {
  constructor(readonly timeoutMs: number) {
    super(
      "deadline_exceeded",
      `The request waited ${timeoutMs} ms without reaching the model and was dropped`,
    );
  }
}

export class CancelledError extends CodedError {
  constructor() {
    super("cancelled", "The client went away before inference started");
  }
}

export class DrainingError extends CodedError {
  constructor() {
    super("draining", "The server is shutting down and admits no new work");
  }
}

export interface BatchResult {
  /** This request's output row (a copy it owns). */
  row: Float32Array;
  batchSize: number;
}

/**
 * A place in the queue held for a request from the moment it arrives, before
 * its body is read and decoded, so an overloaded server refuses in
 * microseconds instead of after spending CPU on an image it will not run.
 */
export interface Admission {
  /** Gives the place back (request failed before reaching the queue). Idempotent. */
  release(): void;
}

class Ticket implements Admission {
  #held = true;
  constructor(private readonly give: (notify: boolean) => void) {}
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    this.give(true);
  }
  /** Turns the held place into a queue entry (no drain notification in between). */
  consume(): boolean {
    if (!this.#held) return false;
    this.#held = false;
    this.give(false);
    return true;
  }
}

export interface SubmitOptions {
  /** The admission this request holds; it becomes its queue entry. */
  admission?: Admission;
  /** Aborted when the client disconnects: a queued request then leaves the queue. */
  signal?: AbortSignal;
  /** Milliseconds from now by which inference must have started. */
  timeoutMs?: number;
  /** Called when the request's batch starts running (ends its queue wait). */
  onStart?: (batchSize: number) => void;
  /** The request's span, linked from the batch span. */
  link?: SpanContext;
}

export interface BatcherOptions {
  maxBatchSize: number;
  maxBatchDelayMs: number;
  maxQueue: number;
  /** Output classes per row. */
  classes: number;
  tracer?: Tracer;
  /** Telemetry callbacks; each is called through the telemetry guard, so it cannot fail a request. */
  onQueueDepth?: (depth: number) => void;
  onBatch?: (size: number) => void;
}

interface Job {
  input: Float32Array;
  enqueuedAt: number;
  resolve: (r: BatchResult) => void;
  reject: (err: Error) => void;
  options: SubmitOptions;
  timer?: ReturnType<typeof setTimeout>;
  abort?: () => void;
}

export class Batcher {
  readonly #options: BatcherOptions;
  readonly #runners: ModelRunner[];
  readonly #idle: ModelRunner[];
  readonly #queue: Job[] = [];
  #fillTimer: ReturnType<typeof setTimeout> | undefined;
  #draining = false;
  #inFlight = 0;
  #idleWaiters: Array<() => void> = [];
  /** Admitted requests still being read or decoded; they count against maxQueue. */
  #reserved = 0;
  readonly #executions = new Map<number, { count: number; ms: number }>();

  constructor(runners: ModelRunner[], options: BatcherOptions) {
    this.#runners = [...runners];
    this.#idle = [...runners];
    this.#options = {
      ...options,
      onQueueDepth: guarded("queue_depth", options.onQueueDepth),
      onBatch: guarded("batch_size", options.onBatch),
    };
  }

  /** Requests admitted and not yet running: waiting in the queue or still being decoded. */
  get queueDepth(): number {
    return this.#queue.length + this.#reserved;
  }

  /** Holds a queue place for a new request; throws at once when full or draining. */
  admit(): Admission {
    if (this.#draining) throw new DrainingError();
    if (this.queueDepth >= this.#options.maxQueue) throw new OverloadedError(this.#options.maxQueue);
    this.#reserved++;
    this.#options.onQueueDepth?.(this.queueDepth);
    return new Ticket((notify) => {
      this.#reserved--;
      if (notify) {
        this.#options.onQueueDepth?.(this.queueDepth);
        this.#notifyIdle();
      }
    });
  }

  /** Successful runs so far by batch size, with their total duration (Triton's statistics report them). */
  get executions(): ReadonlyMap<number, { readonly count: number; readonly ms: number }> {
    return this.#executions;
  }

  get runners(): readonly ModelRunner[] {
    return this.#runners;
  }

  /** Queues one preprocessed image (TENSOR_SIZE floats) for inference. */
  submit(input: Float32Array, options: SubmitOptions = {}): Promise<BatchResult> {
    if (options.admission instanceof Ticket && options.admission.consume()) {
      // The request already holds its place: it is admitted even while draining.
    } else {
      if (this.#draining) return Promise.reject(new DrainingError());
      if (this.queueDepth >= this.#options.maxQueue) {
        return Promise.reject(new OverloadedError(this.#options.maxQueue));
      }
    }
    if (options.signal?.aborted) return Promise.reject(new CancelledError());
    return new Promise<BatchResult>((resolve, reject) => {
      const job: Job = { input, enqueuedAt: performance.now(), resolve, reject, options };
      if (options.timeoutMs !== undefined) {
        job.timer = setTimeout(
          () => this.#remove(job, new DeadlineError(options.timeoutMs!)),
          options.timeoutMs,
        );
      }
      if (options.signal) {
        job.abort = () => this.#remove(job, new CancelledError());
        options.signal.addEventListener("abort", job.abort, { once: true });
      }
      this.#queue.push(job);
      this.#options.onQueueDepth?.(this.queueDepth);
      this.#schedule();
    });
  }

  /**
   * Takes a runner out of service (for example one whose worker died). Queued
   * work stays queued for the remaining runners; a batch it was running has
   * already been failed by the runner itself.
   */
  retire(runner: ModelRunner): void {
    const i = this.#runners.indexOf(runner);
    if (i >= 0) this.#runners.splice(i, 1);
    const j = this.#idle.indexOf(runner);
    if (j >= 0) this.#idle.splice(j, 1);
  }

  /** Puts a (new) runner into service. */
  add(runner: ModelRunner): void {
    this.#runners.push(runner);
    this.#idle.push(runner);
    this.#schedule();
  }

  /** Stops admitting; resolves when the queue is empty and nothing runs. */
  drain(): Promise<void> {
    this.#draining = true;
    if (this.queueDepth === 0 && this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #remove(job: Job, err: Error): void {
    const i = this.#queue.indexOf(job);
    if (i < 0) return; // already started: it will finish normally
    this.#queue.splice(i, 1);
    this.#settle(job);
    this.#options.onQueueDepth?.(this.queueDepth);
    job.reject(err);
    this.#notifyIdle();
  }

  #settle(job: Job): void {
    if (job.timer !== undefined) clearTimeout(job.timer);
    if (job.abort) job.options.signal?.removeEventListener("abort", job.abort);
  }

  #schedule(): void {
    if (this.#queue.length === 0 || this.#idle.length === 0) return;
    const waited = performance.now() - this.#queue[0].enqueuedAt;
    const full = this.#queue.length >= this.#options.maxBatchSize;
    if (full || waited >= this.#options.maxBatchDelayMs) {
      if (this.#fillTimer !== undefined) {
        clearTimeout(this.#fillTimer);
        this.#fillTimer = undefined;
      }
      this.#dispatch();
      this.#schedule();
      return;
    }
    // Wait for the batch to fill, but never past the oldest request's delay budget.
    this.#fillTimer ??= setTimeout(() => {
      this.#fillTimer = undefined;
      this.#schedule();
    }, this.#options.maxBatchDelayMs - waited);
  }

  #dispatch(): void {
    const runner = this.#idle.shift()!;
    const jobs = this.#queue.splice(0, this.#options.maxBatchSize);
    this.#options.onQueueDepth?.(this.queueDepth);
    const n = jobs.length;
    const input = new Float32Array(n * TENSOR_SIZE);
    for (let i = 0; i < n; i++) {
      this.#settle(jobs[i]);
      input.set(jobs[i].input.subarray(0, TENSOR_SIZE), i * TENSOR_SIZE);
      jobs[i].options.onStart?.(n);
    }
    this.#options.onBatch?.(n);
    this.#inFlight++;
    const links: Link[] = jobs.flatMap((j) => (j.options.link ? [{ context: j.options.link }] : []));
    // Its own trace (not a child of whichever request happened to trigger it), linked to every member.
    const span = this.#options.tracer?.startSpan("inference_batch", {
      kind: SpanKind.INTERNAL,
      links,
      attributes: { "inference.batch_size": n },
    }, ROOT_CONTEXT);
    const started = performance.now();
    runner.run(input, n).then(
      (output) => {
        const e = this.#executions.get(n) ?? { count: 0, ms: 0 };
        this.#executions.set(n, { count: e.count + 1, ms: e.ms + performance.now() - started });
        const classes = this.#options.classes;
        for (let i = 0; i < n; i++) {
          jobs[i].resolve({ row: output.slice(i * classes, (i + 1) * classes), batchSize: n });
        }
      },
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        span?.recordException(error);
        for (const job of jobs) job.reject(error);
      },
    ).finally(() => {
      span?.end();
      this.#inFlight--;
      // A runner retired while it ran does not come back.
      if (this.#runners.includes(runner)) this.#idle.push(runner);
      this.#notifyIdle();
      this.#schedule();
    });
  }

  #notifyIdle(): void {
    if (this.#draining && this.queueDepth === 0 && this.#inFlight === 0) {
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
  }
}
