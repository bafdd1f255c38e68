/**
 * The public listener. Deno.serve has no header timeout, idle timeout or
 * connection cap (denoland/deno#3515), takes no socket from elsewhere, and on
 * shutdown drops a request that arrives on a kept-alive connection. So the
 * public port is a plain TCP listener that enforces those limits and relays
 * bytes to the HTTP server, which listens on loopback only.
 *
 * The relay reads HTTP/1.1 framing as the bytes pass (./http_framing.ts), so
 * it knows when a request is on a connection. That is what lets a drain lose
 * nothing: a connection is closed only between requests, and the response
 * that ends it says `Connection: close`.
 */
import { type AcceptErrorReason, acceptLoop } from "./accept_loop.ts";
import { TrustedProxies } from "./client_address.ts";
import { ClientTable } from "./client_table.ts";
import { FRAMING_ANSWERS, type FramingError, Http1Framer, withConnectionClose } from "./http_framing.ts";

/**
 * Why the guard refused or closed a connection (`http_connections_refused_total{reason}`): a limit, or a
 * request it cannot frame (answered 400, 431 or 505 and closed: failing closed, never passing bytes on).
 */
export const REFUSAL_REASONS = [
  "connection_limit",
  "header_timeout",
  "idle_timeout",
  "unframeable",
  "head_too_large",
  "client_limit",
] as const;

/** What a connection admitted into the probe reserve may ask for. */
export const PROBE_PATHS: ReadonlySet<string> = new Set(["/health", "/ready", "/metrics"]);
export type RefusalReason = typeof REFUSAL_REASONS[number];

export interface ConnectionGuardOptions {
  hostname: string;
  port: number;
  /** Where the HTTP server listens (loopback). */
  upstream: { hostname: string; port: number };
  /** Open client connections; past this, new ones get a 503 and are closed. */
  maxConnections: number;
  /**
   * Open connections from one client address; past this, its new ones get a 503. 0: no cap. Peers in
   * `trustedProxies` (TRUSTED_PROXIES, as CIDRs) are exempt: one proxy's address carries many clients.
   */
  maxConnectionsPerClient?: number;
  trustedProxies?: readonly string[];
  /**
   * Connections kept beyond `maxConnections` for the probes and the scraper: one admitted there may only
   * ask for PROBE_PATHS (anything else gets a 503), so a full instance still reports itself.
   */
  probeReserve?: number;
  /** A request's headers must arrive within this (from the connection's start for the first one). */
  headerTimeoutMs: number;
  /** A connection with no bytes either way for this long is closed. */
  idleTimeoutMs: number;
  /** Called for each connection refused or closed by a limit (metrics, logs). Must not throw. */
  onRefused?: (reason: RefusalReason) => void;
  /** Called for each failed accept (the loop goes on); must not throw. */
  onAcceptError?: (reason: AcceptErrorReason, message: string) => void;
  /** Called with the number of open client connections whenever it changes. */
  onOpenChange?: (open: number) => void;
  /** Where each client's address is recorded for the server (shared memory when the guard runs in a Worker). */
  clients?: ClientTable;
}

export interface DrainReport {
  /** Whether the timeout ended the drain. */
  timedOut: boolean;
  /** Requests on connections the timeout closed: they got no complete response. */
  cut: number;
  /**
   * Requests that reached a connection after the guard had closed it for having
   * none on it: the race every HTTP/1.1 server has with a client reusing an idle
   * connection. Clients see the connection close before sending, or retry.
   */
  late: number;
}

export interface ConnectionGuard {
  /** The public address. */
  readonly addr: Deno.NetAddr;
  /** The client behind a relayed connection, by the local port of the guard's connection to the server. */
  clientOf(upstreamPort: number): Deno.NetAddr | undefined;
  /** Aborts when the client of that connection leaves (closes or resets its side); see ClientTable. */
  clientGone(upstreamPort: number): AbortSignal | undefined;
  /**
   * Closes the listener and drains: each request on a connection, or arriving
   * on one, is relayed and its response, marked `Connection: close`, forwarded
   * in full before the connection closes. A connection without a request is
   * closed after a short grace. Resolves when every connection is closed, or
   * at `timeoutMs`, when the rest are cut.
   */
  drain(timeoutMs: number): Promise<DrainReport>;
}

