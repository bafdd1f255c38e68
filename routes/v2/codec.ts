/**
 * The protocol's tensors: a request's JSON (and binary tail) into model
 * inputs, checked against the model, and the model's answers into output
 * tensors. Every pass is linear in the request: nested data is flattened with
 * an explicit stack, counts are checked before values are copied, and no
 * request-sized array is spread into an argument list.
 */
import type { Inference } from "../../model/runtime/classifier.ts";
import type { ModelInfo } from "../../model/runtime/runner.ts";
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import type { ServedModel } from "../../serving/models.ts";
import type { ModelInput } from "../../serving/infer.ts";
import {
  BinaryDataError,
  joinBody,
  readBytesElements,
  readFloat32,
  splitBody,
  writeBytesElements,
  writeFloat32,
} from "./binary.ts";
import { bad } from "./errors.ts";
import { type V2InferRequest, v2InferRequest } from "./schemas.ts";

/** Name of the BYTES input that takes encoded image files. */
export const IMAGE_INPUT = "image";

type V2Input = V2InferRequest["inputs"][number];
type V2Output = NonNullable<V2InferRequest["outputs"]>[number];

/** The request's JSON, and its binary tail when the binary tensor data extension is used. */
export interface InferBody {
  request: V2InferRequest;
  binary?: Uint8Array;
}

/**
 * Parses a body already read under the size and time limits. Validated here, not by the route's validator:
 * the body may carry binary data after the JSON, and is accepted whatever its declared Content-Type
 * (Triton's client declares none).
 */
