/**
 * Tiny ONNX image classifiers for tests whose behaviour does not depend on
 * ResNet-50's cost: the same input and output contract ([N,3,224,224] float32
 * in, [N,classes] out), a few hundred bytes, loaded in milliseconds. Each seed
 * ranks the classes differently, so an answer shows which version computed it.
 */
import { encodeModel, floatTensor, int, type onnx, proto } from "../../model/artifact/onnx_graph.ts";
import { mulberry32 } from "../../core/prng.ts";

export interface TinyModelOptions {
  classes?: number;
  seed?: number;
  /** The input's channels, height and width; anything but 3x224x224 is the wrong shape for the gateway. */
  input?: [number, number, number];
}

/** GlobalAveragePool, Flatten, Gemm: a linear classifier of the three channel means. */
export function tinyModel(options: TinyModelOptions = {}): Uint8Array {
  const classes = options.classes ?? 4;
  const [c, h, w] = options.input ?? [3, 224, 224];
  const random = mulberry32(options.seed ?? 1);
  const weight = Float32Array.from({ length: c * classes }, () => random() * 2 - 1);
  // The bias decides the top-1 for a neutral (all-zero) input: class `seed % classes`.
  const bias = Float32Array.from({ length: classes }, (_, i) => i === (options.seed ?? 1) % classes ? 5 : 0);
  const info = (name: string, dims: Array<number | string>): onnx.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType: proto.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }) },
      },
    },
  });
  return encodeModel({
    irVersion: 8,
    producerName: "inference-gateway-tests",
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "tiny",
      node: [
        { opType: "GlobalAveragePool", input: ["input"], output: ["pooled"] },
        { opType: "Flatten", input: ["pooled"], output: ["flat"], attribute: [int("axis", 1)] },
        { opType: "Gemm", input: ["flat", "weight", "bias"], output: ["logits"] },
      ],
      initializer: [floatTensor("weight", [c, classes], weight), floatTensor("bias", [classes], bias)],
      input: [info("input", ["N", c, h, w])],
      output: [info("logits", ["N", classes])],
    },
  });
}

/** `classes` label lines: class0, class1, ... */
export function tinyLabels(classes = 4): string {
  return Array.from({ length: classes }, (_, i) => `class${i}`).join("\n") + "\n";
}