/** Uploads are large (a photo is ~100 KB): fewer, larger reads. */
const REQUEST_BUFFER = 64 * 1024;
/** Answers are small JSON. */
const RESPONSE_BUFFER = 16 * 1024;
/**
 * During a drain, a connection without a request is closed after this long
 * without one: time enough for a client that sends continuously to send its
 * next request (answered with `Connection: close`), little enough not to hold
 * the exit.
 */
const DRAIN_IDLE_GRACE_MS = 1000;
/**
 * After the guard's FIN that follows an answer, how long it reads (and
 * discards) until the client's: closing with unread bytes sends a reset, which
 * can destroy the answer before the client has read it.
 */
const LINGER_MS = 2000;
/** After closing an idle connection: nothing was sent lately, so this only notices a request racing the close. */
const IDLE_LINGER_MS = 500;
/**
 * After a client's FIN with its requests complete, when to ask again whether it still listens: soon (a
 * loopback or LAN reset arrives in well under this), then backing off to the cap while its answer is due.
 */
const PROBE_FIRST_MS = 50;
const PROBE_MAX_MS = 2000;
/**
 * An interim response every HTTP/1.1 client must accept before the final one (RFC 9110 §15.2). Written to a
 * client that has sent its FIN: one that only half-closed ignores it; one that closed its socket answers it
 * with a reset, which fails the next write. TCP shows nothing else that tells the two apart.
 */
const PROBE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");

/**
 * An answer in the gateway's problem format (routes/problem.ts; the guard's tests check they agree): the
 * guard answers before any route does, in its own thread, without the app's modules.
 */
