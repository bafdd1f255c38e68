/**
 * The errors of the layers beneath become problems by their code alone, one
 * table for /predict and /v2, so an error rebuilt from a Worker's reply (a
 * plain Error carrying the code) is told apart as the original would be.
 */
import assert from "node:assert/strict";
import { CodedError, ERROR_CODES, type ErrorCode } from "../core/errors.ts";
import { DeadlineError, OverloadedError } from "../model/runtime/batcher.ts";
import { ImageHeaderError } from "../image/image_header.ts";
import { ModelNotReadyError, NonFiniteOutputError } from "../serving/infer.ts";
import { asProblem, type ProblemCode, ProblemError } from "./problem.ts";

/** Every code, decided: the problem it is, or undefined for a fault (500). A new code fails here until decided. */
const EXPECTED: Record<ErrorCode, ProblemCode | undefined> = {
  overloaded: "overloaded",
  deadline_exceeded: "timeout",
  cancelled: "client_closed",
  draining: "not_ready",
  image_unsupported: "unsupported_media_type",
  image_malformed: "undecodable_image",
  pixel_limit: "too_many_pixels",
  decode_failed: "undecodable_image",
  not_ready: "not_ready",
  non_finite_input: "bad_request",
  non_finite_output: undefined,
  model_shape: undefined,
  model_load: undefined,
  worker_crashed: undefined,
  download_failed: undefined,
  calibration_failed: undefined,
  already_quantized: undefined,
  unknown_model: "not_found",
  // The repository's load route answers these itself (routes/v2/repository.ts); anywhere else they are faults.
  version_load_failed: undefined,
  upload_refused: undefined,
};

Deno.test("every error code maps to its problem, or is left a fault", () => {
  for (const code of ERROR_CODES) {
    assert.ok(Object.hasOwn(EXPECTED, code), `no decision for "${code}"`);
    // As a Worker's reply rebuilds it: a plain Error with the code, no class of ours.
    const crossed = Object.assign(new Error(`a ${code} error`), { code });
    const problem = asProblem(crossed);
    const expected = EXPECTED[code];
    if (expected === undefined) {
      assert.equal(problem, crossed, code);
    } else {
      assert.ok(problem instanceof ProblemError, code);
      assert.equal(problem.code, expected, code);
      assert.equal(problem.detail, `a ${code} error`);
    }
  }
});

Deno.test("the classes carry the codes the table reads", () => {
  const cases: Array<[CodedError, ProblemCode, Record<string, string>]> = [
    [new OverloadedError(32), "overloaded", { "retry-after": "1" }],
    [new DeadlineError(5000), "timeout", {}],
    [new ImageHeaderError("GIF is not supported", "unsupported", "gif"), "unsupported_media_type", {}],
    [new ImageHeaderError("truncated", "malformed"), "undecodable_image", {}],
    [new ModelNotReadyError("resnet50", "loading"), "not_ready", { "retry-after": "5" }],
    [new NonFiniteOutputError("resnet50", "tensor"), "bad_request", {}],
  ];
  for (const [err, code, headers] of cases) {
    const problem = asProblem(err) as ProblemError;
    assert.equal(problem.code, code, err.name);
    assert.deepEqual(problem.headers, headers, err.name);
  }
  // An image the gateway preprocessed itself that the model turns to NaN is a fault.
  const fault = new NonFiniteOutputError("resnet50-image", "image");
  assert.equal(asProblem(fault), fault);
});

Deno.test("what carries no code of ours is left for the 500 handler", () => {
  for (const err of [new Error("boom"), "a string", null, { code: "no_such_code" }, { code: 42 }]) {
    assert.equal(asProblem(err), err);
  }
});
