/** Shared test fixtures: the real photos, the real synthetic model, an in-process app. */
import { type Config, loadConfig } from "../../config.ts";
import { Classifier } from "../../model/runtime/classifier.ts";
import { loadLabels } from "../../model/classes/labels.ts";
import { loadModel } from "../../model/start.ts";
import { buildClassifier } from "../../model/runtime/build.ts";
import type { Backend, ModelRunner } from "../../model/runtime/runner.ts";
import { ModelState } from "../../model/runtime/state.ts";
import { createRepository } from "../../model/repository/repository.ts";
import { createApp } from "../../routes/app.ts";
import { configureLogging, type LogRecord } from "../../observability/logger.ts";
import { createTelemetry } from "../../observability/telemetry.ts";
import { modelHooks } from "../../model/repository/metrics.ts";
import { openKeyStore } from "../../routes/access.ts";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { BrokenRunner } from "./broken_runner.ts";

export const FIXTURES = new URL("../fixtures/", import.meta.url);

export interface FixtureImage {
  file: string;
  bytes: number;
  mode: string;
  width: number;
  height: number;
  format: "JPEG" | "PNG" | "WEBP";
  progressive: boolean;
  reference: string;
}

/** The shared fixtures plus our own (grayscale JPEG, 16-bit PNG, WebP; see make_*_fixtures.py). */
export async function manifest(): Promise<FixtureImage[]> {
  const read = async (name: string) => JSON.parse(await Deno.readTextFile(new URL(name, FIXTURES))).images;
  return [...await read("manifest.json"), ...await read("manifest_extra.json")];
}

export function fixture(path: string): Promise<Uint8Array<ArrayBuffer>> {
  return Deno.readFile(new URL(path, FIXTURES));
}

/** Configuration as the server would parse it from `env` (defaults otherwise). */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig((name) => env[name]);
}

/** Both inference backends, for tests that run the same cases on each (the edge profile must not rot). */
export const BACKENDS: readonly Backend[] = ["native", "wasm"];

const classifiers = new Map<Backend, Promise<Classifier>>();

/**
 * The real full-size synthetic ResNet-50 on `backend`, built once into ./models and shared by all
 * tests of a file.
 */
export function sharedClassifier(backend: Backend = "native"): Promise<Classifier> {
  let classifier = classifiers.get(backend);
  if (!classifier) {
    classifier = (async () => {
      // The same load path as the server (resolve, load, warm up), with the session in
      // this thread: tests then need no worker teardown. Worker tests start their own.
      const config = testConfig({
        MODEL_SOURCE: "synthetic",
        INFERENCE_WORKERS: "0",
        INTRA_OP_THREADS: "2",
        INFERENCE_BACKEND: backend,
      });
      const loaded = await loadModel(config);
      return buildClassifier(config, loaded, await loadLabels());
    })();
    classifiers.set(backend, classifier);
  }
  return classifier;
}

/** Telemetry with an in-memory span exporter, so tests can read the spans a request produced. */
export function testTelemetry(config: Config) {
  const spans = new InMemorySpanExporter();
  const telemetry = createTelemetry(config, "0.0.0-test", { exporter: spans, scheduledDelayMillis: 1 });
  return { telemetry, spans };
}

/**
 * An in-process app with the real model, ready; no port is opened. `env.INFERENCE_BACKEND`
 * picks the backend (and with it the decoder), as it does for the server.
 */
export async function readyApp(env: Record<string, string> = {}) {
  // Decode inline: in-process tests need no worker teardown (the pool has its own test).
  const config = testConfig({ PREPROCESS_WORKERS: "0", ...env });
  const state = new ModelState();
  const shared = await sharedClassifier(config.INFERENCE_BACKEND);
  const { telemetry, spans } = testTelemetry(config);
  const classifier = buildClassifier(
    config,
    { runners: [...shared.batcher.runners], info: shared.info },
    await loadLabels(),
    modelHooks(telemetry),
  );
  state.markReady(classifier, 0, 0);
  // As main.ts wires it: the single model as a repository of one (its management routes answer 403).
  const repository = createRepository(config, state);
  repository.registry.adopt(config.MODEL_NAME, classifier.info.version, {
    classifier,
    topK: config.TOP_K,
    close: () => classifier.close(),
  });
  // With API_KEYS_FILE, its store (which the test closes); it reloads only when told to (poll()).
  const keys = await openKeyStore(config, telemetry.metrics, { intervalMs: 3_600_000 });
  return {
    app: createApp({ config, state, telemetry, repository, keys }),
    state,
    config,
    telemetry,
    spans,
    keys,
  };
}

/** Routes log records into an array so tests can read them. */
export async function captureLogs(level: "debug" | "info" = "debug"): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  await configureLogging({ level, sink: (r) => records.push(r) });
  return records;
}

/** A multipart body with `file` fields, as curl -F builds it. */
export function multipart(
  files: Array<{ name?: string; bytes: Uint8Array<ArrayBuffer>; type?: string }>,
): FormData {
  const form = new FormData();
  for (const f of files) {
    form.append(
      f.name ?? "file",
      new Blob([f.bytes], { type: f.type ?? "application/octet-stream" }),
      "upload",
    );
  }
  return form;
}

/** A ready state whose classifier uses `runner` (for example one that fails like a corrupted session). */
export async function stateWithRunner(
  runner: ModelRunner,
  env: Record<string, string> = {},
): Promise<ModelState> {
  const shared = await sharedClassifier();
  const state = new ModelState();
  state.markReady(
    buildClassifier(
      testConfig({ PREPROCESS_WORKERS: "0", ...env }),
      { runners: [runner], info: shared.info },
      await loadLabels(),
    ),
    0,
    0,
  );
  return state;
}

/** The shared model's description, but every inference fails as a native fault would. */
export async function brokenRunner(message?: string): Promise<ModelRunner> {
  return new BrokenRunner((await sharedClassifier()).info, message);
}
