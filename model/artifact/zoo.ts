/**
 * What the gateway knows of the ONNX model zoo's ResNet-50 files: which file
 * a precision is, its checksum and size, and where it is cached in MODEL_DIR.
 * URLs and checksums are the MODEL_ZOO_* variables (config.ts holds their
 * defaults, as it does every variable's).
 */
import { type Config, ZOO_INT8_MODEL_SHA256, ZOO_INT8_MODEL_URL, ZOO_MODEL_SHA256 } from "../../config.ts";
import type { Precision } from "./types.ts";

/** The default fp32 file's size. */
export const ZOO_MODEL_BYTES = 102_576_593;

/** The default int8 file's size. */
export const ZOO_INT8_MODEL_BYTES = 25_816_052;

export type ZooConfig =
  & Pick<Config, "MODEL_DIR" | "MODEL_ZOO_URL" | "MODEL_ZOO_SHA256">
  & Partial<Pick<Config, "MODEL_ZOO_INT8_URL" | "MODEL_ZOO_INT8_SHA256">>;

/** One file of the model zoo: where it comes from, its checksum, its size when known, and its cache path. */
export interface ZooFile {
  url: string;
  sha256: string;
  expectedBytes: number | undefined;
  what: string;
  path: string;
}

export function zooFile(config: ZooConfig, precision: Precision): ZooFile {
  const cached = (url: string) =>
    `${config.MODEL_DIR}/${new URL(url).pathname.split("/").pop() || "model.onnx"}`;
  if (precision === "fp32") {
    return {
      url: config.MODEL_ZOO_URL,
      sha256: config.MODEL_ZOO_SHA256,
      // The size is only known for the default file; a mirror may serve another.
      expectedBytes: config.MODEL_ZOO_SHA256 === ZOO_MODEL_SHA256 ? ZOO_MODEL_BYTES : undefined,
      what: "model",
      path: cached(config.MODEL_ZOO_URL),
    };
  }
  const sha256 = config.MODEL_ZOO_INT8_SHA256 ?? ZOO_INT8_MODEL_SHA256;
  const url = config.MODEL_ZOO_INT8_URL ?? ZOO_INT8_MODEL_URL;
  return {
    url,
    sha256,
    expectedBytes: sha256 === ZOO_INT8_MODEL_SHA256 ? ZOO_INT8_MODEL_BYTES : undefined,
    what: "int8 model",
    path: cached(url),
  };
}

/** Where the zoo's file of `precision` is cached. */
export function zooPath(config: ZooConfig, precision: Precision = "fp32"): string {
  return zooFile(config, precision).path;
}
