/**
 * The service's configuration: one zod schema, parsed once from the
 * environment at startup. A bad value stops startup with a message naming the
 * variable, the value and what it accepts.
 */
import { z } from "zod";
import { formatCidr, parseCidr } from "./core/ip_address.ts";

/** The MODEL_ZOO_* variables' defaults; what else is known of the zoo's files is in model/artifact/zoo.ts. */
export const ZOO_MODEL_URL =
  "https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet50-v1-12.onnx";
export const ZOO_MODEL_SHA256 = "3f03fdef724b22947eed826f1eef1dc5c34151bb4c37d634f1db89dfa2dd1526";
/** The same network quantized to int8 by the model zoo (QOperator form: QLinearConv nodes). */
export const ZOO_INT8_MODEL_URL =
  "https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet50-v1-12-int8.onnx";
export const ZOO_INT8_MODEL_SHA256 = "c234f30975989788b4405f25253275aae247ab6dbdd34aaa69ab0a59ff76f6d0";

const MiB = 1024 * 1024;

/** What a model name may be: MODEL_NAME, and a model directory in MODEL_REPOSITORY. */
export const MODEL_NAME_PATTERN = /^[a-zA-Z0-9_.-]{1,64}$/;
export const MODEL_NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-'";
/** Triton's names: none loads what is there at startup, poll also rescans, explicit loads what the API asks. */
export const CONTROL_MODES = ["none", "poll", "explicit"] as const;

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
};

/** A size in bytes, optionally with a binary unit (512MiB, 4GiB); 0 means no limit. */
const byteSize = () =>
  z.string().transform((raw, ctx) => {
    const what = "a size in bytes, optionally with KiB, MiB, GiB or TiB (0: no limit)";
    const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB)?$/.exec(raw.trim());
    const bytes = m ? Math.round(Number(m[1]) * BYTE_UNITS[m[2] ?? ""]) : NaN;
    if (!Number.isSafeInteger(bytes)) {
      ctx.addIssue({ code: "custom", message: what });
      return z.NEVER;
    }
    return bytes;
  });

const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;
const MODEL_SOURCES = ["auto", "file", "url", "zoo", "synthetic"] as const;
const INFERENCE_BACKENDS = ["native", "wasm"] as const;
/** The arithmetic a model may run in (MODEL_PRECISION); the one list. */
export const PRECISIONS = ["fp32", "int8"] as const;
const CALIBRATION_METHODS = ["percentile", "minmax"] as const;
const SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;

/** Environment variables that hold an integer within bounds. */
const int = (min: number, max: number, fallback: number) =>
  z.coerce.number({ error: `an integer from ${min} to ${max}` })
    .int(`an integer from ${min} to ${max}`)
    .min(min, `an integer from ${min} to ${max}`)
    .max(max, `an integer from ${min} to ${max}`)
    .default(fallback);

const nonEmpty = (what: string) => z.string().trim().min(1, what);

const httpUrl = (what = "an http(s) URL") => z.url({ protocol: /^https?$/, error: what });

const sha256 = () => z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits");

