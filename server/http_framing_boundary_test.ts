/**
 * The framer at its limits and on legal-but-rare framing: the longest chunk
 * size it reads (13 hex digits, so a size stays exact below 2^53) and one digit
 * more; a request with both Transfer-Encoding and Content-Length, in either
 * order, framed by its chunks as RFC 9112 section 6.3 requires.
 */
import assert from "node:assert/strict";
import { type FramerEvent, Http1Framer } from "./http_framing.ts";

function events(text: string): FramerEvent[] {
  const bytes = new TextEncoder().encode(text);
  const framer = new Http1Framer("request");
  const out: FramerEvent[] = [];
  let i = 0;
  while (true) {
    i = framer.advance(bytes, i, bytes.length);
    if (framer.event === "none") break;
    out.push(framer.event);
    if (framer.event === "error") break;
  }
  return out;
}

const HEAD = "POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
const WHOLE: FramerEvent[] = ["head_start", "head_end", "message_end"];

Deno.test("chunk sizes: 12 and 13 hex digits are read, 14 are refused", () => {
  for (const digits of [12, 13]) {
    const size = "a".padStart(digits, "0");
    assert.deepEqual(events(`${HEAD}${size}\r\n0123456789\r\n0\r\n\r\n`), WHOLE, `${digits} digits`);
  }
  assert.deepEqual(events(`${HEAD}${"a".padStart(14, "0")}\r\n0123456789\r\n0\r\n\r\n`), [
    "head_start",
    "head_end",
    "error",
  ]);
});

Deno.test("Transfer-Encoding wins over Content-Length, in either order", () => {
  const body = "5\r\nhello\r\n0\r\n\r\n";
  for (
    const headers of [
      "Transfer-Encoding: chunked\r\nContent-Length: 100\r\n",
      "Content-Length: 100\r\nTransfer-Encoding: chunked\r\n",
      "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
    ]
  ) {
    // The message ends with its last chunk: reading 100 (or 3) bytes would swallow or split the next request.
    const next = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    assert.deepEqual(
      events(`POST /predict HTTP/1.1\r\nHost: x\r\n${headers}\r\n${body}${next}`),
      [...WHOLE, ...WHOLE],
      headers,
    );
  }
});
