/**
 * Serving and shutdown: the HTTP server on loopback behind the connection
 * guard on the public port, and the drain that stops both on a signal
 * without losing an answer.
 */
import type { Config } from "../config.ts";
import type { ModelState } from "../model/runtime/state.ts";
import { logger } from "../observability/logger.ts";
import type { Telemetry } from "../observability/telemetry.ts";
import type { ConnectionInfo } from "../core/connection.ts";
import { clientAddress, TrustedProxies } from "./client_address.ts";
import { ACCEPT_ERROR_REASONS } from "./accept_loop.ts";
import { type ConnectionGuard, REFUSAL_REASONS, type RefusalReason } from "./connection_guard.ts";
import { connectionBudget, freeDescriptors, RESERVED_DESCRIPTORS } from "./descriptors.ts";
import { guardConnectionsInWorker } from "./guard_thread.ts";
import { problemResponse } from "../routes/problem.ts";

export interface ServerDeps {
  config: Config;
  app: { fetch: (request: Request, info: ConnectionInfo) => Response | Promise<Response> };
  state: ModelState;
  telemetry: Telemetry;
}

export interface RunningServer {
  /** The public address (the guard's). */
  readonly addr: Deno.NetAddr;
  /**
   * The HTTP server's own loopback address, behind the guard. It answers only connections the guard
   * opened; any other gets 403 `forbidden` (docs/security.md).
   */
  readonly internalAddr: Deno.NetAddr;
  /**
   * Takes the instance out of service (/ready 503), keeps serving for
   * SHUTDOWN_DELAY_MS, closes the listener, answers every request on an open
   * connection (bounded by SHUTDOWN_TIMEOUT_MS), then releases the model.
   * Idempotent.
   */
  shutdown(signal: string): Promise<void>;
}

/**
 * Connections kept beyond MAX_CONNECTIONS for /health, /ready and /metrics: a kubelet probing liveness and
 * readiness and a Prometheus or two scraping, each on its own connection, with room for retries.
 */
export const PROBE_RESERVE = 8;

/** Accept errors closer together than this are one burst, logged once (its first error). */
const ACCEPT_BURST_GAP_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Where the guard's connections to the HTTP server come from (it connects to the loopback listener). */
const GUARD_SOURCE = "127.0.0.1";

/**
 * The answer to a request on a connection the guard did not open: a local process that found the
 * loopback port. Serving it would skip the connection limit, the timeouts and departure tracking.
 */
function unguardedResponse(publicPort: number): Response {
  return problemResponse(
    "forbidden",
    `This is the gateway's internal listener; send requests to the public port (${publicPort})`,
    { headers: { connection: "close" } },
  );
}

/** Starts serving; resolves once the public port listens, rejects if it cannot (port taken, bad host). */
export async function startServer(deps: ServerDeps): Promise<RunningServer> {
  const { config } = deps;
  const log = logger("lifecycle");
  const guardOn = config.CONNECTION_GUARD === "on";
  const perConnection = guardOn ? 3 : 1;
  const extra = guardOn ? PROBE_RESERVE : 0;
  const wanted = (config.MAX_CONNECTIONS + extra) * perConnection + RESERVED_DESCRIPTORS;
  const budget = connectionBudget(config.MAX_CONNECTIONS, perConnection, freeDescriptors(wanted), extra);
  if (budget.warning) log.warn(budget.warning, { max_connections: budget.maxConnections });
  return guardOn ? await startGuarded(deps, budget.maxConnections) : startDirect(deps);
}

/**
 * CONNECTION_GUARD=off: Deno.serve on the public port, for deployments behind a proxy (Envoy, nginx, an
 * ingress) that enforces header and idle timeouts and connection caps itself. The drain is Deno's: it
 * answers the requests in progress, closes idle kept-alive connections, and a request that arrives on one
 * as it closes is lost (docs/operations.md has the counts).
 */
function startDirect({ config, app, state, telemetry }: ServerDeps): RunningServer {
  const trusted = new TrustedProxies(config.TRUSTED_PROXIES);
  zeroCounters(telemetry);
  const server = Deno.serve(
    { hostname: config.HOST, port: config.PORT, onListen: () => {} },
    (request, info): Response | Promise<Response> =>
      app.fetch(request, {
        remoteAddr: info.remoteAddr,
        client: clientAddress(info.remoteAddr, request.headers, trusted),
      }),
  );
  let stopping: Promise<void> | undefined;
  return {
    addr: server.addr,
    internalAddr: server.addr,
    shutdown: (signal) =>
      stopping ??= drainAndStop(config, state, signal, async (timeoutMs) => {
        const done = await Promise.race([
          server.shutdown().then(() => true),
          sleep(timeoutMs).then(() => false),
        ]);
        if (!done) logger("lifecycle").warn("Shutdown timeout: Deno's server still had connections open");
      }),
  };
}

/** Zero from the start, so a rate() over the first errors sees them. */
function zeroCounters(telemetry: Telemetry): void {
  for (const reason of ACCEPT_ERROR_REASONS) telemetry.metrics.acceptErrors.inc({ reason }, 0);
  for (const reason of REFUSAL_REASONS) telemetry.metrics.connectionsRefused.inc({ reason }, 0);
}