export const configSchema = z.object({
  PORT: int(0, 65535, 8000),
  HOST: nonEmpty("a host name or IP address").default("0.0.0.0"),
  MODEL_SOURCE: z.enum(MODEL_SOURCES, { error: `one of ${MODEL_SOURCES.join(", ")}` }).default("auto"),
  MODEL_PATH: nonEmpty("a path to an ONNX file").optional(),
  MODEL_DIR: nonEmpty("a directory path").default("./models"),
  /** An ONNX file fetched into memory at startup (never written to disk), checked against MODEL_SHA256. */
  MODEL_URL: httpUrl().optional(),
  MODEL_SHA256: sha256().optional(),
  MODEL_NAME: z.string().regex(MODEL_NAME_PATTERN, MODEL_NAME_RULE).default("resnet50"),
  /**
   * A model repository (<model>/<version>/model.onnx, docs/operations.md). Unset: the variables above
   * describe a repository of one model. The permission sets read ./models, so ./models/repository needs
   * no new grant.
   */
  MODEL_REPOSITORY: nonEmpty("a directory path").optional(),
  MODEL_CONTROL_MODE: z.enum(CONTROL_MODES, { error: `one of ${CONTROL_MODES.join(", ")}` }).default("none"),
  /** With MODEL_CONTROL_MODE=poll, how often MODEL_REPOSITORY is rescanned. */
  REPOSITORY_POLL_SECONDS: int(1, 86_400, 10),
  /**
   * Memory the loaded model versions may take together (estimated before each load from the file's size);
   * a load that would go over is refused before it starts. 0: no limit.
   */
  MODEL_MEMORY_LIMIT: byteSize().default(0),
  /** A repository load request's body, which may carry the model file base64-encoded (4/3 of its size). */
  MAX_LOAD_REQUEST_BYTES: int(1024, 4096 * MiB, 512 * MiB),
  MODEL_ZOO_URL: httpUrl().default(ZOO_MODEL_URL),
  MODEL_ZOO_SHA256: sha256().default(ZOO_MODEL_SHA256),
  SYNTHETIC_SEED: int(0, 2 ** 32 - 1, 20240601),
  /** int8 runs about 3x the images per core; its accuracy cost is measured at startup (docs/performance.md). */
  MODEL_PRECISION: z.enum(PRECISIONS, { error: `one of ${PRECISIONS.join(", ")}` }).default("fp32"),
  MODEL_ZOO_INT8_URL: httpUrl().default(ZOO_INT8_MODEL_URL),
  MODEL_ZOO_INT8_SHA256: sha256().default(ZOO_INT8_MODEL_SHA256),
  /** Photos to calibrate int8 activations on; every third scene is held out to measure the result. */
  CALIBRATION_DIR: nonEmpty("a directory path").default("./model/quantize/calibration"),
  CALIBRATION_METHOD: z.enum(CALIBRATION_METHODS, { error: `one of ${CALIBRATION_METHODS.join(", ")}` })
    .default("percentile"),
  /**
   * Held-out top-1 agreement (int8 against fp32) below which int8 is refused and fp32 served. Measured on
   * the synthetic model: 0.95 to 0.975 when calibrated on photos, 0.80 when calibrated on flat gray images.
   */
  INT8_MIN_AGREEMENT: z.coerce.number({ error: "a number from 0 to 1" }).min(0, "a number from 0 to 1")
    .max(1, "a number from 0 to 1").default(0.9),
  TOP_K: int(1, 20, 5),
  MAX_BODY_BYTES: int(1024, 1024 * MiB, 10 * MiB),
  MAX_IMAGE_PIXELS: int(1, 1_000_000_000, 40_000_000),
  /** Images in one /predict multipart request or one v2 infer request. */
  MAX_IMAGES_PER_REQUEST: int(1, 64, 8),
  /**
   * native: onnxruntime-node and sharp (native code, needs --allow-ffi). wasm: onnxruntime-web and
   * imagescript, WebAssembly only, for edge runtimes (docs/edge.md).
   */
  INFERENCE_BACKEND: z.enum(INFERENCE_BACKENDS, { error: `one of ${INFERENCE_BACKENDS.join(", ")}` })
    .default("native"),
  /**
   * Threads per onnxruntime session. On 2 cores, one session of 2 threads answers a lone request in about
   * half the time of two sessions of 1 thread, for a little less peak throughput (docs/performance.md).
   */
  INTRA_OP_THREADS: int(0, 256, 2),
  /** Whether idle onnxruntime threads spin (faster hand-off, but they take CPU from decoding and HTTP). */
  INTRA_OP_SPINNING: z.enum(["on", "off"], { error: "on or off" }).default("off"),
  /** Sessions, each in its own Worker; 0 runs inference on the main thread (tests, debugging). */
  INFERENCE_WORKERS: int(0, 64, 1),
  /** Workers that decode and preprocess images; 0 does it on the main thread (tests, debugging). */
  PREPROCESS_WORKERS: int(0, 64, 1),
  MAX_BATCH_SIZE: int(1, 64, 4),
  /** How long the first queued request may wait for a batch to fill when a runner is idle. */
  MAX_BATCH_DELAY_MS: int(0, 1000, 0),
  /** Requests admitted and not yet running (being decoded or queued); past this, new ones get 503 at once. */
  MAX_QUEUE: int(1, 100_000, 32),
  /** A request that has not reached the model by then is answered 504 and dropped. */
  REQUEST_TIMEOUT_MS: int(1, 600_000, 5000),
  /**
   * After SIGTERM, /ready answers 503 at once but everything is served this much longer, so load balancers
   * take the instance out before its listener closes.
   */
  SHUTDOWN_DELAY_MS: int(0, 600_000, 0),
  /** After the delay, how long the requests on open connections get to be answered before they are cut. */
  SHUTDOWN_TIMEOUT_MS: int(0, 600_000, 10_000),
  /** A request body not fully received by then is answered 408 (a slow uploader cannot hold a queue place). */
  BODY_TIMEOUT_MS: int(100, 600_000, 30_000),
  /** A new connection must send its first request's headers within this (slowloris). */
  HEADER_TIMEOUT_MS: int(100, 600_000, 10_000),
  /** A connection with no bytes either way for this long is closed. */
  IDLE_TIMEOUT_MS: int(100, 3_600_000, 60_000),
  /** Open client connections; past this, new ones are closed at once. */
  MAX_CONNECTIONS: int(1, 1_000_000, 1024),
  /**
   * `on`: the connection guard holds the public port (timeouts, caps, lossless drain; docs/security.md).
   * `off`: Deno.serve holds it, for a proxy in front that enforces those limits itself.
   */
  CONNECTION_GUARD: z.enum(["on", "off"], { error: "on or off" }).default("on"),
  /**
   * Open connections from one client address (the TCP peer; peers in TRUSTED_PROXIES are exempt, since a
   * proxy's address carries many clients); 0: no cap. Past it that client gets 503s, the others are served.
   */
  MAX_CONNECTIONS_PER_CLIENT: int(0, 1_000_000, 256),
  /**
   * `apply` turns photos upright as their EXIF Orientation tag says (as browsers show them) before resizing;
   * `ignore` classifies them as stored, as torchvision's `PIL.Image.open` does (strict parity).
   */
  EXIF_ORIENTATION: z.enum(["apply", "ignore"], { error: "apply or ignore" }).default("apply"),
  /** Peers whose X-Forwarded-For / Forwarded headers name the client; nobody's by default. */
  TRUSTED_PROXIES: z.string().transform((text, ctx) => {
    const ranges: string[] = [];
    for (const item of text.split(/[\s,]+/).filter(Boolean)) {
      const cidr = parseCidr(item);
      if (!cidr) {
        ctx.addIssue({
          code: "custom",
          message: `a comma-separated list of IPv4 or IPv6 addresses or CIDR ranges ("${item}" is neither)`,
        });
        return z.NEVER;
      }
      ranges.push(formatCidr(cidr));
    }
    return ranges;
  }).default([]),
  /**
   * A JSON file of API keys (their SHA-256 and scopes; docs/access_control.md), reloaded when it changes.
   * Unset: inference is open and model management is refused.
   */
  API_KEYS_FILE: nonEmpty("a path to a JSON key file").optional(),
  /** Whether /metrics needs a key with the `metrics` scope (Prometheus then sends one: credentials_file). */
  METRICS_REQUIRE_KEY: z.enum(["true", "false"], { error: "true or false" }).transform((v) => v === "true")
    .default(false),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `one of ${LOG_LEVELS.join(", ")}` }).default("info"),
  /** Requests slower than this count against the latency objective; slow traces are always kept. */
  LATENCY_OBJECTIVE_MS: int(1, 600_000, 300),
  /**
   * Browser origins allowed to call the API from their pages (CORS): a comma-separated list of origins
   * (`https://app.example.com,http://localhost:5173`) or `*`. Unset sends no CORS headers at all.
   */
  CORS_ORIGINS: z.string().transform((raw, ctx): "*" | string[] => {
    const what = "* or comma-separated origins such as https://app.example.com (scheme, host, optional port)";
    if (raw.trim() === "*") return "*";
    const origins = raw.split(",").map((o) => o.trim()).filter(Boolean);
    for (const origin of origins) {
      if (!URL.canParse(origin) || new URL(origin).origin !== origin) {
        ctx.addIssue({ code: "custom", message: what });
        return z.NEVER;
      }
    }
    return origins;
  }).optional(),
  /**
   * Link from the page at / to a trace, `{trace_id}` replaced: Jaeger's is
   * `http://localhost:16686/trace/{trace_id}`. Unset shows the trace id without a link.
   */
  TRACE_UI_URL: httpUrl("an http(s) URL containing {trace_id}")
    .refine((u) => u.includes("{trace_id}"), "an http(s) URL containing {trace_id}").optional(),

  // OpenTelemetry's standard variables (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/).
  OTEL_SERVICE_NAME: nonEmpty("a service name").default("inference-gateway"),
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl().optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl().optional(),
  /** Sent with every export; may hold credentials, so never shown. */
  OTEL_EXPORTER_OTLP_HEADERS: z.string().regex(
    /^([^=,]+=[^,]*)(,[^=,]+=[^,]*)*$/,
    "key=value pairs separated by commas",
  )
    .optional(),
  OTEL_TRACES_SAMPLER: z.enum(SAMPLERS, { error: `one of ${SAMPLERS.join(", ")}` }).default(
    "parentbased_traceidratio",
  ),
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number({ error: "a number from 0 to 1" }).min(0, "a number from 0 to 1")
    .max(1, "a number from 0 to 1").default(1),
  OTEL_RESOURCE_ATTRIBUTES: z.string().regex(
    /^([^=,]+=[^,]*)(,[^=,]+=[^,]*)*$/,
    "key=value pairs separated by commas",
  )
    .optional(),
}).superRefine((c, ctx) => {
  if (c.MODEL_CONTROL_MODE !== "none" && !c.MODEL_REPOSITORY) {
    ctx.addIssue({
      code: "custom",
      path: ["MODEL_REPOSITORY"],
      message: `a directory path, required when MODEL_CONTROL_MODE=${c.MODEL_CONTROL_MODE}`,
    });
  }
  if (c.MODEL_SOURCE === "file" && !c.MODEL_PATH) {
    ctx.addIssue({
      code: "custom",
      path: ["MODEL_PATH"],
      message: "a path, required when MODEL_SOURCE=file",
    });
  }
  if (c.MODEL_SOURCE === "url" && !c.MODEL_URL) {
    ctx.addIssue({ code: "custom", path: ["MODEL_URL"], message: "a URL, required when MODEL_SOURCE=url" });
  }
  if (c.METRICS_REQUIRE_KEY && !c.API_KEYS_FILE) {
    ctx.addIssue({
      code: "custom",
      path: ["METRICS_REQUIRE_KEY"],
      message: "false unless API_KEYS_FILE is set (a key needs a key file)",
    });
  }
  if (c.MODEL_URL && !c.MODEL_SHA256) {
    ctx.addIssue({
      code: "custom",
      path: ["MODEL_SHA256"],
      message: "the model file's 64 hex digit SHA-256, required with MODEL_URL",
    });
  }
});

