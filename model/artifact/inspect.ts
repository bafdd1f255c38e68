/**
 * What a model file is, learnt in one streaming pass over its bytes: its
 * SHA-256, whether its weights are our synthetic ones, and whether it is
 * already quantized. The protobuf is walked, not decoded: only the graph's
 * node operator types are read, and the initializers (nearly all of the
 * ~100 MB) are skipped by their length as they stream past, so the main
 * thread neither holds the file nor builds its object tree. onnxruntime then
 * reads the file once, in the Worker that runs it.
 */
import { createHash } from "node:crypto";
import type { Weights } from "./types.ts";

/** Marker our synthetic builder writes into the ONNX producer_version field. */
export const SYNTHETIC_PRODUCER = "synthetic-resnet50";

/** Operators that only appear in a model that has already been quantized. */
export const QUANTIZED_OPS: ReadonlySet<string> = new Set([
  "QuantizeLinear",
  "DequantizeLinear",
  "DynamicQuantizeLinear",
  "QLinearConv",
  "QLinearMatMul",
  "ConvInteger",
  "MatMulInteger",
  "QLinearAdd",
  "QGemm",
]);

/** Longer than any operator type: a length past it means the bytes are not an ONNX node. */
const MAX_OPERATOR_TYPE = 256;

/** How far into the file the producer fields are looked for: they precede the graph. */
const HEAD_BYTES = 512;

export interface ModelFacts {
  sha256: string;
  size: number;
  weights: Weights;
  /** QDQ or QOperator nodes in the graph. False for a file that is not a readable ONNX model: onnxruntime says so, with the path, when it loads it. */
  quantized: boolean;
}

/** Pulls bytes from a stream of chunks, hashing each chunk once as it passes. */
class Reader {
  readonly #chunks: AsyncIterator<Uint8Array> | Iterator<Uint8Array>;
  readonly #hash = createHash("sha256");
  readonly head = new Uint8Array(HEAD_BYTES);
  #headLength = 0;
  #chunk: Uint8Array = new Uint8Array(0);
  #at = 0;
  /** Bytes consumed before the current chunk. */
  #base = 0;
  #ended = false;

  readonly #hashing: boolean;

  constructor(chunks: AsyncIterator<Uint8Array> | Iterator<Uint8Array>, hashing: boolean) {
    this.#chunks = chunks;
    this.#hashing = hashing;
  }

  /** Offset of the next byte. */
  get position(): number {
    return this.#base + this.#at;
  }