/**
 * The shutdown both modes share: out of rotation (/ready 503), SHUTDOWN_DELAY_MS of full service, then
 * `drain` closes the listener and answers what is on open connections within SHUTDOWN_TIMEOUT_MS, then
 * the model is released.
 */
async function drainAndStop(
  config: Config,
  state: ModelState,
  signal: string,
  drain: (timeoutMs: number) => Promise<void>,
): Promise<void> {
  const log = logger("lifecycle");
  state.drain();
  const delayMs = config.SHUTDOWN_DELAY_MS;
  const timeoutMs = config.SHUTDOWN_TIMEOUT_MS;
  log.info("Received {signal}: /ready answers 503; serving {delay_ms} ms more, then draining", {
    signal,
    delay_ms: delayMs,
    timeout_ms: timeoutMs,
  });
  if (delayMs > 0) await sleep(delayMs);
  const deadline = performance.now() + timeoutMs;
  log.info("Closing the listener; answering the requests on open connections (at most {timeout_ms} ms)", {
    timeout_ms: timeoutMs,
  });
  await drain(timeoutMs);
  // No client connection is left, so nothing new reaches the model; what the timeout cut may still be
  // running, and gets what is left of the deadline.
  await Promise.race([state.classifier?.drain(), sleep(Math.max(0, deadline - performance.now()))]);
  await state.classifier?.close();
}

async function startGuarded(
  { config, app, state, telemetry }: ServerDeps,
  maxConnections: number,
): Promise<RunningServer> {
  const log = logger("lifecycle");
  const trusted = new TrustedProxies(config.TRUSTED_PROXIES);
  // Logged once: a local process probing the port must not flood the log.
  let unguardedLogged = false;
  // Set once the guard listens; before that no connection can be the guard's.
  let guarded: ConnectionGuard | undefined = undefined;
  // The HTTP server listens on loopback only; the public port is the connection guard, in
  // its own thread, which adds the header/idle timeouts, connection cap and lossless drain
  // Deno.serve lacks.
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request, info): Response | Promise<Response> => {
      // Read now: Deno.serve's remoteAddr is gone once the handler has awaited.
      const upstream = info.remoteAddr;
      // The guard records each of its connections before relaying a byte, and forgets it before the
      // port is free again; the address check stops a socket bound to another loopback address
      // (127.0.0.2) on a port the guard holds. Only one socket can be 127.0.0.1:port to this listener.
      const peer = upstream.hostname === GUARD_SOURCE ? guarded?.clientOf(upstream.port) : undefined;
      if (!peer) {
        if (!unguardedLogged) {
          unguardedLogged = true;
          log.warn("Refused a request on the internal listener from {peer}, not through the guard", {
            peer: `${upstream.hostname}:${upstream.port}`,
          });
        }
        return unguardedResponse(config.PORT || guarded?.addr.port || 0);
      }
      return app.fetch(request, {
        remoteAddr: peer,
        client: clientAddress(peer, request.headers, trusted),
        clientGone: guarded?.clientGone(upstream.port),
      });
    },
  );
  const refusalsLogged = new Set<RefusalReason>();
  zeroCounters(telemetry);
  let lastAcceptError = -Infinity;
  const guard: ConnectionGuard = await guardConnectionsInWorker({
    hostname: config.HOST,
    port: config.PORT,
    upstream: { hostname: "127.0.0.1", port: server.addr.port },
    maxConnections,
    maxConnectionsPerClient: config.MAX_CONNECTIONS_PER_CLIENT,
    trustedProxies: config.TRUSTED_PROXIES,
    probeReserve: PROBE_RESERVE,
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
    onAcceptError: (reason, message) => {
      telemetry.metrics.acceptErrors.inc({ reason });
      const now = performance.now();
      const quiet = now - lastAcceptError >= ACCEPT_BURST_GAP_MS;
      lastAcceptError = now;
      if (!quiet) return;
      log.warn("Accepting a connection failed ({reason}: {error}); still accepting, further errors counted", {
        reason,
        error: message,
      });
    },
    onCrash: (error) => {
      // Nothing reaches the app any more: exit, so the supervisor restarts the instance.
      log.fatal("Connection guard failed: {error}", { error });
      Deno.exit(1);
    },
  }).catch(async (err) => {
    await server.shutdown();
    throw err;
  });

  guarded = guard;

  let stopping: Promise<void> | undefined;
  const stop = (signal: string) =>
    drainAndStop(config, state, signal, async (timeoutMs) => {
      const deadline = performance.now() + timeoutMs;
      const report = await guard.drain(timeoutMs);
      if (report.timedOut) {
        log.warn("Shutdown timeout cut {cut} requests", { cut: report.cut, timeout_ms: timeoutMs });
      }
      if (report.late > 0) {
        log.warn("{late} requests arrived on connections already closed for being idle", {
          late: report.late,
        });
      }
      // No client connection is left, so nothing new reaches the server.
      await Promise.race([server.shutdown(), sleep(Math.max(0, deadline - performance.now()))]);
    });

  return {
    addr: guard.addr,
    internalAddr: server.addr,
    shutdown: (signal) => stopping ??= stop(signal),
  };
}
