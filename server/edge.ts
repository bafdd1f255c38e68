/**
 * What the edge entry (edge.ts) does differently from main.ts, as testable
 * parts: the edge profile's configuration defaults, and holding requests
 * that arrive during a cold start until the model is ready.
 */
import { type Config, loadConfig } from "../config.ts";
import type { ModelState } from "../model/runtime/state.ts";
import { clientAddress, type TrustedProxies } from "./client_address.ts";
import type { ConnectionInfo } from "../core/connection.ts";

/**
 * The configuration with the edge profile's defaults for what the operator
 * left unset: the WASM backend, and inference and decoding inline. Workers
 * asked for where the runtime has none are turned off here, with a note to
 * log, rather than failing at the first request.
 */
export function edgeConfig(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  hasWorkers = typeof Worker === "function",
): { config: Config; notes: string[] } {
  const defaults: Record<string, string> = {
    INFERENCE_BACKEND: "wasm",
    INFERENCE_WORKERS: "0",
    PREPROCESS_WORKERS: "0",
  };
  const config = loadConfig((name) => {
    const value = env(name);
    return value === undefined || value === "" ? defaults[name] : value;
  });
  const notes: string[] = [];
  if (!hasWorkers) {
    for (const name of ["INFERENCE_WORKERS", "PREPROCESS_WORKERS"] as const) {
      if (config[name] > 0) {
        notes.push(`${name}=${config[name]} ignored: this runtime has no Workers, so the work runs inline`);
        config[name] = 0;
      }
    }
  }
  return { config, notes };
}

/** Paths that answer at once while the model loads: probes and scrapes must not wait for it. */
const ANSWER_WHILE_LOADING = new Set(["/health", "/ready", "/info", "/metrics", "/v2/health/live"]);

type AppFetch = (request: Request, info: ConnectionInfo) => Response | Promise<Response>;

/**
 * The platform's fetch handler: tells the app who the client is, as the
 * native server does (the connection's peer, or the client a trusted proxy
 * names), and holds requests that arrive during a cold start. Edge platforms
 * start an isolate for the request that needs one, so its first requests
 * arrive while the model loads: they wait for it (at most `maxWaitMs`, then
 * get the usual 503 not_ready) instead of being refused at once; probes and
 * scrapes answer immediately.
 */
export function edgeFetch(
  app: AppFetch,
  options: { state: ModelState; loading: Promise<unknown>; maxWaitMs: number; trusted: TrustedProxies },
): (request: Request, info: Deno.ServeHandlerInfo) => Promise<Response> {
  const { state, maxWaitMs, trusted } = options;
  const settled = options.loading.then(() => {}, () => {});
  return async function fetch(request, info) {
    // Read before any await: the runtime may drop remoteAddr once the handler has awaited.
    const remoteAddr = info.remoteAddr as Deno.NetAddr;
    const connection = { remoteAddr, client: clientAddress(remoteAddr, request.headers, trusted) };
    if (state.status === "loading" && !ANSWER_WHILE_LOADING.has(new URL(request.url).pathname)) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([settled, new Promise<void>((resolve) => timer = setTimeout(resolve, maxWaitMs))]);
      clearTimeout(timer);
    }
    return await app(request, connection);
  };
}
