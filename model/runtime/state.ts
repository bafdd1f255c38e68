/**
 * The model's lifecycle as the HTTP layer sees it. The server listens before
 * the model is loaded so liveness answers during a slow load; readiness and
 * predictions wait for `ready`.
 */
import type { Classifier } from "./classifier.ts";

/** What /ready and /info say of the model; the one list. */
export const MODEL_STATUSES = ["loading", "ready", "failed", "draining"] as const;
export type ModelStatus = typeof MODEL_STATUSES[number];

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
    // A model that finishes loading during shutdown serves, but never reports ready.
    if (this.status !== "draining") this.status = "ready";
  }

  markFailed(error: string): void {
    this.error = error;
    this.status = "failed";
  }

  /**
   * Takes the instance out of rotation: /ready answers 503 from now on. Work is
   * still admitted: shutdown answers every request on an open connection, and
   * the classifier's own drain is what stops admission, once none is left.
   */
  drain(): void {
    this.status = "draining";
  }

  /** The classifier, while it admits work (ready, or draining until its own drain). */
  get serving(): Classifier | undefined {
    return this.status === "ready" || this.status === "draining" ? this.classifier : undefined;
  }
}