export function parseInferBody(body: Uint8Array, headerLength: string | undefined): InferBody {
  let json: Uint8Array = body;
  let binary: Uint8Array | undefined;
  if (headerLength !== undefined) {
    try {
      ({ json, binary } = splitBody(body, headerLength));
    } catch (err) {
      if (!(err instanceof BinaryDataError)) throw err;
      throw bad(err.message);
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(json));
  } catch {
    throw bad(
      headerLength === undefined
        ? "The request body is not valid JSON (binary tensor data needs the Inference-Header-Content-Length header)"
        : `The first ${json.byteLength} bytes (Inference-Header-Content-Length) are not valid JSON`,
    );
  }
  const result = v2InferRequest.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw bad(`Invalid inference request at ${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  return { request: result.data, binary };
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

/**
 * Padded standard base64, decoded natively. A validating regular expression overflowed the stack on
 * photo-sized strings (8 MB and up); the length check and the decoder's own refusal accept exactly what
 * it accepted.
 */
function decodeBase64(s: string, index: number): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const invalid = () => bad(`image ${index}: element is not valid base64`);
  if (clean.length === 0 || clean.length % 4 !== 0) throw invalid();
  try {
    return Uint8Array.fromBase64(clean);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    throw invalid();
  }
}

/** The one input, and its binary data when it declares binary_data_size. */
function soleInput(request: V2InferRequest, binary: Uint8Array | undefined, accepted: string, model: string) {
  if (request.inputs.length !== 1) {
    throw bad(`Model "${model}" takes exactly one input, ${accepted}; got ${request.inputs.length}`);
  }
  const input = request.inputs[0];
  const binarySize = input.parameters?.binary_data_size;
  if (binarySize !== undefined && input.data !== undefined) {
    throw bad(`Input "${input.name}" has both data and binary_data_size; send one`);
  }
  if (binarySize === undefined && input.data === undefined) {
    throw bad(`Input "${input.name}" has no data (nor binary_data_size for binary tensor data)`);
  }
  if (binarySize === undefined) {
    if (binary && binary.byteLength > 0) {
      throw bad(`${binary.byteLength} bytes follow the JSON header but no input declares binary_data_size`);
    }
    return { input, raw: undefined };
  }
  if (!binary) {
    throw bad(
      `Input "${input.name}" declares binary_data_size but the request has no Inference-Header-Content-Length`,
    );
  }
  if (binarySize !== binary.byteLength) {
    throw bad(
      `Input "${input.name}" declares binary_data_size ${binarySize}, but ${binary.byteLength} bytes follow the JSON header`,
    );
  }
  return { input, raw: binary };
}

function checkBatch(n: number, max: number): void {
  if (!(n >= 1 && n <= max)) throw bad(`Batch size must be from 1 to ${max}, got ${n}`);
}

/** The shape as messages show it: a request's 500,000 dimensions are not echoed back. */
const shapeOf = (input: V2Input) =>
  input.shape.length <= 8
    ? `[${input.shape.join(",")}]`
    : `[${input.shape.slice(0, 8).join(",")},…] (${input.shape.length} dimensions)`;

/** FP32 [N,3,224,224]: N preprocessed images, checked finite in FP32 (1e39 is a finite double, not an FP32). */
function tensorInputs(input: V2Input, raw: Uint8Array | undefined, max: number): ModelInput[] {
  if (input.datatype !== "FP32") throw bad(`Input "${input.name}" must be FP32, got ${input.datatype}`);
  const [n, c, h, w] = input.shape;
  if (input.shape.length !== 4 || c !== 3 || h !== 224 || w !== 224) {
    throw bad(`Input "${input.name}" must have shape [N,3,224,224], got ${shapeOf(input)}`);
  }
  checkBatch(n, max);
  const count = n * TENSOR_SIZE;
  const values = raw ? binaryFloats(input, raw, count) : jsonFloats(input, count);
  const items: ModelInput[] = [];
  for (let b = 0; b < n; b++) {
    items.push({ kind: "tensor", tensor: values.subarray(b * TENSOR_SIZE, (b + 1) * TENSOR_SIZE) });
  }
  return items;
}

const notFinite = (input: V2Input, i: number, sent: unknown) =>
  bad(`Input "${input.name}" value ${i} (${sent}) is not a finite FP32 number (FP32 holds at most ±3.4e38)`);

function binaryFloats(input: V2Input, raw: Uint8Array, count: number): Float32Array {
  let values: Float32Array;
  try {
    values = readFloat32(raw, count);
  } catch (err) {
    if (!(err instanceof BinaryDataError)) throw err;
    throw bad(`Input "${input.name}" binary data ${err.message} for shape ${shapeOf(input)}`);
  }
  for (let i = 0; i < count; i++) if (!Number.isFinite(values[i])) throw notFinite(input, i, values[i]);
  return values;
}

function jsonFloats(input: V2Input, count: number): Float32Array {
  const flat = flatten(input.data!, count);
  if (flat.length !== count) {
    throw bad(`Input "${input.name}" has ${flat.length} values; shape ${shapeOf(input)} needs ${count}`);
  }
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const v = flat[i];
    if (typeof v !== "number") throw bad(`Input "${input.name}" value ${i} is not a number`);
    values[i] = v;
    // Checked as FP32, the type the model computes in: 1e39 is a finite double but Infinity in FP32.
    if (!Number.isFinite(values[i])) throw notFinite(input, i, v);
  }
  return values;
}

/** BYTES [N] or [N,1]: N encoded image files, base64 in JSON or raw with the binary extension. */
function imageInputs(input: V2Input, raw: Uint8Array | undefined, max: number): ModelInput[] {
  if (input.datatype !== "BYTES") throw bad(`Input "${IMAGE_INPUT}" must be BYTES, got ${input.datatype}`);
  if (!(input.shape.length === 1 || (input.shape.length === 2 && input.shape[1] === 1))) {
    throw bad(`Input "${IMAGE_INPUT}" must have shape [N] or [N,1], got ${shapeOf(input)}`);
  }
  const n = input.shape[0];
  checkBatch(n, max);
  const files = raw ? checkCount(binaryElements(raw), n) : jsonElements(input, n);
  return files.map((bytes) => ({ kind: "image", bytes }));
}

function checkCount<T>(elements: T[], n: number): T[] {
  if (elements.length !== n) {
    throw bad(`Input "${IMAGE_INPUT}" has ${elements.length} elements; its shape says ${n}`);
  }
  return elements;
}

function binaryElements(raw: Uint8Array): Uint8Array[] {
  try {
    return readBytesElements(raw);
  } catch (err) {
    if (!(err instanceof BinaryDataError)) throw err;
    throw bad(`Input "${IMAGE_INPUT}" binary data ${err.message}`);
  }
}

function jsonElements(input: V2Input, n: number): Uint8Array[] {
  return checkCount(flatten(input.data!, n), n).map((v, i) => {
    if (typeof v !== "string") throw bad(`image ${i}: BYTES elements must be base64 strings`);
    return decodeBase64(v, i);
  });
}

/** The request's one input as model inputs, checked against the model's. */
export function parseInputs(
  body: InferBody,
  model: ServedModel,
  info: ModelInfo,
  maxItems: number,
): ModelInput[] {
  const accepted = model.kind === "tensor"
    ? `"${info.inputName}" (FP32 [N,3,224,224]; "${IMAGE_INPUT}" BYTES is accepted too)`
    : `"${IMAGE_INPUT}" (BYTES [N])`;
  const { input, raw } = soleInput(body.request, body.binary, accepted, model.name);
  if (input.name === info.inputName && model.kind === "tensor") return tensorInputs(input, raw, maxItems);
  if (input.name === IMAGE_INPUT) return imageInputs(input, raw, maxItems);
  throw bad(`Unknown input "${input.name}"; model "${model.name}" takes ${accepted}`);
}

/** The outputs asked for (the model's one output when none is named), each at most once. */
export function requestedOutputs(request: V2InferRequest, model: ServedModel, info: ModelInfo): V2Output[] {
  const outputs = request.outputs ?? [{ name: info.outputName }];
  const seen = new Set<string>();
  for (const o of outputs) {
    if (o.name !== info.outputName) {
      throw bad(`Unknown output "${o.name}"; model "${model.name}" outputs "${info.outputName}"`);
    }
    if (seen.has(o.name)) throw bad(`Output "${o.name}" is requested more than once`);
    seen.add(o.name);
  }
  return outputs;
}

/** How many classes to rank: the largest classification count asked for, at least 1. */
export function classesToRank(outputs: readonly V2Output[]): number {
  let k = 1;
  for (const o of outputs) k = Math.max(k, o.parameters?.classification ?? 1);
  return k;
}

const encoder = new TextEncoder();

/** One output tensor per requested output: JSON data, or binary bytes appended to `tails`. */
function encodeOutput(
  o: V2Output,
  results: readonly Inference[],
  info: ModelInfo,
  binaryAll: boolean,
  tails: Uint8Array[],
) {
  const n = results.length;
  const asBinary = o.parameters?.binary_data ?? binaryAll;
  const top = o.parameters?.classification;
  if (top !== undefined) {
    // Classification extension (Triton): "value:index:label", the value being the model's output there.
    const data = results.flatMap((r) =>
      r.top.slice(0, top).map((s) => `${r.output[s.class_id]}:${s.class_id}:${s.class_name}`)
    );
    const head = { name: o.name, shape: [n, top], datatype: "BYTES" };
    if (!asBinary) return { ...head, parameters: { classification: top }, data };
    const bytes = writeBytesElements(data.map((s) => encoder.encode(s)));
    tails.push(bytes);
    return { ...head, parameters: { classification: top, binary_data_size: bytes.byteLength } };
  }
  const head = { name: o.name, shape: [n, info.classes], datatype: "FP32" };
  const values = new Float32Array(n * info.classes);
  results.forEach((r, i) => values.set(r.output, i * info.classes));
  if (!asBinary) return { ...head, data: Array.from(values) };
  const bytes = writeFloat32(values);
  tails.push(bytes);
  return { ...head, parameters: { binary_data_size: bytes.byteLength } };
}

/** The response: JSON, or the JSON header and the binary outputs after it (headerLength set). */
export function encodeResponse(
  request: V2InferRequest,
  outputs: readonly V2Output[],
  model: ServedModel,
  info: ModelInfo,
  results: readonly Inference[],
): { json: unknown } | { body: Uint8Array<ArrayBuffer>; headerLength: number } {
  const binaryAll = request.parameters?.binary_data_output === true;
  const tails: Uint8Array[] = [];
  const json = {
    model_name: model.name,
    model_version: info.version,
    ...(request.id !== undefined ? { id: request.id } : {}),
    outputs: outputs.map((o) => encodeOutput(o, results, info, binaryAll, tails)),
  };
  if (tails.length === 0) return { json };
  return joinBody(json, tails);
}
