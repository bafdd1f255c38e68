/**
 * The binary tensor data extension of the Open Inference Protocol (Triton's
 * and KServe's): the JSON header comes first, `Inference-Header-Content-Length`
 * bytes long, and tensors marked with `parameters.binary_data_size` follow it
 * as raw little-endian bytes, in input order. A BYTES element is a 4-byte
 * little-endian length and its bytes. Triton's own clients send this by
 * default; it carries an image's FP32 tensor in 602 KB instead of ~3.2 MB of JSON.
 */

export const HEADER_LENGTH = "inference-header-content-length";

export class BinaryDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BinaryDataError";
  }
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** `count` FP32 values from little-endian bytes. */
export function readFloat32(bytes: Uint8Array, count: number): Float32Array {
  if (bytes.byteLength !== count * 4) {
    throw new BinaryDataError(`holds ${bytes.byteLength} bytes; ${count} FP32 values need ${count * 4}`);
  }
  if (littleEndian) return new Float32Array(bytes.slice().buffer);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** BYTES elements: each a 4-byte little-endian length followed by that many bytes. */
export function readBytesElements(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    if (at + 4 > bytes.byteLength) throw new BinaryDataError("ends inside a BYTES element's length prefix");
    const length = view.getUint32(at, true);
    at += 4;
    if (at + length > bytes.byteLength) {
      throw new BinaryDataError(`declares a ${length}-byte element past the end of its data`);
    }
    out.push(bytes.subarray(at, at + length));
    at += length;
  }
  return out;
}

export function writeFloat32(values: ArrayLike<number>): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return out;
}

export function writeBytesElements(elements: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(elements.reduce((n, e) => n + 4 + e.byteLength, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const e of elements) {
    view.setUint32(at, e.byteLength, true);
    out.set(e, at + 4);
    at += 4 + e.byteLength;
  }
  return out;
}

/** Splits a body into its JSON header and binary tail by the header's declared length. */
export function splitBody(
  body: Uint8Array,
  headerLength: string,
): { json: Uint8Array; binary: Uint8Array } {
  const n = Number(headerLength);
  if (!/^\d+$/.test(headerLength.trim()) || !Number.isSafeInteger(n) || n > body.byteLength) {
    throw new BinaryDataError(
      `Inference-Header-Content-Length must be a byte count from 0 to the body's ${body.byteLength}, got "${headerLength}"`,
    );
  }
  return { json: body.subarray(0, n), binary: body.subarray(n) };
}

/** Joins a JSON header and binary outputs into one body; the header's length goes in Inference-Header-Content-Length. */
export function joinBody(
  header: unknown,
  binary: Uint8Array[],
): { body: Uint8Array<ArrayBuffer>; headerLength: number } {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = new Uint8Array(json.byteLength + binary.reduce((n, b) => n + b.byteLength, 0));
  body.set(json, 0);
  let at = json.byteLength;
  for (const b of binary) {
    body.set(b, at);
    at += b.byteLength;
  }
  return { body, headerLength: json.byteLength };
}
