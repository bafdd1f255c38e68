/**
 * The framer at its limits and on legal-but-rare framing: chunk sizes up to
 * 2^63 - 1 (16 significant hex digits, the first at most 7) with any number of
 * leading zeros, and one digit more; a request with both Transfer-Encoding and
 * Content-Length, in either order, refused (which one the next hop believes
 * is the smuggling question, RFC 9112 section 6.1).
 */
import assert from "node:assert/strict";
import { type FramerEvent, Http1Framer } from "./http_framing.ts";

function events(text: string, role: "request" | "response" = "request"): FramerEvent[] {
  const bytes = new TextEncoder().encode(text);
  const framer = new Http1Framer(role);
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

Deno.test("chunk sizes: leading zeros are free; 16 significant digits up to 7fff... read, one more refused", () => {
  // A size of 10 written with 13, 14 and 30 digits: all the same chunk.
  for (const digits of [13, 14, 30]) {
    const size = "a".padStart(digits, "0");
    assert.deepEqual(events(`${HEAD}${size}\r\n0123456789\r\n0\r\n\r\n`), WHOLE, `${digits} digits`);
  }
  // The largest size is read (its body is still to come), the next ones are refused.
  assert.deepEqual(events(`${HEAD}7fffffffffffffff\r\n`), ["head_start", "head_end"]);
  assert.deepEqual(events(`${HEAD}0007fffffffffffffff\r\n`), ["head_start", "head_end"]);
  for (const size of ["8000000000000000", "10000000000000000", "fffffffffffffffff"]) {
    assert.deepEqual(events(`${HEAD}${size}\r\n`), ["head_start", "head_end", "error"], size);
  }
});

Deno.test("Transfer-Encoding with Content-Length is refused, in either order; either alone is framed", () => {
  const body = "5\r\nhello\r\n0\r\n\r\n";
  for (
    const headers of [
      "Transfer-Encoding: chunked\r\nContent-Length: 100\r\n",
      "Content-Length: 100\r\nTransfer-Encoding: chunked\r\n",
      "Content-Length: 15\r\nTransfer-Encoding: chunked\r\n",
    ]
  ) {
    const got = events(`POST /predict HTTP/1.1\r\nHost: x\r\n${headers}\r\n${body}`);
    assert.equal(got.at(-1), "error", headers);
    assert.ok(!got.includes("message_end"), headers);
  }
  const next = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  assert.deepEqual(
    events(`POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}${next}`),
    [...WHOLE, ...WHOLE],
  );
  assert.deepEqual(
    events(`POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n${body}${next}`),
    [...WHOLE, ...WHOLE],
  );
});

Deno.test("only the final transfer coding decides: gzip, chunked is framed; chunked, gzip is refused", () => {
  const body = "5\r\nhello\r\n0\r\n\r\n";
  const request = (codings: string) =>
    events(`POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${codings}\r\n\r\n${body}`);
  assert.deepEqual(request("gzip, chunked"), WHOLE);
  assert.deepEqual(request("gzip,chunked"), WHOLE);
  for (const codings of ["chunked, gzip", "chunked,identity", "gzip"]) {
    assert.equal(request(codings).at(-1), "error", codings);
  }
});

Deno.test("a response whose final coding is not chunked runs to the close, even after a chunked one", () => {
  const body = "5\r\nhello\r\n0\r\n\r\n";
  const response = (codings: string) =>
    events(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${codings}\r\n\r\n${body}`, "response");
  assert.deepEqual(response("chunked"), WHOLE);
  assert.deepEqual(response("gzip, chunked"), WHOLE);
  // Framed by the connection's end: the chunk syntax inside is the body's, not the framing's.
  assert.deepEqual(response("chunked, gzip"), ["head_start", "head_end"]);
});
