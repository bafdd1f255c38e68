/**
 * Serving and shutdown: the HTTP server on loopback behind the connection
 * guard on the public port, and the drain that stops both on a signal.
 */
import type { Config } from "../config.ts";
import type { ModelState } from "../model/state.ts";
import { logger } from "../observability/logger.ts";
import type { Telemetry } from "../observability/telemetry.ts";
import { guardConnections, type RefusalReason } from "./connection_guard.ts";

export interface ServerDeps {
  config: Config;
  app: {
    fetch: (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | Promise<Response>;
  };
  state: ModelState;
  telemetry: Telemetry;
}

export interface RunningServer {
  /** The public address (the guard's). */
  readonly addr: Deno.NetAddr;
  /**
   * Stops admitting, drains in-flight requests (bounded by SHUTDOWN_TIMEOUT_MS),
   * closes the remaining connections and releases the model. Idempotent.
   */
  shutdown(signal: string): Promise<void>;
}

export function startServer({ config, app, state, telemetry }: ServerDeps): RunningServer {
  const log = logger("lifecycle");
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

  let stopping: Promise<void> | undefined;
  async function stop(signal: string): Promise<void> {
    state.drain();
    guard.stopAccepting();
    log.info("Received {signal}: draining in-flight requests (at most {timeout_ms} ms)", {
      signal,
      timeout_ms: config.SHUTDOWN_TIMEOUT_MS,
    });
    const drained = await Promise.race([
      Promise.all([server.shutdown(), state.classifier?.drain()]).then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), config.SHUTDOWN_TIMEOUT_MS)),
    ]);
    if (!drained) log.warn("Drain timed out; closing remaining connections");
    guard.closeAll();
    await state.classifier?.close();
  }

  return {
    addr: guard.addr,
    shutdown: (signal) => stopping ??= stop(signal),
  };
}
