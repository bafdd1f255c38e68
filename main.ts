/**
 * Entry point: wires configuration, logging, the model, the app and the
 * server. Everything with logic lives in config.ts, access/, image/, model/, routes/,
 * server/ and observability/.
 */
import denoJson from "./deno.json" with { type: "json" };
import { configOrExit, publicConfig } from "./config.ts";
import { createRepository } from "./model/repository/repository.ts";
import { ModelState } from "./model/runtime/state.ts";
import { KeyStoreError } from "./access/key_store.ts";
import { accessRules, describeAccess, openKeyStore } from "./routes/access.ts";
import { createApp } from "./routes/app.ts";
import { startServer } from "./server/serve.ts";
import { buildInfo } from "./routes/health.ts";
import { configureLogging, logger, shutdownLogging } from "./observability/logger.ts";
import { createTelemetry } from "./observability/telemetry.ts";
import { modelHooks } from "./model/repository/metrics.ts";
import { errorMessage } from "./core/errors.ts";

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

// A key file that is missing or invalid stops startup as a bad variable does: one line naming it, exit 2.
const keys = await openKeyStore(config, telemetry.metrics).catch(async (err) => {
  if (!(err instanceof KeyStoreError)) throw err;
  log.fatal("{error}", { error: err.message });
  await shutdownLogging();
  console.error(err.message);
  Deno.exit(2);
});
log.info("Access: {summary}", {
  summary: keys
    ? `API keys from ${config.API_KEYS_FILE}`
    : "no API_KEYS_FILE: inference open, management off",
  routes: describeAccess(accessRules({ metricsRequireKey: config.METRICS_REQUIRE_KEY }), keys !== undefined),
});

const state = new ModelState();
const repository = createRepository(config, state, modelHooks(telemetry));
const app = createApp({ config, state, telemetry, build, repository, keys });
const server = await startServer({ config, app, state, telemetry }).catch(async (err) => {
  log.fatal("Cannot listen on {host}:{port}: {error}", {
    host: config.HOST,
    port: config.PORT,
    error: err.message,
  });
  await shutdownLogging();
  Deno.exit(1);
});
log.info("Listening on http://{hostname}:{port}", {
  hostname: server.addr.hostname,
  port: server.addr.port,
  // Behind the connection guard; the benchmark measures what the guard costs against it.
  internal_port: server.internalAddr.port,
});

async function shutdown(signal: string): Promise<void> {
  await server.shutdown(signal);
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
  // Without MODEL_REPOSITORY this is the one model, and its failure stops the process as before; a
  // repository's failed models are in its index and /ready instead.
  await repository.start();
} catch (err) {
  const message = errorMessage(err);
  state.markFailed(message);
  log.fatal("Model failed to load, stopping: {error}", { error: message });
  await telemetry.tracing.shutdown().catch(() => {});
  await shutdownLogging();
  Deno.exit(1);
}
