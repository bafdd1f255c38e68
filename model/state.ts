/**
 * The model's lifecycle as the HTTP layer sees it. The server listens before
 * the model is loaded so liveness answers during a slow load; readiness and
 * predictions wait for `ready`.
 */
import type { Classifier } from "./classifier.ts";

export type ModelStatus = "loading" | "ready" | "failed" | "draining";

export class ModelState {
  status: ModelStatus = "loading";
  classifier: Classifier | undefined;
  /** Why loading failed, for `/ready` and `/info`. */
  error: string | undefined;
  /** How long the load and warm-up took, in seconds. */
  loadSeconds: number | undefined;
  warmupMs: number | undefined;

  markReady(classifier: Classifier, loadSeconds: number, warmupMs: number): void {
    this.classifier = classifier;
    this.loadSeconds = loadSeconds;
    this.warmupMs = warmupMs;
    this.status = "ready";
  }

  markFailed(error: string): void {
    this.error = error;
    this.status = "failed";
  }

  /** Stops admitting work; in-flight requests still finish. */
  drain(): void {
    this.status = "draining";
  }

  /** The classifier, only while new work is admitted. */
  get serving(): Classifier | undefined {
    return this.status === "ready" ? this.classifier : undefined;
  }
}