export type Config = z.infer<typeof configSchema>;

/** Every variable the schema reads. */
export const CONFIG_VARIABLES = Object.keys(configSchema.shape) as Array<keyof Config>;

/**
 * Environment variables read by something other than the schema, and who reads
 * each. With the schema's they are the `env` list of every permission set in
 * deno.json, which `deno task config:sync` generates (tools/permission_sets.ts;
 * tests/permissions_test.ts fails while it is stale). A new variable goes into
 * the schema or here; then run that task.
 */
export const EXTRA_VARIABLES: Readonly<Record<string, string>> = {
  "OTEL_*": "the OpenTelemetry SDK, which reads its whole namespace",
  IMAGESCRIPT_WASM_SIMD: "imagescript, to choose its WASM build",
  SHARP_IGNORE_GLOBAL_LIBVIPS: "sharp, to choose its libvips",
  SHARP_FORCE_GLOBAL_LIBVIPS: "sharp, to choose its libvips",
  npm_package_config_libvips: "sharp, to choose its libvips",
  PKG_CONFIG_PATH: "sharp, to find a system libvips",
  ORT_DISABLE_TELEMETRY: "model/runtime/ort_runner.ts, which sets it before onnxruntime starts",
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Parses configuration from `env` (default: the process environment). Empty
 * strings count as unset, as most shells and compose files produce them.
 */
export function loadConfig(env: (name: string) => string | undefined = (n) => Deno.env.get(n)): Config {
  const raw: Record<string, string> = {};
  for (const name of CONFIG_VARIABLES) {
    const v = env(name);
    if (v !== undefined && v !== "") raw[name] = v;
  }
  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? "configuration");
    const value = raw[name];
    const shown = value === undefined ? "(unset)" : JSON.stringify(value);
    return `${name}=${shown} is invalid: expected ${issue.message}`;
  });
  throw new ConfigError(`Invalid configuration: ${lines.join("; ")}`);
}

