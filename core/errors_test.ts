import { ModelNotReadyError, NonFiniteOutputError } from "../serving/infer.ts";
import assert from "node:assert/strict";
import { CodedError, ERROR_CODES, errorCode, errorMessage, isErrorCode } from "./errors.ts";
import { DecodeError } from "../image/decode.ts";
import { ImageHeaderError } from "../image/image_header.ts";
import { DownloadError } from "../model/artifact/download.ts";
import { ModelLoadError } from "../model/artifact/resolve.ts";
import { CalibrationError } from "../model/quantize/calibration_set.ts";
import { AlreadyQuantizedError } from "../model/quantize/quantize.ts";
import { CancelledError, DeadlineError, DrainingError, OverloadedError } from "../model/runtime/batcher.ts";
import { PixelLimitError } from "../model/runtime/classifier.ts";
import { ModelShapeError } from "../model/runtime/runner.ts";
import { WorkerCrashedError } from "../model/runtime/worker_runner.ts";
import {
  ModelNotReadyError as RepositoryNotReadyError,
  UnknownModelError,
  VersionLoadError,
} from "../model/repository/registry.ts";
import { UploadError } from "../model/repository/upload.ts";

const header = { format: "jpeg", width: 5000, height: 5000 } as ConstructorParameters<
  typeof PixelLimitError
>[0];

Deno.test("coded errors", async (t) => {
  await t.step("each error of model/ and image/ carries its code and keeps its name", () => {
    const cases: Array<[Error, string, string]> = [
      [new OverloadedError(8), "overloaded", "OverloadedError"],
      [new DeadlineError(100), "deadline_exceeded", "DeadlineError"],
      [new CancelledError(), "cancelled", "CancelledError"],
      [new DrainingError(), "draining", "DrainingError"],
      [new ImageHeaderError("x", "unsupported"), "image_unsupported", "ImageHeaderError"],
      [new ImageHeaderError("x", "malformed", "jpeg"), "image_malformed", "ImageHeaderError"],
      [new PixelLimitError(header, 1000), "pixel_limit", "PixelLimitError"],
      [new DecodeError("x"), "decode_failed", "DecodeError"],
      [new ModelShapeError("x"), "model_shape", "ModelShapeError"],
      [new ModelLoadError("x"), "model_load", "ModelLoadError"],
      [new WorkerCrashedError("x"), "worker_crashed", "WorkerCrashedError"],
      [new DownloadError("x"), "download_failed", "DownloadError"],
      [new CalibrationError("x"), "calibration_failed", "CalibrationError"],
      [new AlreadyQuantizedError(), "already_quantized", "AlreadyQuantizedError"],
      [new ModelNotReadyError("m", "loading"), "not_ready", "ModelNotReadyError"],
      [new NonFiniteOutputError("m", "tensor"), "non_finite_input", "NonFiniteOutputError"],
      [new NonFiniteOutputError("m", "image"), "non_finite_output", "NonFiniteOutputError"],
      [new UnknownModelError("m"), "unknown_model", "UnknownModelError"],
      [new RepositoryNotReadyError("m", "LOADING"), "not_ready", "ModelNotReadyError"],
      [new VersionLoadError("corrupt_file", "x"), "version_load_failed", "VersionLoadError"],
      [new UploadError(400, "x"), "upload_refused", "UploadError"],
    ];
    for (const [err, code, name] of cases) {
      assert.ok(err instanceof CodedError && err instanceof Error, name);
      assert.equal(errorCode(err), code);
      assert.equal(err.name, name);
      assert.match(String(err), new RegExp(`^${name}: `), "the name shows in logs and stacks");
    }
    // Every code of the vocabulary is carried by some error, and no two kinds share one.
    assert.deepEqual([...new Set(cases.map(([, code]) => code))].sort(), [...ERROR_CODES].sort());
  });

  await t.step("the cause and the message are kept", () => {
    const cause = new Error("disk");
    const err = new DownloadError("Download failed", { cause });
    assert.equal(err.message, "Download failed");
    assert.equal(err.cause, cause);
  });

  await t.step("a code is read from anything that carries one, as after crossing a Worker", () => {
    const structuredClone_ = structuredClone({
      name: "DeadlineError",
      code: "deadline_exceeded",
      message: "m",
    });
    assert.equal(errorCode(structuredClone_), "deadline_exceeded");
    assert.equal(errorCode({ code: "ENOENT" }), undefined, "a code outside the vocabulary is not ours");
    assert.equal(errorCode(Object.assign(new Error("x"), { code: 42 })), undefined);
    for (const value of [undefined, null, "overloaded", 0, new Error("plain")]) {
      assert.equal(errorCode(value), undefined);
    }
    assert.ok(isErrorCode("overloaded") && !isErrorCode("Overloaded") && !isErrorCode(undefined));
  });

  await t.step("errorMessage: an Error's message, else the value as a string", () => {
    assert.equal(errorMessage(new TypeError("bad")), "bad");
    assert.equal(errorMessage("text"), "text");
    assert.equal(errorMessage(42), "42");
    assert.equal(errorMessage(undefined), "undefined");
    assert.equal(errorMessage({ toString: () => "custom" }), "custom");
  });
});
