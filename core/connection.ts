/**
 * What the server tells the app about a request's connection. Here, beneath
 * both, so server/ (which produces it) and routes/ (which reads it) import it
 * downward and neither imports the other.
 */

/** A client as far as it can be named: an address, and a port where one is known. */
export interface ClientAddress {
  address: string;
  /** Known for the TCP peer, and for a forwarded hop that carries one (`Forwarded: for="[::1]:4711"`). */
  port?: number;
}

export interface ConnectionInfo {
  /** The other end of the client's TCP connection, as the guard saw it. */
  remoteAddr: Deno.NetAddr;
  /** The client: that peer, or the one a trusted proxy's forwarding header names. */
  client: ClientAddress;
  /**
   * Aborts when the client leaves before its answer, so its queued work is dropped. From the guard:
   * never request.signal, which Deno 2.9 also aborts after every answer (printing a notice when it is
   * read) and which misses a client that leaves after sending a photo-sized body.
   */
  clientGone?: AbortSignal;
}
