/**
 * Builds a ResNet-50 ONNX model with torchvision's exact topology and
 * deterministic seeded weights.
 *
 * Pretrained weights cannot be downloaded everywhere the gateway must run, so
 * this gives a model with the real architecture and the real cost (25.6 M
 * parameters, 4.1 GMAC per image) whose predictions are meaningless. Callers
 * must announce it as `weights: "synthetic"`.
 *
 * The file is encoded with the ONNX protobuf schema (`onnx-proto`, generated
 * by protobufjs) so it is a valid model for any ONNX runtime.
 */
import { mulberry32 } from "../../core/prng.ts";
import { type onnx, proto } from "./onnx_graph.ts";

/** Input and output names of the synthetic graph (the runner reads them from the session anyway). */
export const SYNTHETIC_INPUT_NAME = "input";
export const SYNTHETIC_OUTPUT_NAME = "logits";

/** Stages of torchvision's resnet50: [blocks, planes, stride of the first block]. */
const STAGES: ReadonlyArray<readonly [number, number, number]> = [
  [3, 64, 1],
  [4, 128, 2],
  [6, 256, 2],
  [3, 512, 2],
];
const EXPANSION = 4;
const NUM_CLASSES = 1000;
const BN_EPSILON = 1e-5;
/**
 * The last BatchNorm of each residual branch is scaled down (as "zero-init
 * residual" does, but not to zero) so the residual stream stays bounded
 * through 16 blocks and the logits keep a useful spread.
 */
const RESIDUAL_BRANCH_GAMMA = 0.2;
/**
 * Standard deviation of the fc weights. The pooled features are small (about
 * 1e-2), so this gives logits with a standard deviation of 1.3 to 3 and top-1
 * confidences of 2% to 30% on the fixture photos (measured): neither uniform
 * nor one-hot. Larger residual gammas saturate to one class for every image.
 */
const FC_STD = 1.0;

export interface SyntheticModelStats {
  /** Trainable parameters as torchvision counts them (conv, BN affine, fc). */
  parameters: number;
  /** Multiply-accumulates for one 224x224 image. */
  macs: number;
}

export interface SyntheticModel {
  bytes: Uint8Array;
  stats: SyntheticModelStats;
}

/** Standard normal samples from a uniform source (Box-Muller, both outputs used). */
function gaussianSource(uniform: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = uniform();
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  parameters = 0;
  macs = 0;
  readonly #gauss: () => number;
  #counter = 0;

  constructor(seed: number) {
    this.#gauss = gaussianSource(mulberry32(seed));
  }

  #name(prefix: string): string {
    return `${prefix}_${this.#counter++}`;
  }

  #tensor(name: string, dims: number[], values: Float32Array): void {
    // ONNX raw_data is little-endian; every platform Deno ships on is too.
    this.initializers.push({
      name,
      dims,
      dataType: proto.TensorProto.DataType.FLOAT,
      rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    });
  }

  /** Conv without bias, Kaiming-normal (fan_out, ReLU) as torchvision initialises it. */
  conv(
    input: string,
    name: string,
    inC: number,
    outC: number,
    k: number,
    stride: number,
    pad: number,
    outHW: number,
  ): string {
    const count = outC * inC * k * k;
    const std = Math.sqrt(2 / (outC * k * k));
    const w = new Float32Array(count);
    for (let i = 0; i < count; i++) w[i] = this.#gauss() * std;
    this.#tensor(`${name}.weight`, [outC, inC, k, k], w);
    this.parameters += count;
    this.macs += count * outHW * outHW;
    const out = this.#name(name);
    this.nodes.push({
      name,
      opType: "Conv",
      input: [input, `${name}.weight`],
      output: [out],
      attribute: [
        ints("kernel_shape", [k, k]),
        ints("strides", [stride, stride]),
        ints("pads", [pad, pad, pad, pad]),
      ],
    });
    return out;
  }

  batchNorm(input: string, name: string, channels: number, gamma: number): string {
    this.#tensor(`${name}.weight`, [channels], new Float32Array(channels).fill(gamma));
    this.#tensor(`${name}.bias`, [channels], new Float32Array(channels));
    this.#tensor(`${name}.running_mean`, [channels], new Float32Array(channels));
    this.#tensor(`${name}.running_var`, [channels], new Float32Array(channels).fill(1));
    this.parameters += 2 * channels;
    const out = this.#name(name);
    this.nodes.push({
      name,
      opType: "BatchNormalization",
      input: [input, `${name}.weight`, `${name}.bias`, `${name}.running_mean`, `${name}.running_var`],
      output: [out],
      attribute: [float("epsilon", BN_EPSILON)],
    });
    return out;
  }

  op(opType: string, inputs: string[], attribute: onnx.IAttributeProto[] = []): string {
    const out = this.#name(opType.toLowerCase());
    this.nodes.push({ name: out, opType, input: inputs, output: [out], attribute });
    return out;
  }

  fc(input: string, inF: number, outF: number): string {
    const w = new Float32Array(outF * inF);
    for (let o = 0; o < outF; o++) {
      // Centre each row: post-ReLU features share a large positive mean, and
      // uncentred rows would let that shared component pick the same class for
      // every image.
      let sum = 0;
      const row = w.subarray(o * inF, (o + 1) * inF);
      for (let i = 0; i < inF; i++) sum += row[i] = this.#gauss() * FC_STD;
      const mean = sum / inF;
      for (let i = 0; i < inF; i++) row[i] -= mean;
    }
    this.#tensor("fc.weight", [outF, inF], w);
    this.#tensor("fc.bias", [outF], new Float32Array(outF));
    this.parameters += outF * inF + outF;
    this.macs += outF * inF;
    const out = SYNTHETIC_OUTPUT_NAME;
    this.nodes.push({
      name: "fc",
      opType: "Gemm",
      input: [input, "fc.weight", "fc.bias"],
      output: [out],
      attribute: [int("transB", 1)],
    });
    return out;
  }
}

