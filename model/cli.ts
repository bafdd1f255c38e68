/**
 * `deno task model:fetch` and `deno task model:synth`: prepare the model
 * cache ahead of time (for example while building a container image), with
 * the same configuration variables the server reads. With MODEL_PRECISION=int8
 * they also quantize (or download) the int8 model and run its quality gate.
 */
import { configOrExit } from "../config.ts";
import { configureLogging, shutdownLogging } from "../observability/logger.ts";
import { ensureSynthetic, resolveModel } from "./artifact/resolve.ts";
import { errorMessage } from "../core/errors.ts";

const command = Deno.args[0];
if (command !== "fetch" && command !== "synth") {
  console.error("Usage: cli.ts fetch|synth");
  Deno.exit(2);
}
// A bad value exits 2 with the one line naming it, as `deno task start` does.
const config = configOrExit();
let exitCode = 0;
try {
  await configureLogging({ level: config.LOG_LEVEL });
  const resolved = command === "fetch"
    ? await resolveModel({ ...config, MODEL_SOURCE: "zoo" })
    : await ensureSynthetic(config);
  console.error(`${resolved.path} (${resolved.weights} weights, sha256 ${resolved.sha256})`);
  if (config.MODEL_PRECISION === "int8") {
    // Loaded only here: fp32 preparation does not need the native runtime.
    const { choosePrecision } = await import("./quantize/precision.ts");
    const served = await choosePrecision({ ...config, MODEL_SOURCE: resolved.source }, resolved);
    const q = served.quantization;
    console.error(
      `${q?.int8Path} (int8, ${
        q?.accepted ? "accepted" : `refused: ${q?.reason}`
      }, top-1 agreement ${q?.top1Agreement})`,
    );
  }
} catch (err) {
  console.error(errorMessage(err));
  exitCode = 1;
}
await shutdownLogging();
Deno.exit(exitCode);