  get headBytes(): Uint8Array {
    return this.head.subarray(0, this.#headLength);
  }

  /** Makes the next byte available; false at the end of the stream. */
  async #fill(): Promise<boolean> {
    while (this.#at >= this.#chunk.length) {
      if (this.#ended) return false;
      const next = await this.#chunks.next();
      if (next.done) {
        this.#ended = true;
        return false;
      }
      this.#base += this.#chunk.length;
      this.#chunk = next.value;
      this.#at = 0;
      if (this.#hashing) this.#hash.update(next.value);
      if (this.#headLength < HEAD_BYTES) {
        const take = next.value.subarray(0, HEAD_BYTES - this.#headLength);
        this.head.set(take, this.#headLength);
        this.#headLength += take.length;
      }
    }
    return true;
  }

  /** The next byte, or undefined at the end. */
  async byte(): Promise<number | undefined> {
    if (!(await this.#fill())) return undefined;
    return this.#chunk[this.#at++];
  }

  async varint(): Promise<number> {
    let value = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      const b = await this.byte();
      if (b === undefined) throw new RangeError("The file ends inside a varint");
      // Past 2^53 the value is only used as a length, which no file reaches.
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
    throw new RangeError("A varint is longer than ten bytes");
  }

  async skip(n: number): Promise<void> {
    while (n > 0) {
      if (!(await this.#fill())) throw new RangeError("The file ends inside a field");
      const step = Math.min(n, this.#chunk.length - this.#at);
      this.#at += step;
      n -= step;
    }
  }

  /** `n` bytes as a string; for short fields (operator types) only. */
  async text(n: number): Promise<string> {
    if (n > MAX_OPERATOR_TYPE) throw new RangeError("An operator type is implausibly long");
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const b = await this.byte();
      if (b === undefined) throw new RangeError("The file ends inside a string");
      bytes[i] = b;
    }
    return new TextDecoder().decode(bytes);
  }

  /** Reads (and hashes) whatever is left. */
  async drain(): Promise<void> {
    this.#at = this.#chunk.length;
    while (await this.#fill()) this.#at = this.#chunk.length;
  }

  digest(): string {
    return this.#hashing ? this.#hash.digest("hex") : "";
  }
}

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

async function skipField(reader: Reader, wireType: number): Promise<void> {
  switch (wireType) {
    case VARINT:
      await reader.varint();
      return;
    case I64:
      return await reader.skip(8);
    case LEN:
      return await reader.skip(await reader.varint());
    case I32:
      return await reader.skip(4);
    default:
      // Groups (3, 4) are not in the ONNX schema; 6 and 7 do not exist.
      throw new RangeError(`Wire type ${wireType} is not ONNX's`);
  }
}

/** Calls `field` for each field of the message ending at `end` (or at the end of the stream). */
async function fields(
  reader: Reader,
  end: number | undefined,
  field: (number: number, wireType: number) => Promise<boolean>,
): Promise<void> {
  while (end === undefined || reader.position < end) {
    let tag: number;
    if (end === undefined) {
      const first = await reader.byte();
      if (first === undefined) return;
      tag = first < 0x80 ? first : (first & 0x7f) + 128 * await reader.varint();
    } else tag = await reader.varint();
    const number = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (number === 0) throw new RangeError("Field number 0");
    if (!(await field(number, wireType))) await skipField(reader, wireType);
  }
  if (reader.position !== end) throw new RangeError("A field overruns its message");
}

// ONNX field numbers: ModelProto.graph = 7, GraphProto.node = 1, NodeProto.op_type = 4.
const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const NODE_OP_TYPE = 4;

/** The operator type of every node of the model's graph(s), in order. */
async function operatorTypes(reader: Reader): Promise<string[]> {
  const ops: string[] = [];
  const within = async (wireType: number, walk: (end: number) => Promise<void>) => {
    if (wireType !== LEN) return false;
    const length = await reader.varint();
    await walk(reader.position + length);
    return true;
  };
  await fields(
    reader,
    undefined,
    (number, wireType) =>
      number !== MODEL_GRAPH
        ? Promise.resolve(false)
        : within(wireType, (graphEnd) =>
          fields(reader, graphEnd, (number, wireType) =>
            number !== GRAPH_NODE
              ? Promise.resolve(false)
              : within(wireType, (nodeEnd) =>
                fields(reader, nodeEnd, async (number, wireType) => {
                  if (number !== NODE_OP_TYPE || wireType !== LEN) {
                    return false;
                  }
                  ops.push(await reader.text(await reader.varint()));
                  return true;
                })))),
  );
  return ops;
}

function weightsOfHead(head: Uint8Array): Weights {
  return new TextDecoder("latin1").decode(head).includes(SYNTHETIC_PRODUCER) ? "synthetic" : "pretrained";
}

/** Facts about the model whose bytes `chunks` yields, read once. `hash: false` when the SHA-256 is known already. */
export async function inspectModel(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  { hash = true }: { hash?: boolean } = {},
): Promise<ModelFacts & { operators?: string[] }> {
  const iterator = Symbol.asyncIterator in chunks
    ? chunks[Symbol.asyncIterator]()
    : chunks[Symbol.iterator]();
  const reader = new Reader(iterator, hash);
  let operators: string[] | undefined;
  try {
    operators = await operatorTypes(reader);
  } catch {
    // Not an ONNX protobuf: the hash still covers every byte.
  }
  await reader.drain();
  return {
    sha256: reader.digest(),
    size: reader.position,
    weights: weightsOfHead(reader.headBytes),
    quantized: operators?.some((op) => QUANTIZED_OPS.has(op)) ?? false,
    ...(operators ? { operators } : {}),
  };
}

/** Facts about the model file at `path`, in one streaming read. */
export async function inspectModelFile(path: string): Promise<ModelFacts> {
  using file = await Deno.open(path, { read: true });
  const { operators: _, ...facts } = await inspectModel(file.readable);
  return facts;
}

/** Facts about a model held in memory; with `sha256` given (checked as it downloaded), it is not hashed again. */
export async function inspectModelBytes(bytes: Uint8Array, sha256?: string): Promise<ModelFacts> {
  const { operators: _, ...facts } = await inspectModel([bytes], { hash: sha256 === undefined });
  return sha256 === undefined ? facts : { ...facts, sha256 };
}
