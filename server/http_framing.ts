/**
 * Where HTTP/1.1 messages begin and end in a byte stream (RFC 9112 framing),
 * without buffering bodies. The connection guard relays bytes as they come; to
 * drain without losing answers it must know whether a request is on a
 * connection and when its response has been forwarded in full. Bodies are
 * skipped by count (Content-Length) or by chunk sizes (chunked); only heads
 * are copied, into one buffer per direction that is reused.
 */

/** What {@link Http1Framer.advance} stopped at. */
export type FramerEvent = "none" | "head_start" | "head_end" | "message_end" | "error";

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;
const SEMICOLON = 59;
const COMMA = 44;
const DEL = 127;

// States of the framer.
const IDLE = 0;
const HEAD = 1;
const LENGTH = 2;
const CHUNK_SIZE = 3;
const CHUNK_EXT = 4;
const CHUNK_DATA = 5;
const CHUNK_DATA_END = 6;
const TRAILER = 7;
const END = 8;
const UNTIL_CLOSE = 9;
const OPAQUE = 10;

/**
 * The most a request head may take, its blank line included; past it the guard answers 431. Deno's server
 * (hyper) refuses a head of a few bytes more than 64 KiB with a bare 400, so nothing it accepts is refused.
 */
export const MAX_HEAD_BYTES = 64 * 1024;
/** A chunk-size line's extensions, and a chunked body's trailer section: hyper's limits are of this order. */
const MAX_CHUNK_EXT_BYTES = 16 * 1024;
const MAX_TRAILER_BYTES = 64 * 1024;
/** 2^63 - 1: the largest length or chunk size accepted (RFC 9110 puts no bound; hyper reads u64). */
const MAX_LENGTH = 2n ** 63n - 1n;

/** Why a request cannot be framed; the guard answers it with {@link FRAMING_ANSWERS}' status, then closes. */
export type FramingError = "bad_request" | "head_too_large" | "http_version" | "connect";

/** The answer to each framing error: the problem's code (routes/problem.ts) and its detail. */
export const FRAMING_ANSWERS = {
  bad_request: { code: "bad_request", status: 400, detail: "The request is not valid HTTP/1.1" },
  head_too_large: {
    code: "request_head_too_large",
    status: 431,
    detail: `The request line and headers exceed ${MAX_HEAD_BYTES / 1024} KiB`,
  },
  http_version: {
    code: "http_version_not_supported",
    status: 505,
    detail: "Only HTTP/1.0 and HTTP/1.1 are served on this port",
  },
  connect: {
    code: "bad_request",
    status: 400,
    detail: "CONNECT is not served: this is an origin server, not a proxy",
  },
} as const satisfies Record<FramingError, { code: string; status: number; detail: string }>;

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const CONTENT_LENGTH = ascii("content-length");
const TRANSFER_ENCODING = ascii("transfer-encoding");
const CONNECTION = ascii("connection");
const CHUNKED = ascii("chunked");
const CLOSE = ascii("close");
const KEEP_ALIVE = ascii("keep-alive");
/** Methods and the protocol name are case-sensitive. */
const CONNECT = ascii("CONNECT");
const HTTP_SLASH = ascii("HTTP/");

/**
 * Incremental framer for one direction of one connection. Call
 * {@link advance} on each chunk until it reports `"none"`.
 */
export class Http1Framer {
  /** The event the last {@link advance} stopped at. */
  event: FramerEvent = "none";
  /** Of the last head: its request method is HEAD (requests). */
  isHead = false;
  /** Of the last head: its status code (responses). */
  status = 0;
  /** Of the last head: whether it is a final response (not 1xx). Always true for requests. */
  final = true;
  /** Of the last head: whether it asked for the connection to close. */
  connectionClose = false;
  /** Of the last head: its HTTP minor version (0 for HTTP/1.0). */
  minorVersion = 1;
  /**
   * Responses only: for each request forwarded and not yet answered, whether it was a HEAD
   * request (its response has no body). The guard pushes as request heads pass.
   */
  readonly pendingHeadRequests: boolean[] = [];
  /** After an `error` event: why (requests; a response's error is always `bad_request`). */
  failure: FramingError | undefined;
  /** After an `error` event: whether it was in a head (else in a chunked body). */
  failedInHead = false;

