/**
 * The public listener. Deno.serve has no header timeout, idle timeout or
 * connection cap (denoland/deno#3515): a client that opens connections and
 * never sends holds them forever. So the public port is a plain TCP listener
 * that enforces those three limits and relays bytes to the HTTP server, which
 * listens on loopback only. A relay on loopback costs about a tenth of a
 * millisecond per request against ~50 ms of inference.
 */

export type RefusalReason = "connection_limit" | "header_timeout" | "idle_timeout";

export interface ConnectionGuardOptions {
  hostname: string;
  port: number;
  /** Where the HTTP server listens (loopback). */
  upstream: { hostname: string; port: number };
  /** Open client connections; past this, new ones get a 503 and are closed. */
  maxConnections?: number;
  /** A new connection must send its first request's headers within this. */
  headerTimeoutMs?: number;
  /** A connection with no bytes either way for this long is closed. */
  idleTimeoutMs?: number;
  /** Called for each connection refused or closed by a limit (metrics, logs). Must not throw. */
  onRefused?: (reason: RefusalReason) => void;
  /** Called with the number of open client connections whenever it changes. */
  onOpenChange?: (open: number) => void;
}

export interface ConnectionGuard {
  readonly addr: Deno.NetAddr;
  /** Open client connections now. */
  readonly open: number;
  /** Stops accepting; open connections keep being relayed. */
  stopAccepting(): void;
  /** Closes every connection still open. */
  closeAll(): void;
  /** Resolves when the accept loop has ended. */
  readonly finished: Promise<void>;
}

const CHUNK = 16 * 1024;
const OVER_CAPACITY_BODY = JSON.stringify({
  type: "about:blank",
  title: "Server overloaded",
  status: 503,
  code: "overloaded",
  detail: "The server has reached its connection limit; retry shortly",
});
const OVER_CAPACITY = new TextEncoder().encode(
  "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n" +
    `connection: close\r\ncontent-length: ${OVER_CAPACITY_BODY.length}\r\n\r\n${OVER_CAPACITY_BODY}`,
);
const HEADER_END = [13, 10, 13, 10];

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.byteLength) written += await conn.write(bytes.subarray(written));
}

export function guardConnections(options: ConnectionGuardOptions): ConnectionGuard {
  const {
    maxConnections = 1024,
    headerTimeoutMs = 10_000,
    idleTimeoutMs = 60_000,
    onRefused = () => {},
    onOpenChange = () => {},
  } = options;
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const open = new Set<Deno.Conn>();
  const refuse = (reason: RefusalReason) => {
    try {
      onRefused(reason);
    } catch { /* telemetry never breaks serving */ }
  };
  const changed = () => {
    try {
      onOpenChange(open.size);
    } catch { /* as above */ }
  };

  async function relay(client: Deno.TcpConn): Promise<void> {
    let upstream: Deno.TcpConn | undefined;
    let closed = false;
    let headerTimer: ReturnType<typeof setTimeout> | undefined;
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    const close = () => {
      if (closed) return;
      closed = true;
      clearTimeout(headerTimer);
      clearTimeout(idleTimer);
      try {
        client.close();
      } catch { /* already closed */ }
      try {
        upstream?.close();
      } catch { /* already closed */ }
    };
    const expire = (reason: RefusalReason) => () => {
      if (closed) return;
      refuse(reason);
      close();
    };
    const touch = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(expire("idle_timeout"), idleTimeoutMs);
    };
    headerTimer = setTimeout(expire("header_timeout"), headerTimeoutMs);
    touch();
    try {
      client.setNoDelay(true);
      upstream = await Deno.connect({ ...options.upstream, transport: "tcp" });
      upstream.setNoDelay(true);
      const to = upstream;
      // Client to server: watches for the end of the first request's headers.
      const up = (async () => {
        const buf = new Uint8Array(CHUNK);
        let matched = 0;
        while (!closed) {
          const n = await client.read(buf);
          if (n === null) break;
          touch();
          if (headerTimer !== undefined) {
            for (let i = 0; i < n; i++) {
              matched = buf[i] === HEADER_END[matched] ? matched + 1 : buf[i] === 13 ? 1 : 0;
              if (matched === 4) {
                clearTimeout(headerTimer);
                headerTimer = undefined;
                break;
              }
            }
          }
          await writeAll(to, buf.subarray(0, n));
        }
        await to.closeWrite().catch(() => {});
      })().catch(close);
      const down = (async () => {
        const buf = new Uint8Array(CHUNK);
        while (!closed) {
          const n = await to.read(buf);
          if (n === null) break;
          touch();
          await writeAll(client, buf.subarray(0, n));
        }
      })().catch(close);
      // The server ends the exchange: when it closes, the client's connection goes too.
      await Promise.race([down, up.then(() => down)]);
    } catch {
      // Resets and reads after close are how connections end; nothing to report.
    } finally {
      close();
    }
  }

  const finished = (async () => {
    try {
      for await (const conn of listener) {
        if (open.size >= maxConnections) {
          refuse("connection_limit");
          writeAll(conn, OVER_CAPACITY).catch(() => {}).finally(() => {
            try {
              conn.close();
            } catch { /* already closed */ }
          });
          continue;
        }
        open.add(conn);
        changed();
        relay(conn as Deno.TcpConn).finally(() => {
          open.delete(conn);
          changed();
        });
      }
    } catch {
      // The listener was closed.
    }
  })();

  return {
    addr: listener.addr as Deno.NetAddr,
    get open() {
      return open.size;
    },
    stopAccepting() {
      try {
        listener.close();
      } catch { /* already closed */ }
    },
    closeAll() {
      for (const conn of open) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
    },
    finished,
  };
}