/**
 * The configuration an entry point starts with: on a bad value, the one line
 * naming the variable and what it accepts goes to stderr and the process
 * exits 2 (a usage error, not a crash: no stack trace). `load` gives an
 * entry's own profile (edge.ts); anything but a ConfigError is rethrown.
 */
export function configOrExit(): Config;
export function configOrExit<T>(load: () => T): T;
export function configOrExit(load: () => unknown = () => loadConfig()): unknown {
  try {
    return load();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    Deno.exit(2);
  }
}

const SECRET_VARIABLES: ReadonlyArray<keyof Config> = ["OTEL_EXPORTER_OTLP_HEADERS"];

/** The effective configuration as `/info` and the startup log show it, secrets redacted. */
export function publicConfig(config: Config): Record<string, unknown> {
  const shown: Record<string, unknown> = { ...config };
  for (const name of SECRET_VARIABLES) if (shown[name] !== undefined) shown[name] = "[redacted]";
  return shown;
}

/** Where traces go, if anywhere: the traces endpoint wins, else `<endpoint>/v1/traces`. */
export function tracesEndpoint(config: Config): string | undefined {
  if (config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (config.OTEL_EXPORTER_OTLP_ENDPOINT) {
    return config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "") + "/v1/traces";
  }
  return undefined;
}

/** Parses `k=v,k2=v2` (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS), percent-decoding values. */
export function parseKeyValues(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const pair of raw.split(",")) {
    const i = pair.indexOf("=");
    if (i > 0) {
      out[decodeURIComponent(pair.slice(0, i).trim())] = decodeURIComponent(pair.slice(i + 1).trim());
    }
  }
  return out;
}
