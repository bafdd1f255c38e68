/**
 * Entry point: wires configuration, logging, the model, the app and the
 * server. Everything with logic lives in config.ts, model/, routes/ and
 * observability/.
 */
import denoJson from "./deno.json" with { type: "json" };
import { type Config, ConfigError, loadConfig, publicConfig } from "./config.ts";
import { initDecoders } from "./model/decode.ts";
import { loadLabels } from "./model/labels.ts";
import { buildClassifier, loadModel, superviseWorkers } from "./model/load.ts";
import { ModelState } from "./model/state.ts";
import { createApp } from "./routes/app.ts";
import { guardConnections, type RefusalReason } from "./routes/connection_guard.ts";
import { buildInfo } from "./routes/health.ts";
import { configureLogging, logger, shutdownLogging } from "./observability/logger.ts";
import { createTelemetry } from "./observability/telemetry.ts";

function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    Deno.exit(2);
  }
}
const config = configOrExit();

await configureLogging({ level: config.LOG_LEVEL });
const log = logger("lifecycle");
const build = buildInfo(denoJson.version);
log.info("Starting inference-gateway {version}", { ...build, config: publicConfig(config) });

const telemetry = createTelemetry(config, build.version);
log.info("Tracing: {exporting}", {
  exporting: telemetry.tracing.endpoint
    ? `OTLP/HTTP to ${telemetry.tracing.endpoint}`
    : "in-process only (no endpoint)",
  sampler: config.OTEL_TRACES_SAMPLER,
  sampler_arg: config.OTEL_TRACES_SAMPLER_ARG,
});

const state = new ModelState();
const app = createApp({ config, state, telemetry, build });
// The HTTP server listens on loopback only; the public port is the connection guard,
// which adds the header/idle timeouts and connection cap Deno.serve lacks.
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
const refusalsLogged = new Set<RefusalReason>();
const guard = guardConnections({
  hostname: config.HOST,
  port: config.PORT,
  upstream: { hostname: "127.0.0.1", port: server.addr.port },
  maxConnections: config.MAX_CONNECTIONS,
  headerTimeoutMs: config.HEADER_TIMEOUT_MS,
  idleTimeoutMs: config.IDLE_TIMEOUT_MS,
  onOpenChange: (open) => telemetry.metrics.connectionsOpen.set(open),
  onRefused: (reason) => {
    telemetry.metrics.connectionsRefused.inc({ reason });
    // Counted every time, logged once per reason: a slowloris must not flood the log.
    if (refusalsLogged.has(reason)) return;
    refusalsLogged.add(reason);
    log.warn("Closed a client connection: {reason} (further ones are only counted)", { reason });
  },
});
log.info("Listening on http://{hostname}:{port}", { hostname: guard.addr.hostname, port: guard.addr.port });

let shuttingDown = false;
async function shutdown(signal: string): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  state.drain();
  guard.stopAccepting();
  log.info("Received {signal}: draining in-flight requests (at most {timeout_ms} ms)", {
    signal,
    timeout_ms: config.SHUTDOWN_TIMEOUT_MS,
  });
  const drained = await Promise.race([
    Promise.all([server.shutdown(), state.classifier?.batcher.drain()]).then(() => true),
    new Promise<false>((r) => setTimeout(() => r(false), config.SHUTDOWN_TIMEOUT_MS)),
  ]);
  if (!drained) log.warn("Drain timed out; closing remaining connections");
  guard.closeAll();
  await Promise.all((state.classifier?.batcher.runners ?? []).map((r) => r.close().catch(() => {})));
  state.classifier?.preprocessor.close();
  // Bounded by the exporter's timeout; a dead collector must not hold the exit.
  await telemetry.tracing.shutdown().catch(() => {});
  log.info("Shutdown complete");
  await shutdownLogging();
  Deno.exit(0);
}
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => void shutdown(signal));
}

try {
  const [labels, loaded] = await Promise.all([loadLabels(), loadModel(config), initDecoders()]);
  const { metrics, tracing } = telemetry;
  const classifier = buildClassifier(config, loaded, labels, {
    tracer: tracing.tracer,
    onQueueDepth: (depth) => metrics.queueDepth.set(depth),
    onBatch: (size) => metrics.batchSize.observe(size),
  });
  superviseWorkers(classifier.batcher, loaded.runnerOptions, () => metrics.workerRestarts.inc());
  state.markReady(classifier, loaded.loadSeconds, loaded.warmupMs);
  log.info("Ready: serving {model} ({weights} weights)", {
    model: loaded.info.name,
    weights: loaded.info.weights,
    sessions: loaded.runners.length,
    max_batch_size: config.MAX_BATCH_SIZE,
    max_queue: config.MAX_QUEUE,
  });
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  state.markFailed(message);
  log.fatal("Model failed to load, stopping: {error}", { error: message });
  await telemetry.tracing.shutdown().catch(() => {});
  await shutdownLogging();
  Deno.exit(1);
}
