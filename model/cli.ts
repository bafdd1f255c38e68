/**
 * `deno task model:fetch` and `deno task model:synth`: prepare the model
 * cache ahead of time (for example while building a container image), with
 * the same configuration variables the server reads.
 */
import { ConfigError, loadConfig } from "../config.ts";
import { configureLogging, shutdownLogging } from "../observability/logger.ts";
import { ensureSynthetic, resolveModel } from "./source.ts";

const command = Deno.args[0];
if (command !== "fetch" && command !== "synth") {
  console.error("Usage: cli.ts fetch|synth");
  Deno.exit(2);
}
let exitCode = 0;
try {
  const config = loadConfig();
  await configureLogging({ level: config.LOG_LEVEL });
  const resolved = command === "fetch"
    ? await resolveModel({ ...config, MODEL_SOURCE: "zoo" })
    : await ensureSynthetic(config);
  console.error(`${resolved.path} (${resolved.weights} weights, sha256 ${resolved.sha256})`);
} catch (err) {
  console.error(err instanceof ConfigError || err instanceof Error ? err.message : String(err));
  exitCode = 1;
}
await shutdownLogging();
Deno.exit(exitCode);