function ints(name: string, values: number[]): onnx.IAttributeProto {
  return { name, ints: values, type: proto.AttributeProto.AttributeType.INTS };
}
function int(name: string, value: number): onnx.IAttributeProto {
  return { name, i: value, type: proto.AttributeProto.AttributeType.INT };
}
function float(name: string, value: number): onnx.IAttributeProto {
  return { name, f: value, type: proto.AttributeProto.AttributeType.FLOAT };
}

function bottleneck(
  g: GraphBuilder,
  input: string,
  prefix: string,
  inC: number,
  planes: number,
  stride: number,
  inHW: number,
): { out: string; hw: number } {
  const outHW = inHW / stride;
  const outC = planes * EXPANSION;
  let x = g.conv(input, `${prefix}.conv1`, inC, planes, 1, 1, 0, inHW);
  x = g.op("Relu", [g.batchNorm(x, `${prefix}.bn1`, planes, 1)]);
  // torchvision (ResNet v1.5) strides in the 3x3 conv, not the first 1x1.
  x = g.conv(x, `${prefix}.conv2`, planes, planes, 3, stride, 1, outHW);
  x = g.op("Relu", [g.batchNorm(x, `${prefix}.bn2`, planes, 1)]);
  x = g.conv(x, `${prefix}.conv3`, planes, outC, 1, 1, 0, outHW);
  x = g.batchNorm(x, `${prefix}.bn3`, outC, RESIDUAL_BRANCH_GAMMA);
  let identity = input;
  if (stride !== 1 || inC !== outC) {
    identity = g.conv(input, `${prefix}.downsample.0`, inC, outC, 1, stride, 0, outHW);
    identity = g.batchNorm(identity, `${prefix}.downsample.1`, outC, 1);
  }
  return { out: g.op("Relu", [g.op("Add", [x, identity])]), hw: outHW };
}

/** Builds the model; pure and deterministic: the same seed (SYNTHETIC_SEED) gives the same bytes. */
export function buildSyntheticResNet50(seed: number): SyntheticModel {
  const g = new GraphBuilder(seed);
  let x = g.conv(SYNTHETIC_INPUT_NAME, "conv1", 3, 64, 7, 2, 3, 112);
  x = g.op("Relu", [g.batchNorm(x, "bn1", 64, 1)]);
  x = g.op("MaxPool", [x], [
    ints("kernel_shape", [3, 3]),
    ints("strides", [2, 2]),
    ints("pads", [1, 1, 1, 1]),
  ]);
  let channels = 64;
  let hw = 56;
  STAGES.forEach(([blocks, planes, firstStride], stage) => {
    for (let b = 0; b < blocks; b++) {
      const r = bottleneck(g, x, `layer${stage + 1}.${b}`, channels, planes, b === 0 ? firstStride : 1, hw);
      x = r.out;
      hw = r.hw;
      channels = planes * EXPANSION;
    }
  });
  x = g.op("GlobalAveragePool", [x]);
  x = g.op("Flatten", [x], [int("axis", 1)]);
  g.fc(x, channels, NUM_CLASSES);

  const dim = (d: number | string): onnx.TensorShapeProto.IDimension =>
    typeof d === "number" ? { dimValue: d } : { dimParam: d };
  const valueInfo = (name: string, dims: Array<number | string>): onnx.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType: proto.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map(dim) },
      },
    },
  });

  const model: onnx.IModelProto = {
    irVersion: 8,
    producerName: "inference-gateway",
    producerVersion: "synthetic-resnet50",
    docString: `Synthetic ResNet-50 (torchvision topology) with seeded weights, seed=${seed}. ` +
      "Predictions are meaningless; use for load, latency and plumbing only.",
    opsetImport: [{ domain: "", version: 17 }],
    metadataProps: [
      { key: "weights", value: "synthetic" },
      { key: "seed", value: String(seed) },
    ],
    graph: {
      name: "resnet50_synthetic",
      node: g.nodes,
      initializer: g.initializers,
      input: [valueInfo(SYNTHETIC_INPUT_NAME, ["N", 3, 224, 224])],
      output: [valueInfo(SYNTHETIC_OUTPUT_NAME, ["N", NUM_CLASSES])],
    },
  };
  const bytes = proto.ModelProto.encode(proto.ModelProto.create(model)).finish();
  return { bytes, stats: { parameters: g.parameters, macs: g.macs } };
}
