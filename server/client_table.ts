/**
 * The client behind each of the guard's connections to the HTTP server, by
 * that connection's local port, in memory the guard's thread and the main
 * thread share. The guard writes a row before it relays the connection's first
 * byte; the server reads it when a request arrives on that connection. No
 * message is exchanged per connection, so there is nothing to wait for.
 *
 * The guard also marks there when a connection's client has left (closed or
 * reset its side): the server learns it by Atomics.waitAsync, since
 * Deno.serve does not notice a client that leaves after sending a body of
 * more than a few KiB until it writes the answer.
 */
import { formatIp, parseIp } from "../core/ip_address.ts";

/** A row: [family (0 = empty, 4 or 6), port, address as four 32-bit words, connection serial, gone]. */
const WORDS = 8;
const SERIAL = 6;
const GONE = 7;
const PORTS = 65536;

export class ClientTable {
  readonly buffer: SharedArrayBuffer;
  readonly #words: Int32Array;
  /** This thread's signal for each connection someone asked about, by port. */
  readonly #gone = new Map<number, { serial: number; signal: AbortSignal }>();

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(PORTS * WORDS * 4)) {
    this.buffer = buffer;
    this.#words = new Int32Array(buffer);
  }

  /** Records `client` for the connection whose local port is `port`. */
  set(port: number, client: Deno.NetAddr): void {
    const ip = parseIp(client.hostname);
    if (!ip) return;
    const row = port * WORDS;
    const w = this.#words;
    Atomics.store(w, row, 0);
    Atomics.store(w, row + GONE, 0);
    Atomics.add(w, row + SERIAL, 1);
    Atomics.store(w, row + 1, client.port);
    for (let i = 0; i < 4; i++) {
      const o = i * 4;
      Atomics.store(
        w,
        row + 2 + i,
        o < ip.length ? (ip[o] << 24) | (ip[o + 1] << 16) | (ip[o + 2] << 8) | ip[o + 3] : 0,
      );
    }
    // Written last: a reader that sees the family sees the rest.
    Atomics.store(w, row, ip.length === 4 ? 4 : 6);
  }

  /** The connection has ended: forgotten, and marked gone for whoever waits on it. */
  delete(port: number): void {
    Atomics.store(this.#words, port * WORDS, 0);
    this.markGone(port);
  }

  /** The client of the connection on `port` has left: wakes the waiters of {@link goneSignal}. */
  markGone(port: number): void {
    const at = port * WORDS + GONE;
    if (Atomics.exchange(this.#words, at, 1) === 0) Atomics.notify(this.#words, at);
  }

  /**
   * Aborts when the client of the connection now on `port` leaves; undefined
   * when no connection is recorded there. One waiter per connection, shared by
   * the requests that arrive on it.
   */
  goneSignal(port: number): AbortSignal | undefined {
    if (!(port >= 0 && port < PORTS)) return undefined;
    const row = port * WORDS;
    const w = this.#words;
    if (Atomics.load(w, row) === 0) return undefined;
    const serial = Atomics.load(w, row + SERIAL);
    const known = this.#gone.get(port);
    if (known?.serial === serial) return known.signal;
    const controller = new AbortController();
    this.#gone.set(port, { serial, signal: controller.signal });
    const gone = () => {
      controller.abort();
      if (this.#gone.get(port)?.serial === serial) this.#gone.delete(port);
    };
    const wait = Atomics.waitAsync(w, row + GONE, 0);
    // Gone already, or the port has moved on to another connection since the serial was read.
    if (!wait.async || Atomics.load(w, row + SERIAL) !== serial) gone();
    else wait.value.then(gone);
    return controller.signal;
  }

  get(port: number): Deno.NetAddr | undefined {
    if (!(port >= 0 && port < PORTS)) return undefined;
    const row = port * WORDS;
    const w = this.#words;
    const family = Atomics.load(w, row);
    if (family === 0) return undefined;
    const ip = new Uint8Array(family === 4 ? 4 : 16);
    for (let i = 0; i < ip.length / 4; i++) {
      const v = Atomics.load(w, row + 2 + i);
      ip.set([(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff], i * 4);
    }
    return { transport: "tcp", hostname: formatIp(ip), port: Atomics.load(w, row + 1) };
  }
}
