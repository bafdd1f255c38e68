/**
 * The client behind each of the guard's connections to the HTTP server, by
 * that connection's local port, in memory the guard's thread and the main
 * thread share. The guard writes a row before it relays the connection's first
 * byte; the server reads it when a request arrives on that connection. No
 * message is exchanged per connection, so there is nothing to wait for.
 */
import { formatIp, parseIp } from "./client_address.ts";

/** A row: [family (0 = empty, 4 or 6), port, address as four 32-bit words]. */
const WORDS = 6;
const PORTS = 65536;

export class ClientTable {
  readonly buffer: SharedArrayBuffer;
  readonly #words: Int32Array;

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

  delete(port: number): void {
    Atomics.store(this.#words, port * WORDS, 0);
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
