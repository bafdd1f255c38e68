/**
 * Entry point for fetch-handler runtimes (Deno Deploy, Supabase and Netlify
 * Edge Functions, `deno serve`): the same app as main.ts, with nothing such a
 * platform refuses. Its default export is `{ fetch }`; the platform owns the
 * listener, the connections and the process, so there is no Deno.listen, no
 * connection guard and no signal handling here. The model runs on the WASM
 * backend, inline unless Workers are asked for and available, and nothing is
 * ever written (docs/edge.md). `deno task start:edge` serves it locally under
 * the same restrictions.
 */
import denoJson from "./deno.json" with { type: "json" };
import { configOrExit, publicConfig } from "./config.ts";
import { createRepository } from "./model/repository/repository.ts";
import { ModelState } from "./model/runtime/state.ts";
import { KeyStoreError } from "./access/key_store.ts";
import { openKeyStore } from "./routes/access.ts";
import { createApp } from "./routes/app.ts";
import { buildInfo } from "./routes/health.ts";
import { TrustedProxies } from "./server/client_address.ts";
import { edgeConfig, edgeFetch } from "./server/edge.ts";
import { configureLogging, logger } from "./observability/logger.ts";
import { createTelemetry } from "./observability/telemetry.ts";
import { modelHooks } from "./model/repository/metrics.ts";
import { errorMessage } from "./core/errors.ts";

// A bad value stops here as in main.ts: one line naming the variable, exit 2 (the platform shows it).
const { config, notes } = configOrExit(() => edgeConfig());
await configureLogging({ level: config.LOG_LEVEL });
const log = logger("lifecycle");
const build = buildInfo(denoJson.version);
log.info("Starting inference-gateway {version} (edge entry)", { ...build, config: publicConfig(config) });
for (const note of notes) log.warn(note);

const telemetry = createTelemetry(config, build.version);
// A missing or invalid key file stops the isolate as a bad variable does: one line naming it, exit 2.
const keys = await openKeyStore(config, telemetry.metrics).catch((err) => {
  if (!(err instanceof KeyStoreError)) throw err;
  log.fatal("{error}", { error: err.message });
  console.error(err.message);
  Deno.exit(2);
});
const state = new ModelState();
const repository = createRepository(config, state, modelHooks(telemetry), { disk: false });
const app = createApp({ config, state, telemetry, build, repository, keys });

// Loading starts with the isolate and does not hold the module: the platform can route probes at once.
const loading = repository.start().catch((err) => {
  const message = errorMessage(err);
  state.markFailed(message);
  // No process to exit on a platform: /ready and /info say why, requests get 503 not_ready.
  log.fatal("Model failed to load: {error}", { error: message });
});

export default {
  fetch: edgeFetch(app.fetch, {
    state,
    loading,
    maxWaitMs: config.REQUEST_TIMEOUT_MS,
    trusted: new TrustedProxies(config.TRUSTED_PROXIES),
  }),
  onListen(addr) {
    if (addr.transport === "tcp") {
      log.info("Listening on http://{hostname}:{port}", { hostname: addr.hostname, port: addr.port });
    }
  },
} satisfies Deno.ServeDefaultExport;
