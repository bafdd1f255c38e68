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

/** Larger than hyper's own limit (~400 KiB), so the server refuses a big head before the guard would. */
const MAX_HEAD_BYTES = 512 * 1024;

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const CONTENT_LENGTH = ascii("content-length");
const TRANSFER_ENCODING = ascii("transfer-encoding");
const CONNECTION = ascii("connection");

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

  #state = IDLE;
  #head = new Uint8Array(1024);
  #headLength = 0;
  #lineLength = 0;
  #remaining = 0;
  #sizeDigits = 0;
  #contentLength = -1;
  #chunked = false;
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
          if (!this.#keepHead(buf, i, stop)) return this.#fail(stop);
          this.#lineLength = line;
          i = stop;
          if (end < 0) break;
          if (!this.#parseHead()) return this.#fail(i);
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
        case CHUNK_SIZE: {
          const b = buf[i++];
          const digit = hexValue(b);
          if (digit >= 0) {
            if (++this.#sizeDigits > 13) return this.#fail(i);
            this.#remaining = this.#remaining * 16 + digit;
          } else if (b === LF) {
            if (this.#sizeDigits === 0) return this.#fail(i);
            this.#endSizeLine();
          } else if (b === SEMICOLON || b === SP || b === HTAB) {
            if (this.#sizeDigits === 0) return this.#fail(i);
            this.#state = CHUNK_EXT;
          } else if (b !== CR) return this.#fail(i);
          break;
        }
        case CHUNK_EXT: {
          const lf = buf.indexOf(LF, i);
          if (lf < 0 || lf >= to) {
            i = to;
            break;
          }
          i = lf + 1;
          this.#endSizeLine();
          break;
        }
        case CHUNK_DATA: {
          const take = Math.min(this.#remaining, to - i);
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#state = CHUNK_DATA_END;
          break;
        }
        case CHUNK_DATA_END: {
          const b = buf[i++];
          if (b === LF) {
            this.#state = CHUNK_SIZE;
            this.#sizeDigits = 0;
            this.#remaining = 0;
          } else if (b !== CR) return this.#fail(i);
          break;
        }
        case TRAILER: {
          const b = buf[i++];
          if (b === LF) {
            if (this.#lineLength === 0) this.#state = END;
            this.#lineLength = 0;
          } else if (b !== CR) this.#lineLength++;
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

  #fail(at: number): number {
    this.#state = OPAQUE;
    this.event = "error";
    return at;
  }

  #endSizeLine(): void {
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

  /** Parses the start line and the framing headers; sets the body state. False if malformed. */
  #parseHead(): boolean {
    const h = this.#head;
    const n = this.#headLength;
    let lineEnd = h.indexOf(LF);
    if (lineEnd < 0 || lineEnd >= n) return false;
    if (!this.#parseStartLine(h, trimCr(h, 0, lineEnd))) return false;
    this.#contentLength = -1;
    this.#chunked = false;
    this.#transferEncoding = false;
    let close = false;
    let keepAlive = false;
    let start = lineEnd + 1;
    while (start < n) {
      lineEnd = h.indexOf(LF, start);
      if (lineEnd < 0 || lineEnd >= n) lineEnd = n;
      const end = trimCr(h, start, lineEnd);
      if (end > start) {
        // Obsolete line folding is refused, as RFC 9112 §5.2 allows a server to.
        if (h[start] === SP || h[start] === HTAB) return false;
        const colon = h.indexOf(COLON, start);
        if (colon < 0 || colon >= end) return false;
        // Only three headers matter; the others are not even read into strings.
        if (nameIs(h, start, colon, CONTENT_LENGTH)) {
          if (!this.#contentLengthValue(h, colon + 1, end)) return false;
        } else if (nameIs(h, start, colon, TRANSFER_ENCODING)) {
          this.#transferEncoding = true;
          // Only the final coding decides the framing (RFC 9112 §6.3).
          const codings = trimmed(h, colon + 1, end).toLowerCase().split(",");
          this.#chunked = codings[codings.length - 1].trim() === "chunked";
        } else if (nameIs(h, start, colon, CONNECTION)) {
          for (const token of trimmed(h, colon + 1, end).toLowerCase().split(",")) {
            const t = token.trim();
            if (t === "close") close = true;
            else if (t === "keep-alive") keepAlive = true;
          }
        }
      }
      start = lineEnd + 1;
    }
    // HTTP/1.0 closes unless asked not to; HTTP/1.1 keeps alive unless asked to close.
    this.connectionClose = close || (this.minorVersion === 0 && !keepAlive);
    return this.#bodyState();
  }

  #parseStartLine(h: Uint8Array, end: number): boolean {
    if (this.role === "request") {
      const sp = h.indexOf(SP);
      if (sp <= 0 || sp >= end) return false;
      // "HEAD": its response has a Content-Length but no body.
      this.isHead = sp === 4 && h[0] === 72 && h[1] === 69 && h[2] === 65 && h[3] === 68;
      if (sp === 7 && String.fromCharCode(...h.subarray(0, 7)) === "CONNECT") return false;
      this.final = true;
      this.minorVersion = end >= 8 && h[end - 2] === 46 ? h[end - 1] - 48 : 1;
      return true;
    }
    // "HTTP/1.x NNN ..."
    if (end < 12 || h[0] !== 72 || h[4] !== 47 || h[8] !== SP) return false;
    this.minorVersion = h[7] - 48;
    const status = (h[9] - 48) * 100 + (h[10] - 48) * 10 + (h[11] - 48);
    if (!(status >= 100 && status <= 999)) return false;
    this.status = status;
    this.final = status >= 200 || status === 101;
    return true;
  }

  #contentLengthValue(h: Uint8Array, start: number, end: number): boolean {
    let parsed = -1;
    // The usual case, digits only, read straight from the bytes.
    let digits = 0;
    let v = 0;
    let i = start;
    while (i < end && (h[i] === SP || h[i] === HTAB)) i++;
    for (; i < end && h[i] >= 48 && h[i] <= 57; i++, digits++) v = v * 10 + h[i] - 48;
    while (i < end && (h[i] === SP || h[i] === HTAB)) i++;
    if (i === end && digits > 0 && digits <= 15) parsed = v;
    else {
      // A list of identical values is one value (RFC 9110 §8.6).
      for (const part of trimmed(h, start, end).split(",")) {
        const p = part.trim();
        if (!/^\d{1,15}$/.test(p)) return false;
        const n = Number(p);
        if (parsed >= 0 && n !== parsed) return false;
        parsed = n;
      }
    }
    if (this.#contentLength >= 0 && this.#contentLength !== parsed) return false;
    this.#contentLength = parsed;
    return true;
  }

  /** RFC 9112 §6.3, in the order it gives. */
  #bodyState(): boolean {
    this.#remaining = 0;
    this.#sizeDigits = 0;
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
      else if (this.#transferEncoding) this.#state = this.#chunked ? CHUNK_SIZE : UNTIL_CLOSE;
      else if (this.#contentLength >= 0) this.#state = this.#contentLength === 0 ? END : LENGTH;
      else this.#state = UNTIL_CLOSE;
    } else {
      if (this.#transferEncoding) {
        // A request whose final coding is not chunked cannot be framed (the server answers 400).
        if (!this.#chunked) return false;
        this.#state = CHUNK_SIZE;
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

function trimmed(h: Uint8Array, start: number, end: number): string {
  while (start < end && (h[start] === SP || h[start] === HTAB)) start++;
  while (end > start && (h[end - 1] === SP || h[end - 1] === HTAB)) end--;
  return String.fromCharCode(...h.subarray(start, end));
}

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