  #state = IDLE;
  #head = new Uint8Array(1024);
  #headLength = 0;
  #lineLength = 0;
  #remaining = 0;
  #sizeDigits = 0;
  #significant = 0;
  #firstDigit = 0;
  #extBytes = 0;
  /** In chunked framing: the last byte was a CR, so only an LF may follow. */
  #cr = false;
  #targetStart = 0;
  #targetEnd = 0;
  #contentLength = -1;
  /** The Content-Length as sent, without leading zeros: a repeated field must say the same. */
  #contentLengthDigits = "";
  #chunked = false;
  #chunkedCount = 0;
  #transferEncoding = false;

  constructor(readonly role: "request" | "response") {}

  /** Whether a message has started and not ended. */
  get inMessage(): boolean {
    return this.#state !== IDLE && this.#state !== OPAQUE;
  }

  /** Whether the head of a message has started and not ended. */
  get inHead(): boolean {
    return this.#state === HEAD;
  }

  /** Whether framing was lost (malformed message, upgrade): bytes are passed through uninterpreted. */
  get opaque(): boolean {
    return this.#state === OPAQUE;
  }

  /** Of the last request head: its target's path (the query left out), as sent. */
  get path(): string {
    let end = this.#targetStart;
    while (end < this.#targetEnd && this.#head[end] !== 63) end++; // "?"
    return new TextDecoder("latin1").decode(this.#head.subarray(this.#targetStart, end));
  }

  /** The head as received, valid after `head_end` until the next message starts. */
  get head(): Uint8Array {
    return this.#head.subarray(0, this.#headLength);
  }

  /**
   * Reads `buf[from..to)` until an event; returns the index just after it (the
   * first byte of the head for `head_start`). With event `"none"`, all was read.
   */
  advance(buf: Uint8Array, from: number, to: number): number {
    this.event = "none";
    let i = from;
    while (i < to || this.#state === END) {
      switch (this.#state) {
        case IDLE: {
          const b = buf[i];
          // Empty lines before a message are ignored (RFC 9112 §2.2).
          if (b === CR || b === LF) {
            i++;
            break;
          }
          this.#state = HEAD;
          this.#headLength = 0;
          this.#lineLength = 0;
          this.event = "head_start";
          return i;
        }
        case HEAD: {
          let line = this.#lineLength;
          let end = -1;
          for (let j = i; j < to; j++) {
            const b = buf[j];
            if (b === LF) {
              if (line === 0) {
                end = j + 1;
                break;
              }
              line = 0;
            } else if (b !== CR) line++;
          }
          const stop = end < 0 ? to : end;
          if (!this.#keepHead(buf, i, stop)) return this.#fail(stop, "head_too_large");
          this.#lineLength = line;
          i = stop;
          if (end < 0) break;
          const why = this.#parseHead();
          if (why) return this.#fail(i, why);
          this.event = "head_end";
          return i;
        }
        case LENGTH: {
          const take = Math.min(this.#remaining, to - i);
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#state = END;
          break;
        }
        // Chunked framing's lines end in CRLF, never a bare LF (RFC 9112 §7.1; hyper refuses one): a CR is
        // only valid right before the LF.
        case CHUNK_SIZE: {
          const b = buf[i++];
          if (this.#cr && b !== LF) return this.#fail(i);
          const digit = hexValue(b);
          if (digit >= 0) {
            // Leading zeros are allowed in any number; at most 2^63 - 1 (16 significant digits, the first
            // at most 7). Past 2^53 the count is approximate, which only matters to a body of petabytes.
            if (++this.#sizeDigits > MAX_CHUNK_EXT_BYTES) return this.#fail(i);
            if (this.#significant === 0 && digit === 0) break;
            if (++this.#significant === 1) this.#firstDigit = digit;
            if (this.#significant > 16 || (this.#significant === 16 && this.#firstDigit > 7)) {
              return this.#fail(i);
            }
            this.#remaining = this.#remaining * 16 + digit;
          } else if (b === LF) {
            if (this.#sizeDigits === 0 || !this.#cr) return this.#fail(i);
            this.#endSizeLine();
          } else if (b === CR) {
            if (this.#sizeDigits === 0) return this.#fail(i);
            this.#cr = true;
          } else if (b === SEMICOLON || b === SP || b === HTAB) {
            if (this.#sizeDigits === 0) return this.#fail(i);
            this.#state = CHUNK_EXT;
          } else return this.#fail(i);
          break;
        }
        case CHUNK_EXT: {
          const lf = buf.indexOf(LF, i);
          const stop = lf < 0 || lf >= to ? to : lf;
          this.#extBytes += stop - i;
          if (this.#extBytes > MAX_CHUNK_EXT_BYTES) return this.#fail(stop);
          if (stop > i) this.#cr = buf[stop - 1] === CR;
          if (stop === to) {
            i = to;
            break;
          }
          if (!this.#cr) return this.#fail(lf + 1);
          i = lf + 1;
          this.#endSizeLine();
          break;
        }
        case CHUNK_DATA: {
          const take = Math.min(this.#remaining, to - i);
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) {
            this.#state = CHUNK_DATA_END;
            this.#cr = false;
          }
          break;
        }
        case CHUNK_DATA_END: {
          const b = buf[i++];
          if (!this.#cr && b === CR) this.#cr = true;
          else if (this.#cr && b === LF) this.#startChunkSize();
          else return this.#fail(i);
          break;
        }
        case TRAILER: {
          const b = buf[i++];
          if (++this.#extBytes > MAX_TRAILER_BYTES) return this.#fail(i);
          if (b === LF) {
            if (!this.#cr) return this.#fail(i);
            this.#cr = false;
            if (this.#lineLength === 0) this.#state = END;
            this.#lineLength = 0;
          } else if (this.#cr) return this.#fail(i);
          else if (b === CR) this.#cr = true;
          else this.#lineLength++;
          break;
        }
        case END:
          this.#state = IDLE;
          this.event = "message_end";
          return i;
        case UNTIL_CLOSE:
        case OPAQUE:
          return to;
      }
    }
    return i;
  }

  #fail(at: number, why: FramingError = "bad_request"): number {
    this.failedInHead = this.#state === HEAD;
    this.#state = OPAQUE;
    this.event = "error";
    this.failure = why;
    return at;
  }

  #startChunkSize(): void {
    this.#state = CHUNK_SIZE;
    this.#cr = false;
    this.#sizeDigits = 0;
    this.#significant = 0;
    this.#remaining = 0;
    this.#extBytes = 0;
  }

  #endSizeLine(): void {
    this.#extBytes = 0;
    this.#cr = false;
    if (this.#remaining === 0) {
      this.#state = TRAILER;
      this.#lineLength = 0;
    } else this.#state = CHUNK_DATA;
  }

  #keepHead(buf: Uint8Array, from: number, to: number): boolean {
    const needed = this.#headLength + (to - from);
    if (needed > MAX_HEAD_BYTES) return false;
    if (needed > this.#head.length) {
      const grown = new Uint8Array(Math.min(MAX_HEAD_BYTES, Math.max(needed, this.#head.length * 2)));
      grown.set(this.#head.subarray(0, this.#headLength));
      this.#head = grown;
    }
    this.#head.set(buf.subarray(from, to), this.#headLength);
    this.#headLength = needed;
    return true;
  }

  /**
   * Parses the start line and the framing headers; sets the body state. Returns why the head cannot be
   * framed, or undefined. Requests are held to RFC 9112's grammar (what the guard cannot frame, it refuses);
   * responses come from the gateway's own server and are read leniently. Every byte is read once, and no
   * header becomes a string: a value may be as long as the head.
   */
  #parseHead(): FramingError | undefined {
    const h = this.#head;
    const n = this.#headLength;
    const strict = this.role === "request";
    let lineEnd = h.indexOf(LF);
    if (lineEnd < 0 || lineEnd >= n) return "bad_request";
    const bad = this.#parseStartLine(h, trimCr(h, 0, lineEnd));
    if (bad) return bad;
    this.#contentLength = -1;
    this.#contentLengthDigits = "";
    this.#chunked = false;
    this.#chunkedCount = 0;
    this.#transferEncoding = false;
    let close = false;
    let keepAlive = false;
    let start = lineEnd + 1;
    while (start < n) {
      lineEnd = h.indexOf(LF, start);
      if (lineEnd < 0 || lineEnd >= n) lineEnd = n;
      const end = trimCr(h, start, lineEnd);
      const line = start;
      start = lineEnd + 1;
      if (end === line) continue; // the blank line that ends the head
      // The field name: a token right before the colon. A line starting with whitespace is obsolete line
      // folding, refused as RFC 9112 §5.2 allows; whitespace before the colon must be refused (§5.1).
      let colon = line;
      while (colon < end && TCHAR[h[colon]]) colon++;
      if (colon === line || colon === end || h[colon] !== COLON) {
        if (strict) return "bad_request";
        continue;
      }
      // The value: no control characters but HTAB (a bare CR or NUL is refused, as hyper refuses them).
      if (strict) {
        for (let j = colon + 1; j < end; j++) {
          const b = h[j];
          if ((b < SP && b !== HTAB) || b === DEL) return "bad_request";
        }
      }
      if (nameIs(h, line, colon, CONTENT_LENGTH)) {
        if (!this.#contentLengthValue(h, colon + 1, end)) return "bad_request";
      } else if (nameIs(h, line, colon, TRANSFER_ENCODING)) {
        this.#transferEncoding = true;
        // Only the final coding decides the framing (RFC 9112 §6.3); chunked may be applied once.
        forEachElement(h, colon + 1, end, (s, e) => {
          this.#chunked = nameIs(h, s, e, CHUNKED);
          if (this.#chunked) this.#chunkedCount++;
        });
      } else if (nameIs(h, line, colon, CONNECTION)) {
        forEachElement(h, colon + 1, end, (s, e) => {
          if (nameIs(h, s, e, CLOSE)) close = true;
          else if (nameIs(h, s, e, KEEP_ALIVE)) keepAlive = true;
        });
      }
    }
    // HTTP/1.0 closes unless asked not to; HTTP/1.1 keeps alive unless asked to close.
    this.connectionClose = close || (this.minorVersion === 0 && !keepAlive);
    return this.#bodyState() ? undefined : "bad_request";
  }

  /** `method SP target SP HTTP/1.x` for requests, `HTTP/1.x NNN reason` for responses. */
  #parseStartLine(h: Uint8Array, end: number): FramingError | undefined {
    if (this.role === "request") {
      let sp = 0;
      while (sp < end && TCHAR[h[sp]]) sp++;
      if (sp === 0 || sp >= end || h[sp] !== SP) return "bad_request";
      // "HEAD": its response has a Content-Length but no body.
      this.isHead = sp === 4 && h[0] === 72 && h[1] === 69 && h[2] === 65 && h[3] === 68;
      const isConnect = sp === 7 && bytesAre(h, 0, CONNECT);
      let target = sp + 1;
      while (target < end && h[target] > SP && h[target] !== DEL) target++;
      if (target === sp + 1 || target >= end || h[target] !== SP) return "bad_request";
      this.#targetStart = sp + 1;
      this.#targetEnd = target;
      // The version: exactly HTTP/d.d; one this server does not speak is a 505 (the HTTP/2 preface is
      // `PRI * HTTP/2.0`).
      const v = target + 1;
      if (
        end - v !== 8 || !bytesAre(h, v, HTTP_SLASH) || !isDigit(h[v + 5]) ||
        h[v + 6] !== 46 || !isDigit(h[v + 7])
      ) return "bad_request";
      if (h[v + 5] !== 49 || (h[v + 7] !== 48 && h[v + 7] !== 49)) return "http_version";
      if (isConnect) return "connect";
      this.final = true;
      this.minorVersion = h[v + 7] - 48;
      return undefined;
    }
    // "HTTP/1.x NNN ..."
    if (end < 12 || h[0] !== 72 || h[4] !== 47 || h[8] !== SP) return "bad_request";
    this.minorVersion = h[7] - 48;
    const status = (h[9] - 48) * 100 + (h[10] - 48) * 10 + (h[11] - 48);
    if (!(status >= 100 && status <= 999)) return "bad_request";
    this.status = status;
    this.final = status >= 200 || status === 101;
    return undefined;
  }

  /**
   * One Content-Length field: digits only, any number of leading zeros, at most 2^63 - 1. A list, or a
   * second field with another value, is refused (the classic smuggling vector; hyper refuses both).
   */
  #contentLengthValue(h: Uint8Array, start: number, end: number): boolean {
    let i = start;
    while (i < end && (h[i] === SP || h[i] === HTAB)) i++;
    const first = i;
    while (i < end && isDigit(h[i])) i++;
    const last = i;
    while (i < end && (h[i] === SP || h[i] === HTAB)) i++;
    if (i !== end || last === first) return false;
    let s = first;
    while (s < last - 1 && h[s] === 48) s++;
    if (last - s > 19) return false;
    let digits = "";
    for (let j = s; j < last; j++) digits += String.fromCharCode(h[j]);
    if (digits.length === 19 && BigInt(digits) > MAX_LENGTH) return false;
    if (this.#contentLength >= 0 && this.#contentLengthDigits !== digits) return false;
    this.#contentLengthDigits = digits;
    // Exact up to 2^53; past it, a body that could never be sent anyway.
    this.#contentLength = Number(digits);
    return true;
  }

  /** RFC 9112 §6.3, in the order it gives. */
  #bodyState(): boolean {
    this.#remaining = 0;
    if (this.role === "response") {
      if (this.status === 101) {
        // Switching protocols: what follows is not HTTP.
        this.#state = OPAQUE;
        return true;
      }
      if (!this.final) {
        this.#state = IDLE;
        return true;
      }
      const toHead = this.pendingHeadRequests.shift() ?? false;
      if (toHead || this.status === 204 || this.status === 304) this.#state = END;
      else if (this.#transferEncoding && this.#chunked) this.#startChunkSize();
      else if (this.#transferEncoding) this.#state = UNTIL_CLOSE;
      else if (this.#contentLength >= 0) this.#state = this.#contentLength === 0 ? END : LENGTH;
      else this.#state = UNTIL_CLOSE;
    } else {
      if (this.#transferEncoding) {
        // A request whose final coding is not chunked cannot be framed; nor one that also has a
        // Content-Length (which one the next hop believes is the smuggling question), nor an HTTP/1.0 one
        // (RFC 9112 §6.1); hyper refuses all three.
        if (
          !this.#chunked || this.#chunkedCount !== 1 || this.#contentLength >= 0 || this.minorVersion === 0
        ) {
          return false;
        }
        this.#startChunkSize();
      } else if (this.#contentLength > 0) this.#state = LENGTH;
      else this.#state = END;
    }
    if (this.#state === LENGTH) this.#remaining = this.#contentLength;
    return true;
  }
}

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  if (b >= 97 && b <= 102) return b - 87;
  if (b >= 65 && b <= 70) return b - 55;
  return -1;
}

function trimCr(h: Uint8Array, start: number, end: number): number {
  return end > start && h[end - 1] === CR ? end - 1 : end;
}

/** Calls `f` with each element of the comma-separated list in `h[start..end)`, trimmed; empty ones skipped. */
function forEachElement(h: Uint8Array, start: number, end: number, f: (s: number, e: number) => void): void {
  let i = start;
  while (i <= end) {
    let s = i;
    while (s < end && h[s] !== COMMA && (h[s] === SP || h[s] === HTAB)) s++;
    let e = s;
    while (e < end && h[e] !== COMMA) e++;
    i = e + 1;
    while (e > s && (h[e - 1] === SP || h[e - 1] === HTAB)) e--;
    if (e > s) f(s, e);
  }
}

/** Whether `h` holds exactly `bytes` at `start`. */
function bytesAre(h: Uint8Array, start: number, bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (h[start + i] !== bytes[i]) return false;
  return true;
}

const isDigit = (b: number) => b >= 48 && b <= 57;

/** RFC 9110 tchar, by byte. */
const TCHAR = (() => {
  const t = new Uint8Array(256);
  for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
    t[c.charCodeAt(0)] = 1;
  }
  return t;
})();

function nameIs(h: Uint8Array, start: number, end: number, lowerName: Uint8Array): boolean {
  if (end - start !== lowerName.length) return false;
  for (let i = 0; i < lowerName.length; i++) if ((h[start + i] | 0x20) !== lowerName[i]) return false;
  return true;
}

/**
 * The head with `connection: close` in place of any Connection header: a
 * response that tells its client this connection ends after it.
 */
export function withConnectionClose(head: Uint8Array): Uint8Array {
  const out = new Uint8Array(head.length + 19);
  let o = 0;
  let start = 0;
  let first = true;
  while (start < head.length) {
    let lineEnd = head.indexOf(LF, start);
    lineEnd = lineEnd < 0 ? head.length : lineEnd + 1;
    const colon = head.indexOf(COLON, start);
    const isConnection = !first && colon > start && colon < lineEnd && nameIs(head, start, colon, CONNECTION);
    const isLast = lineEnd === head.length && trimCr(head, start, lineEnd - 1) === start;
    if (isLast) {
      // The empty line ending the head: add ours just before it.
      out.set(CONNECTION_CLOSE_LINE, o);
      o += CONNECTION_CLOSE_LINE.length;
    }
    if (!isConnection) {
      out.set(head.subarray(start, lineEnd), o);
      o += lineEnd - start;
    }
    first = false;
    start = lineEnd;
  }
  return out.subarray(0, o);
}

const CONNECTION_CLOSE_LINE = ascii("connection: close\r\n");
