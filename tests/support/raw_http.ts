/**
 * An HTTP/1.1 keep-alive client over a raw socket, for tests that must know
 * exactly what happened to each request: fetch retries, pools and hides a
 * connection closed under a request, which is what these tests look for.
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface RawResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** Why a request got no complete response. */
export class ConnectionLost extends Error {
  constructor(readonly partial: boolean) {
    super(partial ? "Connection closed in the middle of a response" : "Connection closed with no response");
    this.name = "ConnectionLost";
  }
}

/** A request as bytes: head and body. */
export function requestBytes(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Uint8Array,
): Uint8Array {
  const lines = [`${method} ${path} HTTP/1.1`, "Host: 127.0.0.1"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  if (body) lines.push(`Content-Length: ${body.length}`);
  const head = encoder.encode(lines.join("\r\n") + "\r\n\r\n");
  if (!body) return head;
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/** A multipart/form-data body with one `file` field, as curl -F builds it. */
export function multipartBody(bytes: Uint8Array, type: string): { body: Uint8Array; contentType: string } {
  const boundary = "----raw-http-" + crypto.randomUUID();
  const head = encoder.encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload"\r\n` +
      `Content-Type: ${type}\r\n\r\n`,
  );
  const tail = encoder.encode(`\r\n--${boundary}--\r\n`);
  const body = new Uint8Array(head.length + bytes.length + tail.length);
  body.set(head);
  body.set(bytes, head.length);
  body.set(tail, head.length + bytes.length);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

/** One kept-alive connection: send a request, read its response (Content-Length framed), repeat. */
export class RawConnection {
  #buffered = new Uint8Array(0);
  #readBuf = new Uint8Array(64 * 1024);
  /** Whether the server has said `Connection: close` or closed. */
  ended = false;

  private constructor(readonly conn: Deno.Conn) {}

  /** Connects; a refused connection throws Deno.errors.ConnectionRefused. */
  static async open(port: number, hostname = "127.0.0.1"): Promise<RawConnection> {
    return new RawConnection(await Deno.connect({ hostname, port }));
  }

  /** Sends `request` and reads its response; throws {@link ConnectionLost} if the connection closes first. */
  async exchange(request: Uint8Array): Promise<RawResponse> {
    try {
      // A large request takes several writes: write() may take only part of it.
      for (let sent = 0; sent < request.length;) sent += await this.conn.write(request.subarray(sent));
    } catch {
      this.ended = true;
      throw new ConnectionLost(false);
    }
    return await this.read();
  }

  /** Reads one response. */
  async read(): Promise<RawResponse> {
    let headEnd: number;
    while ((headEnd = indexOfHeadEnd(this.#buffered)) < 0) await this.#fill(this.#buffered.length > 0);
    const lines = decoder.decode(this.#buffered.subarray(0, headEnd)).split("\r\n");
    const status = Number(lines[0].split(" ")[1]);
    const headers = new Headers();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    const length = Number(headers.get("content-length") ?? NaN);
    if (!Number.isInteger(length)) throw new Error(`Response without Content-Length: ${lines[0]}`);
    const total = headEnd + 4 + length;
    while (this.#buffered.length < total) await this.#fill(true);
    const body = this.#buffered.slice(headEnd + 4, total);
    this.#buffered = this.#buffered.slice(total);
    if (/\bclose\b/i.test(headers.get("connection") ?? "")) this.ended = true;
    return { status, headers, body };
  }

  /** Waits for the server to close the connection (true) or `ms` to pass (false). */
  async closedWithin(ms: number): Promise<boolean> {
    const timer = setTimeout(() => this.close(), ms);
    try {
      const n = await this.conn.read(this.#readBuf);
      return n === null;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  async #fill(partial: boolean): Promise<void> {
    let n: number | null;
    try {
      n = await this.conn.read(this.#readBuf);
    } catch {
      n = null;
    }
    if (n === null) {
      this.ended = true;
      throw new ConnectionLost(partial);
    }
    const grown = new Uint8Array(this.#buffered.length + n);
    grown.set(this.#buffered);
    grown.set(this.#readBuf.subarray(0, n), this.#buffered.length);
    this.#buffered = grown;
  }

  close(): void {
    this.ended = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

function indexOfHeadEnd(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}
