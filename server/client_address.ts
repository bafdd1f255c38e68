/**
 * Who sent a request. The TCP peer is the client unless it is a proxy the
 * operator trusts (TRUSTED_PROXIES); only then is X-Forwarded-For or
 * Forwarded believed, read from the right: the client is the rightmost
 * address that is not itself a trusted proxy, since every hop to its left
 * was written by the untrusted client and can be forged.
 */
import { type Cidr, cidrContains, formatIp, parseCidr, parseIp } from "../core/ip_address.ts";

/** The client of a request as the access log and the server span record it. */
import type { ClientAddress } from "../core/connection.ts";
export type { ClientAddress };

/** The proxies whose forwarding headers are believed. */
export class TrustedProxies {
  readonly #ranges: Cidr[];

  /** @param ranges CIDRs as config.ts validated them. */
  constructor(ranges: ReadonlyArray<string>) {
    this.#ranges = ranges.map((r) => {
      const cidr = parseCidr(r);
      if (!cidr) throw new TypeError(`Not an IP address or CIDR range: ${r}`);
      return cidr;
    });
  }

  get empty(): boolean {
    return this.#ranges.length === 0;
  }

  has(address: string): boolean {
    const ip = parseIp(address);
    return ip !== undefined && this.#ranges.some((r) => cidrContains(r, ip));
  }
}

/** One hop of a forwarding header: an address and perhaps a port, or something else (`unknown`, `_hidden`). */
interface Hop {
  address: string;
  port?: number;
  valid: boolean;
}

function hop(text: string): Hop {
  let s = text.trim();
  if (s.startsWith('"') && s.endsWith('"') && s.length >= 2) s = s.slice(1, -1).replace(/\\(.)/g, "$1");
  let port: number | undefined;
  // [v6]:port, v4:port
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s);
  const v4port = /^([\d.]+):(\d{1,5})$/.exec(s);
  if (bracketed) [s, port] = [bracketed[1], bracketed[2] ? Number(bracketed[2]) : undefined];
  else if (v4port) [s, port] = [v4port[1], Number(v4port[2])];
  const ip = parseIp(s);
  if (!ip) return { address: s, valid: false };
  return { address: formatIp(ip), port: port !== undefined && port <= 65535 ? port : undefined, valid: true };
}

/** Splits on `sep` outside double quotes. */
function splitOutsideQuotes(s: string, sep: string): string[] {
  const out: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === "\\" && quoted) i++;
    else if (ch === '"') quoted = !quoted;
    else if (ch === sep && !quoted) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

/** The `for=` hops of a Forwarded header (RFC 7239), left to right. */
function forwardedHops(header: string): Hop[] {
  const hops: Hop[] = [];
  for (const element of splitOutsideQuotes(header, ",")) {
    for (const pair of splitOutsideQuotes(element, ";")) {
      const eq = pair.indexOf("=");
      if (eq > 0 && pair.slice(0, eq).trim().toLowerCase() === "for") hops.push(hop(pair.slice(eq + 1)));
    }
  }
  return hops;
}

/**
 * The client of a request from `peer`, the TCP connection's other end. The
 * forwarding header read is X-Forwarded-For when present, else Forwarded:
 * proxies that append to X-Forwarded-For (nginx, Envoy, cloud load balancers)
 * pass a client's own Forwarded header through untouched.
 */
export function clientAddress(peer: Deno.NetAddr, headers: Headers, trusted: TrustedProxies): ClientAddress {
  const direct = { address: formatPeer(peer.hostname), port: peer.port };
  if (trusted.empty || !trusted.has(peer.hostname)) return direct;
  const xff = headers.get("x-forwarded-for");
  const forwarded = xff === null ? headers.get("forwarded") : null;
  const hops = xff !== null ? xff.split(",").map(hop) : forwarded !== null ? forwardedHops(forwarded) : [];
  let client: ClientAddress = direct;
  for (let i = hops.length - 1; i >= 0; i--) {
    const h = hops[i];
    // A hop a trusted proxy could not name ends the walk at the last address it could vouch for.
    if (!h.valid) break;
    client = h.port === undefined ? { address: h.address } : { address: h.address, port: h.port };
    if (!trusted.has(h.address)) break;
  }
  return client;
}

function formatPeer(hostname: string): string {
  const ip = parseIp(hostname);
  return ip ? formatIp(ip) : hostname;
}