const TITLES = {
  overloaded: "Server overloaded",
  bad_request: "Malformed request",
  request_head_too_large: "Request headers too large",
  http_version_not_supported: "HTTP version not supported",
} as const;
const REASON_PHRASES: Record<number, string> = {
  400: "Bad Request",
  431: "Request Header Fields Too Large",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

function problemAnswer(status: number, code: keyof typeof TITLES, detail: string, extra = ""): Uint8Array {
  const body = JSON.stringify({
    type: `urn:inference-gateway:problem:${code}`,
    title: TITLES[code],
    status,
    detail,
    code,
  });
  return new TextEncoder().encode(
    `HTTP/1.1 ${status} ${REASON_PHRASES[status]}\r\ncontent-type: application/problem+json\r\n${extra}` +
      `connection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
  );
}

const OVER_CAPACITY = problemAnswer(
  503,
  "overloaded",
  "The server has reached its connection limit; retry shortly",
  "retry-after: 1\r\n",
);
const CLIENT_OVER_CAPACITY = problemAnswer(
  503,
  "overloaded",
  "This client has reached its connection limit (MAX_CONNECTIONS_PER_CLIENT); reuse a connection",
  "retry-after: 1\r\n",
);
const PROBES_ONLY = problemAnswer(
  503,
  "overloaded",
  "The server has reached its connection limit; only /health, /ready and /metrics are served on this one",
  "retry-after: 1\r\n",
);

/** What the guard answers to each request its framer cannot frame, before closing the connection. */
const FRAMING_REFUSALS = Object.fromEntries(
  Object.entries(FRAMING_ANSWERS).map(([why, a]) => [why, problemAnswer(a.status, a.code, a.detail)]),
) as Record<FramingError, Uint8Array>;

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  // Per chunk: a view is made only for what a short write left.
  while (written < bytes.byteLength) {
    written += await conn.write(written === 0 ? bytes : bytes.subarray(written));
  }
}

function concat(pieces: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of pieces) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function closeQuietly(conn: Deno.Conn | undefined): void {
  try {
    conn?.close();
  } catch { /* already closed */ }
}

type Verdict = 0 | 1 | 2;
const CONTINUE = 0;
/** The response that ends the connection has been framed. */
const LAST = 1;
const UNFRAMEABLE = 2;

/** What the guard asks of each relayed connection. */
interface RelayContext {
  readonly options: ConnectionGuardOptions;
  readonly clients: ClientTable;
  refuse(reason: RefusalReason): void;
}

/** One client connection and its connection to the server. */
class Relay {
  readonly #ctx: RelayContext;
  readonly client: Deno.TcpConn;
  #upstream: Deno.TcpConn | undefined;
  #upstreamPort = 0;
  readonly #requests = new Http1Framer("request");
  readonly #responses = new Http1Framer("response");
  /** Requests whose head was relayed, and final responses relayed in full. */
  #started = 0;
  #answered = 0;
  #lastActivity: number;
  /** When the head being waited for must have arrived (the first from the start; later ones from their first byte). */
  #headerDeadline: number;
  #drainIdleAt = Infinity;
  #lingerUntil = Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #draining = false;
  /** The response being relayed says `Connection: close`: the connection ends after it. */
  #closeAfterResponse = false;
  #clientEnded = false;
  /** Bytes from the server are being written to the client: a probe must not land inside them. */
  #writing = false;
  /** A probe being written: the server's bytes wait for it. */
  #probing: Promise<void> | undefined;
  #probeTimer: ReturnType<typeof setTimeout> | undefined;
  /** What to write to the client from one read of the server's bytes (reused). */
  readonly #out: Uint8Array[] = [];
  #phase: "open" | "closing" | "closed" = "open";
  /** Requests that arrived during a drain after the connection was closed for having none. */
  late = 0;
  /** A request the framer cannot frame: its answer, sent once the server has answered `#refuseAfter`. */
  #refusal: Uint8Array | undefined;
  #refuseAfter = 0;
  #refusalSent = false;
  #sendingRefusal: Promise<void> | undefined;
  /** A request in the probe reserve that is not a probe: read to its end, not relayed, then refused. */
  #discarding = false;

  constructor(ctx: RelayContext, client: Deno.TcpConn, readonly probeOnly = false) {
    this.#ctx = ctx;
    this.client = client;
    this.#lastActivity = performance.now();
    this.#headerDeadline = this.#lastActivity + ctx.options.headerTimeoutMs;
    this.#arm(this.#headerDeadline);
  }

  /** A request is on the connection: its head has started and its response is not yet relayed in full. */
  get #busy(): boolean {
    return this.#started > this.#answered || this.#requests.inHead || this.#requests.opaque ||
      this.#responses.opaque;
  }

  async run(): Promise<void> {
    try {
      this.client.setNoDelay(true);
      const upstream = await Deno.connect({ ...this.#ctx.options.upstream, transport: "tcp" });
      this.#upstream = upstream;
      if (this.#phase !== "open") return;
      upstream.setNoDelay(true);
      this.#upstreamPort = (upstream.localAddr as Deno.NetAddr).port;
      this.#ctx.clients.set(this.#upstreamPort, this.client.remoteAddr as Deno.NetAddr);
      await Promise.all([this.#clientToServer(upstream), this.#serverToClient(upstream)]);
    } catch {
      // Resets and reads after close are how connections end; nothing to report.
    } finally {
      this.#finish();
    }
  }

  async #clientToServer(upstream: Deno.TcpConn): Promise<void> {
    const buf = new Uint8Array(REQUEST_BUFFER);
    let forwarding = true;
    try {
      while (true) {
        const n = await this.client.read(buf);
        if (n === null) break;
        this.#lastActivity = performance.now();
        if (this.#phase !== "open") {
          // Lingering after our FIN: a request arriving now cannot be answered.
          if (this.#draining) this.late += this.#countHeads(buf, n);
          continue;
        }
        // The server has gone, or a request was refused; the connection is closing.
        if (!forwarding || this.#refusal) continue;
        const end = this.#scanRequests(buf, n);
        if (end === 0) continue;
        try {
          await writeAll(upstream, end === buf.length ? buf : buf.subarray(0, end));
        } catch {
          forwarding = false;
        }
      }
    } catch {
      // The client reset the connection.
      return this.#finish();
    }
    this.#clientEnded = true;
    if (this.#phase !== "open") return this.#finish();
    // A refused request is answered once what came before it is; a half-closed client still reads.
    if (this.#refusal) return;
    // Nothing asked and nothing owed: the connection is over.
    if (!this.#requests.inMessage && !this.#requests.opaque && this.#started === this.#answered) {
      return this.#beginClose();
    }
    // The FIN cuts a request short (or framing is lost): the client has left, and what it waits for is
    // dropped (499). The server is told the request ends here.
    if (this.#requests.inMessage || this.#requests.opaque) return this.#departed(upstream);
    // Its requests are complete. A FIN then is a legal half-close (nc -N, some proxies): it is answered,
    // and the half-close is not passed on, since the HTTP server would drop what it has not yet answered.
    // Whether the client closed its socket instead (left) shows only when something is written to it;
    // an HTTP/1.0 client may not be sent an interim response, so it is answered without asking.
    if (this.#requests.minorVersion > 0) this.#probe(upstream, PROBE_FIRST_MS, true);
  }

  /** The client has left: its requests' work is dropped; the server answers what it can, then closes. */
  #departed(upstream: Deno.TcpConn): void {
    if (this.#upstreamPort) this.#ctx.clients.markGone(this.#upstreamPort);
    upstream.closeWrite().catch(() => {});
  }

  /** Writes an interim response between the server's responses; a failed write means the client has left. */
  #probe(upstream: Deno.TcpConn, delayMs: number, now = false): void {
    const next = () => this.#probe(upstream, Math.min(delayMs * 2, PROBE_MAX_MS));
    if (this.#phase !== "open" || this.#started === this.#answered) return;
    if (!now) {
      this.#probeTimer = setTimeout(() => {
        this.#probeTimer = undefined;
        if (this.#writing || this.#responses.inMessage || this.#responses.opaque) return next();
        this.#probe(upstream, delayMs, true);
      }, delayMs);
      return;
    }
    this.#probing = writeAll(this.client, PROBE).then(next, () => this.#departed(upstream))
      .finally(() => this.#probing = undefined);
  }

  /** Frames the requests in `buf[0..n)`; returns how many of its bytes to relay (fewer after a refusal). */
  #scanRequests(buf: Uint8Array, n: number): number {
    const f = this.#requests;
    let i = 0;
    // Where the head being read began in this buffer (0 if in an earlier one, already relayed).
    let headStart = 0;
    // A request being discarded (see head_end) is not relayed, from its head on.
    let relayEnd = this.#discarding ? 0 : n;
    while (true) {
      i = f.advance(buf, i, n);
      switch (f.event) {
        case "none":
          // A head split across reads: its deadline runs (the first one's since the connection opened).
          if (f.inHead) this.#arm(this.#headerDeadline);
          return relayEnd;
        case "head_start":
          headStart = i;
          if (this.#started > 0) {
            this.#headerDeadline = this.#lastActivity + this.#ctx.options.headerTimeoutMs;
          }
          this.#drainIdleAt = Infinity;
          break;
        case "head_end":
          if (this.probeOnly && !PROBE_PATHS.has(f.path)) {
            // In the reserve: this request is not relayed; its body is read (a client still uploading
            // would fail on a close) and it is answered 503 at its end, after those before it.
            this.#discarding = true;
            this.#headerDeadline = Infinity;
            relayEnd = headStart;
            break;
          }
          this.#started++;
          this.#headerDeadline = Infinity;
          this.#responses.pendingHeadRequests.push(f.isHead);
          headStart = i;
          break;
        case "message_end":
          if (this.#discarding) {
            this.#refuse(PROBES_ONLY, "connection_limit", this.#started);
            return relayEnd;
          }
          headStart = i;
          break;
        case "error":
          // Fail closed: what the framer cannot read does not reach the server, and is answered once the
          // requests before it are. A head gone wrong is not relayed (only what an earlier read relayed of
          // it); a body gone wrong ends a request whose head was, and which the server will never finish.
          this.#refuse(
            FRAMING_REFUSALS[f.failure ?? "bad_request"],
            f.failure === "head_too_large" ? "head_too_large" : "unframeable",
            f.failedInHead ? this.#started : this.#started - 1,
          );
          if (this.#discarding) return relayEnd;
          return f.failedInHead ? headStart : i;
      }
    }
  }

  /** Answers a request the guard will not relay once the server has answered `after` of them, then closes. */
  #refuse(answer: Uint8Array, reason: RefusalReason, after: number): void {
    this.#ctx.refuse(reason);
    this.#refusal = answer;
    this.#refuseAfter = after;
    this.#headerDeadline = Infinity;
    this.#sendRefusalIfDue();
  }

  /** Sends the refusal if every response due before it has been relayed and nothing is being written. */
  #sendRefusalIfDue(): void {
    if (!this.#refusal || this.#refusalSent || this.#phase !== "open") return;
    if (this.#answered < this.#refuseAfter || this.#writing || this.#responses.inMessage) return;
    this.#refusalSent = true;
    // Nothing more is relayed from the server: what it would still send is for the refused request.
    closeQuietly(this.#upstream);
    this.#sendingRefusal = writeAll(this.client, this.#refusal).catch(() => {}).finally(() => {
      this.#sendingRefusal = undefined;
      this.#beginClose();
    });
  }

  #countHeads(buf: Uint8Array, n: number): number {
    if (this.#requests.opaque) return 0;
    let heads = 0;
    let i = 0;
    while (true) {
      i = this.#requests.advance(buf, i, n);
      if (this.#requests.event === "none" || this.#requests.event === "error") return heads;
      if (this.#requests.event === "head_start") heads++;
    }
  }

  async #serverToClient(upstream: Deno.TcpConn): Promise<void> {
    const buf = new Uint8Array(RESPONSE_BUFFER);
    const out = this.#out;
    try {
      while (true) {
        const n = await upstream.read(buf);
        if (n === null) break;
        this.#writing = true;
        if (this.#probing) await this.#probing;
        this.#lastActivity = performance.now();
        let verdict = CONTINUE;
        if (this.#responses.opaque) out.push(n === buf.length ? buf : buf.subarray(0, n));
        else verdict = this.#frameResponses(buf, n);
        if (verdict === UNFRAMEABLE) return this.#finish();
        // One write: pieces (a held-back head, a marked one) would otherwise go out as separate segments.
        const bytes = out.length === 1 ? out[0] : concat(out);
        out.length = 0;
        await writeAll(this.client, bytes);
        this.#writing = false;
        if (verdict === LAST) break;
        this.#sendRefusalIfDue();
      }
    } catch {
      // A reset from either side; closing below copes with both.
    }
    // The server closed, or the response that ends the connection has been relayed.
    this.#beginClose();
  }

  /**
   * Frames the responses in `buf[0..n)` and queues what to write in #out:
   * normally `buf` as it is. A head split across reads is held back until
   * whole, so that during a drain `Connection: close` can go into it.
   */
  #frameResponses(buf: Uint8Array, n: number): Verdict {
    const f = this.#responses;
    const out = this.#out;
    let from = 0;
    // Where the current head began in this buffer; -1 if in an earlier one (held back in f.head).
    let headStart = f.inHead ? -1 : 0;
    let i = 0;
    while (true) {
      i = f.advance(buf, i, n);
      switch (f.event) {
        case "none": {
          if (f.inHead && headStart < 0) return CONTINUE;
          const end = f.inHead ? headStart : n;
          if (end > from) out.push(buf.subarray(from, end));
          return CONTINUE;
        }
        case "head_start":
          headStart = i;
          break;
        case "head_end":
          if (f.final && (f.connectionClose || this.#endsWithThis())) {
            this.#closeAfterResponse = true;
            if (headStart > from) out.push(buf.subarray(from, headStart));
            out.push(f.connectionClose ? f.head.slice() : withConnectionClose(f.head));
            from = i;
          } else if (headStart < 0) {
            // Copied: a later head in this buffer reuses the framer's.
            out.push(f.head.slice());
            from = i;
          }
          break;
        case "message_end":
          this.#answered++;
          if (this.#refusal && !this.#refusalSent && this.#answered >= this.#refuseAfter) {
            // The refusal follows the last response due before it, in the same write.
            this.#refusalSent = true;
            if (i > from) out.push(buf.subarray(from, i));
            out.push(this.#refusal);
            return LAST;
          }
          if (this.#closeAfterResponse && this.#answered === this.#started) {
            if (i > from) out.push(buf.subarray(from, i));
            return LAST;
          }
          if (this.#draining && !this.#busy) this.#idleInDrain();
          break;
        case "error":
          // The server sent what HTTP/1.1 cannot frame; nothing sensible can be relayed.
          return UNFRAMEABLE;
      }
    }
  }

  /**
   * During a drain, or once the client has sent its FIN, the response to the last request relayed ends the
   * connection (unless another is arriving).
   */
  #endsWithThis(): boolean {
    return (this.#draining || this.#clientEnded) && this.#started - this.#answered === 1 &&
      !this.#requests.inHead;
  }

  drain(): void {
    this.#draining = true;
    if (this.#phase === "open" && !this.#busy) this.#idleInDrain();
  }

  #idleInDrain(): void {
    this.#drainIdleAt = performance.now() + DRAIN_IDLE_GRACE_MS;
    this.#arm(this.#drainIdleAt);
  }

  /** Ends the connection between requests: FIN to the client, then read until its FIN (bounded). */
  #beginClose(lingerMs = LINGER_MS): void {
    // A refusal being written: closing follows it (the server's side closing first must not cut it).
    if (this.#phase !== "open" || this.#sendingRefusal) return;
    this.#phase = "closing";
    clearTimeout(this.#probeTimer);
    this.#forget();
    closeQuietly(this.#upstream);
    if (this.#clientEnded) return this.#finish();
    this.client.closeWrite().catch(() => this.#finish());
    this.#lingerUntil = performance.now() + lingerMs;
    this.#arm(this.#lingerUntil);
  }

  /** Closes both sockets now; returns how many requests were on the connection. */
  cut(): number {
    const onIt = this.#started - this.#answered + (this.#requests.inHead ? 1 : 0);
    this.#finish();
    return Math.max(0, onIt);
  }

  #finish(): void {
    if (this.#phase === "closed") return;
    this.#phase = "closed";
    clearTimeout(this.#timer);
    clearTimeout(this.#probeTimer);
    this.#forget();
    closeQuietly(this.client);
    closeQuietly(this.#upstream);
  }

  /**
   * Removes the connection's row while its port is still ours: once the connection to the server closes,
   * another connection (anyone's, on loopback) may get the port, and the server must not take it for ours.
   */
  #forget(): void {
    if (this.#upstreamPort) this.#ctx.clients.delete(this.#upstreamPort);
    this.#upstreamPort = 0;
  }

  /** One timer per connection, re-armed only when a deadline earlier than the armed one appears. */
  #arm(at: number): void {
    if (at >= this.#timerAt || this.#phase === "closed") return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#check(), Math.max(0, at - performance.now()));
  }

  #check(): void {
    this.#timerAt = Infinity;
    if (this.#phase === "closed") return;
    const now = performance.now();
    const { headerTimeoutMs, idleTimeoutMs } = this.#ctx.options;
    if (this.#phase === "closing") {
      if (now >= this.#lingerUntil) return this.#finish();
      return this.#arm(this.#lingerUntil);
    }
    const waitingForHead = (this.#started === 0 && !this.#requests.opaque) || this.#requests.inHead;
    const headerDue = waitingForHead ? this.#headerDeadline : Infinity;
    const idleDue = this.#lastActivity + idleTimeoutMs;
    const drainDue = this.#draining && !this.#busy ? this.#drainIdleAt : Infinity;
    if (now >= headerDue) {
      this.#ctx.refuse("header_timeout");
      return this.#finish();
    }
    if (now >= idleDue) {
      this.#ctx.refuse("idle_timeout");
      return this.#finish();
    }
    if (now >= drainDue) return this.#beginClose(IDLE_LINGER_MS);
    this.#arm(Math.min(headerDue, idleDue, drainDue, now + Math.max(headerTimeoutMs, idleTimeoutMs)));
  }
}

export function guardConnections(options: ConnectionGuardOptions): ConnectionGuard {
  const { maxConnections, onRefused = () => {}, onOpenChange = () => {}, onAcceptError = () => {} } = options;
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  /** Each open connection, with its relay's run (settles once both directions have ended). */
  const relays = new Map<Relay, Promise<void>>();
  const ctx: RelayContext = {
    options,
    clients: options.clients ?? new ClientTable(),
    refuse(reason) {
      try {
        onRefused(reason);
      } catch { /* telemetry never breaks serving */ }
    },
  };
  const changed = () => {
    try {
      onOpenChange(relays.size);
    } catch { /* as above */ }
  };
  let late = 0;

  const perClientCap = options.maxConnectionsPerClient ?? 0;
  const proxies = new TrustedProxies(options.trustedProxies ?? []);
  const trusted = (address: string) => proxies.has(address);
  const probeReserve = options.probeReserve ?? 0;
  /** Open connections by client address, and how many of the open ones are in the probe reserve. */
  const perClient = new Map<string, number>();
  let probes = 0;
  const turnAway = (conn: Deno.Conn, reason: RefusalReason, answer: Uint8Array) => {
    ctx.refuse(reason);
    // The client's request may already be on its way: closing with it unread would send a reset that can
    // destroy the 503 before the client reads it. So FIN, then read (and discard) briefly.
    const timer = setTimeout(() => closeQuietly(conn), IDLE_LINGER_MS);
    (async () => {
      await writeAll(conn, answer);
      await conn.closeWrite();
      const buf = new Uint8Array(4096);
      while ((await conn.read(buf)) !== null) { /* discarded */ }
    })().catch(() => {}).finally(() => {
      clearTimeout(timer);
      closeQuietly(conn);
    });
  };
  let closing = false;
  const accepting = acceptLoop(listener, {
    closing: () => closing,
    onError: (reason, err) => onAcceptError(reason, err instanceof Error ? err.message : String(err)),
    onConnection(conn) {
      const address = (conn.remoteAddr as Deno.NetAddr).hostname;
      const fromClient = perClient.get(address) ?? 0;
      if (perClientCap > 0 && fromClient >= perClientCap && !trusted(address)) {
        return turnAway(conn, "client_limit", CLIENT_OVER_CAPACITY);
      }
      const full = relays.size - probes >= maxConnections;
      if (full && probes >= probeReserve) return turnAway(conn, "connection_limit", OVER_CAPACITY);
      const relay = new Relay(ctx, conn as Deno.TcpConn, full);
      perClient.set(address, fromClient + 1);
      if (full) probes++;
      relays.set(
        relay,
        relay.run().finally(() => {
          late += relay.late;
          relays.delete(relay);
          if (relay.probeOnly) probes--;
          const left = (perClient.get(address) ?? 1) - 1;
          if (left > 0) perClient.set(address, left);
          else perClient.delete(address);
          changed();
        }),
      );
      changed();
    },
  });
  // Only a listener closed by something else ends the loop: nothing can connect any more, which the
  // guard's thread must not survive quietly (guard_thread.ts reports it as a crash).
  accepting.catch((err) => {
    queueMicrotask(() => {
      throw err;
    });
  });

  return {
    addr: listener.addr as Deno.NetAddr,
    clientOf(upstreamPort) {
      return ctx.clients.get(upstreamPort);
    },
    clientGone(upstreamPort) {
      return ctx.clients.goneSignal(upstreamPort);
    },
    async drain(timeoutMs) {
      closing = true;
      try {
        listener.close();
      } catch { /* already closed */ }
      late = 0;
      for (const relay of relays.keys()) relay.drain();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        (async () => {
          while (relays.size > 0) await Promise.all(relays.values());
          return false;
        })(),
        new Promise<true>((r) => timer = setTimeout(() => r(true), timeoutMs)),
      ]);
      clearTimeout(timer);
      let cut = 0;
      for (const relay of relays.keys()) cut += relay.cut();
      await Promise.all(relays.values());
      return { timedOut, cut, late };
    },
  };
}
