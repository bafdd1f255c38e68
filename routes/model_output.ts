/**
 * Whether the model's answer for one input can be served. JSON has no NaN or
 * Infinity (they would go out as null) and a ranking of NaNs means nothing, so
 * such an answer is never a 200: for a tensor the client sent it is the
 * client's input (400), for an image our own preprocessing produced it is a
 * fault of the server or its model (500).
 */
import type { Inference } from "../model/classifier.ts";

/** True when the output row and the probabilities derived from it hold only finite numbers. */
export function finiteOutput(result: Inference): boolean {
  for (const row of [result.output, result.probabilities]) {
    for (let i = 0; i < row.length; i++) if (!Number.isFinite(row[i])) return false;
  }
  return true;
}

/** The model answered NaN or ±Infinity for an image the gateway preprocessed itself: a fault, logged, 500. */
export class NonFiniteOutputError extends Error {
  constructor(model: string, which = "the image") {
    super(`Model "${model}" produced non-finite outputs (NaN or Infinity) for ${which}`);
    this.name = "NonFiniteOutputError";
  }
}
