/**
 * deno.json's permission sets, written once. Deno 2.9 cannot extend one set
 * from another (a set accepts only the permission kinds) and an `--allow-env`
 * flag after `-P` replaces the set's list instead of adding to it, so the sets
 * are generated from this module: `deno task config:sync` writes them into
 * deno.json (and deno.production.json), and `tests/permissions_test.ts` fails
 * while they differ. Edit grants here, never in the JSON. Why each grant
 * exists: docs/security.md.
 */
import { CONFIG_VARIABLES, EXTRA_VARIABLES } from "../config.ts";

export const PERMISSION_KINDS = ["env", "net", "read", "write", "ffi", "run", "sys", "import"] as const;
export type PermissionKind = typeof PERMISSION_KINDS[number];
export type PermissionSet = Partial<Record<PermissionKind, readonly string[]>>;

/**
 * Variables only the tests and the benchmark read, and who reads each. The
 * `test` set grants them; the sets the service runs under never do.
 */
export const TEST_VARIABLES: Readonly<Record<string, string>> = {
  BENCH_SECONDS: "bench/bench.ts: the length of each load phase",
  FUZZ_CASES: "tests/fuzz_test.ts: the number of cases",
  FUZZ_SEED: "tests/fuzz_test.ts: the seed to replay",
  LOG_TOKENS: "yaml (Kubernetes and rule checks), a debugging switch",
  LOG_STREAM: "yaml (Kubernetes and rule checks), a debugging switch",
  WS_NO_BUFFER_UTIL: "ws (puppeteer-core's WebSocket to Chromium), to skip an optional native add-on",
  WS_NO_UTF_8_VALIDATE: "ws (puppeteer-core's WebSocket to Chromium), to skip an optional native add-on",
};

/** Whether an `env` grant lets the program read `name` (entries ending in `*` are prefixes). */
export function envAllows(grant: readonly string[] | true | undefined, name: string): boolean {
  if (grant === true) return true;
  return (grant ?? []).some((entry) =>
    entry.endsWith("*") ? name.startsWith(entry.slice(0, -1)) : entry === name
  );
}

/**
 * What the service may read from the environment: the schema's variables in
 * its order (those a wildcard extra already covers are left out), then the
 * extras config.ts lists with who reads each.
 */
export const SERVICE_ENV: readonly string[] = (() => {
  const extras = Object.keys(EXTRA_VARIABLES);
  const wildcards = extras.filter((e) => e.endsWith("*"));
  return [...CONFIG_VARIABLES.filter((name) => !envAllows(wildcards, name)), ...extras];
})();

/** The listeners, the compose stack's OTLP collector, and the model zoo's download hosts. */
const SERVICE_NET = [
  "0.0.0.0",
  "127.0.0.1",
  "localhost",
  "jaeger:4318",
  "github.com",
  "raw.githubusercontent.com",
  "media.githubusercontent.com",
];

/**
 * The model cache; labels and calibration photos (./model); the Workers'
 * modules and what they import (./core); the page's files; npm packages with
 * their WASM codecs; and where API_KEYS_FILE may live: ./keys, Docker's
 * secrets, a mounted Kubernetes Secret (docs/access_control.md).
 */
const SERVICE_READ = [
  "./models",
  "./core",
  "./model",
  "./image",
  "./web",
  "./node_modules",
  "./keys",
  "/run/secrets",
  "/etc/inference-gateway",
];

/** The sets, by name, in the order deno.json lists them. */
export const PERMISSION_SETS: Readonly<Record<string, PermissionSet>> = {
  /** `deno task start`, `dev`, `model:*` and the container. */
  gateway: {
    env: SERVICE_ENV,
    net: SERVICE_NET,
    // ./server: the connection guard's Worker; /usr/bin/ldd: sharp's C-library check; /dev/null: opened
    // to count the free descriptors MAX_CONNECTIONS is checked against (server/descriptors.ts).
    read: [...SERVICE_READ, "./server", "/usr/bin/ldd", "/dev/null"],
    write: ["./models"],
    // onnxruntime-node and sharp are native addons.
    ffi: ["./node_modules"],
  },
  /** `deno task start:edge`: WebAssembly only, so no FFI, writes or processes. */
  edge: {
    env: SERVICE_ENV,
    net: SERVICE_NET,
    read: SERVICE_READ,
  },
  /** `deno task test` and `deno task bench`. */
  test: {
    env: [...SERVICE_ENV, ...Object.keys(TEST_VARIABLES)],
    net: ["127.0.0.1", "127.0.0.2", "127.0.0.3", "localhost", "0.0.0.0"],
    read: [".", "/usr/bin/ldd", "/dev/null"],
    // ./keys: key files for the real process, which may read them only there.
    write: ["./models", "./tests/tmp", "./keys"],
    ffi: ["./node_modules"],
    // /usr/bin/python3: raw sockets Deno cannot open (resets before accept: tests/support/resets.ts).
    run: [
      "deno",
      "promtool",
      "prometheus",
      "prometheus-alertmanager",
      "amtool",
      "/usr/bin/chromium",
      "kubectl",
      "/usr/bin/python3",
    ],
  },
};

/** The sets the service runs under (they go into the production config too). */
export const SERVICE_SETS = ["gateway", "edge"] as const;
