import assert from "node:assert/strict";
import { type FramerEvent, Http1Framer, MAX_HEAD_BYTES, withConnectionClose } from "./http_framing.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Feeds `text` in chunks of `size` bytes; returns the events with their offset in the whole stream. */
function frame(
  framer: Http1Framer,
  text: string | Uint8Array,
  size = Infinity,
): Array<[FramerEvent, number]> {
  const bytes = typeof text === "string" ? encoder.encode(text) : text;
  const out: Array<[FramerEvent, number]> = [];
  for (let start = 0; start < bytes.length; start += size) {
    const chunk = bytes.subarray(start, Math.min(bytes.length, start + size));
    let i = 0;
    while (true) {
      i = framer.advance(chunk, i, chunk.length);
      if (framer.event === "none") break;
      out.push([framer.event, start + i]);
      if (framer.event === "error") return out;
    }
  }
  return out;
}

/** The events of `text` fed whole and fed in every chunk size from 1 to 17: all must agree. */
function frameEveryWay(role: "request" | "response", text: string, heads: boolean[] = []) {
  const make = () => {
    const f = new Http1Framer(role);
    f.pendingHeadRequests.push(...heads);
    return f;
  };
  const whole = frame(make(), text);
  for (let size = 1; size <= 17; size++) {
    assert.deepEqual(frame(make(), text, size), whole, `chunks of ${size}`);
  }
  return whole;
}

Deno.test("Http1Framer finds where requests begin and end", async (t) => {
  await t.step("a GET without a body", () => {
    const req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    assert.deepEqual(frameEveryWay("request", req), [
      ["head_start", 0],
      ["head_end", req.length],
      ["message_end", req.length],
    ]);
  });

  await t.step("a POST with Content-Length, its body skipped by count", () => {
    const head = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n";
    // The body holds an empty line, which must not be taken for a head's end.
    const req = head + "ab\r\n\r\ncdefgh";
    assert.deepEqual(frameEveryWay("request", req), [
      ["head_start", 0],
      ["head_end", head.length],
      ["message_end", req.length],
    ]);
  });

  await t.step(
    "a repeated Content-Length with the same value is one value; leading zeros are allowed",
    () => {
      const head = "POST /p HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 0003\r\n\r\n";
      assert.deepEqual(frameEveryWay("request", head + "abc").at(-1), ["message_end", head.length + 3]);
      const zeros = `POST /p HTTP/1.1\r\nContent-Length: ${"0".repeat(40)}3\r\n\r\n`;
      assert.deepEqual(frameEveryWay("request", zeros + "abc").at(-1), ["message_end", zeros.length + 3]);
    },
  );

  await t.step("lengths and chunk sizes up to 2^63 - 1 are framed; one more is refused", () => {
    const accepts = (req: string) => frame(new Http1Framer("request"), req).at(-1)?.[0] === "head_end";
    const cl = (v: string) => `POST / HTTP/1.1\r\nContent-Length: ${v}\r\n\r\n`;
    assert.ok(accepts(cl("9223372036854775807")), "2^63 - 1");
    assert.ok(accepts(cl("0009223372036854775807")), "2^63 - 1 with leading zeros");
    assert.ok(accepts(cl("9223372036854775806")), "one below");
    assert.ok(!accepts(cl("9223372036854775808")), "2^63");
    assert.ok(!accepts(cl("10000000000000000000")), "20 digits");
    const chunk = (size: string) => {
      const f = new Http1Framer("request");
      const events = frame(f, `POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n${size}\r\nabc`);
      return events.at(-1)?.[0] !== "error";
    };
    assert.ok(chunk("7fffffffffffffff"), "2^63 - 1");
    assert.ok(chunk("0".repeat(100) + "7fffffffffffffff"), "with 100 leading zeros");
    assert.ok(!chunk("8000000000000000"), "2^63");
    assert.ok(!chunk("10000000000000000"), "17 digits");
    // A chunk of 0000000000000003 bytes (16 digits, leading zeros) is 3 bytes.
    const req = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000003\r\nabc\r\n0\r\n\r\n";
    assert.deepEqual(frameEveryWay("request", req).at(-1), ["message_end", req.length]);
  });

  await t.step("a chunked body with extensions and trailers", () => {
    const head = "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
    const req = head + "5;name=v\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
    assert.deepEqual(frameEveryWay("request", req), [
      ["head_start", 0],
      ["head_end", head.length],
      ["message_end", req.length],
    ]);
  });

  await t.step("pipelined requests, and the empty lines a client may send between them", () => {
    const a = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    const b = "\r\nGET /b HTTP/1.1\r\n\r\n";
    const events = frameEveryWay("request", a + b);
    assert.deepEqual(events, [
      ["head_start", 0],
      ["head_end", a.length - 3],
      ["message_end", a.length],
      ["head_start", a.length + 2],
      ["head_end", a.length + b.length],
      ["message_end", a.length + b.length],
    ]);
  });

  await t.step("a HEAD request is recognised; Connection: close and HTTP/1.0 are noted", () => {
    const f = new Http1Framer("request");
    frame(f, "HEAD / HTTP/1.1\r\nConnection: Close\r\n\r\n");
    assert.equal(f.isHead, true);
    assert.equal(f.connectionClose, true);
    frame(f, "GET / HTTP/1.0\r\n\r\n");
    assert.equal(f.isHead, false);
    assert.equal(f.connectionClose, true, "HTTP/1.0 closes by default");
    frame(f, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert.equal(f.connectionClose, false);
  });

  await t.step("bare LF line endings end a head as hyper accepts them", () => {
    const req = "GET / HTTP/1.1\nHost: x\n\n";
    assert.deepEqual(frameEveryWay("request", req).map((e) => e[0]), [
      "head_start",
      "head_end",
      "message_end",
    ]);
  });

  await t.step("requests that cannot be framed are errors, with the reason the guard answers", () => {
    const cases: Array<[string, string]> = [
      ["POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad_request"],
      // Chunked lines end in CRLF: a bare LF after a size, after data or in the trailer is refused.
      ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\n0\r\n\r\n", "bad_request"],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n", "bad_request"],
      ["GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", "bad_request"],
      ["GET / HTTP/1.1\rHost: x\r\n\r\n", "bad_request"],
      ["GET / HTTP/1.1\r\nX: a\u0000b\r\n\r\n", "bad_request"],
      ["GET  / HTTP/1.1\r\n\r\n", "bad_request"],
      ["GET /\r\n\r\n", "bad_request"],
      ["GET / http/1.1\r\n\r\n", "bad_request"],
      ["GET / HTTP/2.0\r\n\r\n", "http_version"],
      ["GET / HTTP/1.2\r\n\r\n", "http_version"],
      ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "http_version"],
      ["CONNECT example.com:443 HTTP/1.1\r\n\r\n", "connect"],
    ];
    for (const [bad, why] of cases) {
      const f = new Http1Framer("request");
      const events = frame(f, bad);
      assert.equal(events.at(-1)?.[0], "error", JSON.stringify(bad));
      assert.equal(f.failure, why, JSON.stringify(bad));
      assert.ok(f.opaque);
    }
  });

  await t.step("a head over MAX_HEAD_BYTES is refused as too large; one at it is framed", () => {
    const head = (size: number) => {
      const start = "GET / HTTP/1.1\r\nX: ";
      return start + "a".repeat(size - start.length - 4) + "\r\n\r\n";
    };
    for (const size of [MAX_HEAD_BYTES - 1, MAX_HEAD_BYTES]) {
      assert.equal(frame(new Http1Framer("request"), head(size), 4096).at(-1)?.[0], "message_end", `${size}`);
    }
    const f = new Http1Framer("request");
    assert.equal(frame(f, head(MAX_HEAD_BYTES + 1), 4096).at(-1)?.[0], "error");
    assert.equal(f.failure, "head_too_large");
  });

  await t.step("framing headers as long as a head can be are read without strings", () => {
    // String.fromCharCode(...value) threw RangeError past ~125,000 bytes; a value now fills the head.
    const fill = (name: string, item: string, last: string) => {
      const start = `POST / HTTP/1.1\r\n${name}: `;
      const room = MAX_HEAD_BYTES - start.length - 4 - last.length;
      return start + item.repeat(Math.floor(room / item.length)) + `${last}\r\n\r\n`;
    };
    const te = new Http1Framer("request");
    assert.deepEqual(
      frame(te, fill("Transfer-Encoding", "gzip, ", "chunked") + "0\r\n\r\n").map((e) => e[0]),
      [
        "head_start",
        "head_end",
        "message_end",
      ],
    );
    const conn = new Http1Framer("request");
    assert.equal(frame(conn, fill("Connection", "keep-alive, ", "close")).at(-1)?.[0], "message_end");
    assert.equal(conn.connectionClose, true, "the last element was read");
  });
});

Deno.test("Http1Framer finds where responses end", async (t) => {
  await t.step("Content-Length", () => {
    const res = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
    assert.deepEqual(frameEveryWay("response", res), [
      ["head_start", 0],
      ["head_end", res.length - 5],
      ["message_end", res.length],
    ]);
  });

  await t.step("a response to HEAD, 204 and 304 have no body whatever their headers say", () => {
    const head = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
    assert.deepEqual(frameEveryWay("response", head, [true]).at(-1), ["message_end", head.length]);
    for (const status of ["204 No Content", "304 Not Modified"]) {
      const res = `HTTP/1.1 ${status}\r\ncontent-length: 5\r\n\r\n`;
      assert.deepEqual(frameEveryWay("response", res).at(-1), ["message_end", res.length]);
    }
  });

  await t.step("100 Continue is not the final response", () => {
    const cont = "HTTP/1.1 100 Continue\r\n\r\n";
    const res = cont + "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 2\r\n\r\nno";
    const f = new Http1Framer("response");
    const events = frame(f, res);
    assert.deepEqual(events.map((e) => e[0]), [
      "head_start",
      "head_end",
      "head_start",
      "head_end",
      "message_end",
    ]);
    assert.equal(f.status, 413);
    assert.equal(f.final, true);
  });

  await t.step("a response without length runs until the connection closes", () => {
    const f = new Http1Framer("response");
    const events = frame(f, "HTTP/1.0 200 OK\r\n\r\nand then some bytes");
    assert.deepEqual(events.map((e) => e[0]), ["head_start", "head_end"]);
    assert.ok(f.inMessage);
    assert.equal(f.connectionClose, true);
  });

  await t.step("what Deno.serve sends, read off a real socket", async () => {
    await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/stream") {
        const body = ReadableStream.from(["first part\r\n\r\n", "second"].map((s) => encoder.encode(s)));
        return new Response(body);
      }
      if (path === "/empty") return new Response(null, { status: 204 });
      return Response.json({ hello: "world" });
    });
    const requests = ["GET /stream", "HEAD /json", "GET /empty", "GET /json"]
      .map((r) => `${r} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(encoder.encode(requests.join("")));
    const f = new Http1Framer("response");
    f.pendingHeadRequests.push(false, true, false, false);
    const received: number[] = [];
    const buf = new Uint8Array(16);
    let total = 0;
    const statuses: number[] = [];
    while (received.length < 4) {
      const n = await conn.read(buf);
      if (n === null) break;
      let i = 0;
      while (true) {
        i = f.advance(buf, i, n);
        if (f.event === "none") break;
        if (f.event === "head_end") statuses.push(f.status);
        if (f.event === "message_end") received.push(total + i);
        assert.notEqual(f.event, "error");
      }
      total += n;
    }
    conn.close();
    assert.deepEqual(statuses, [200, 200, 204, 200]);
    assert.equal(received.length, 4);
    assert.equal(received[3], total, "the last response ends at the last byte sent");
  });
});

Deno.test("withConnectionClose replaces any Connection header and keeps the rest", () => {
  const head = encoder.encode("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\ncontent-length: 2\r\n\r\n");
  assert.equal(
    decoder.decode(withConnectionClose(head)),
    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n",
  );
  const plain = encoder.encode("HTTP/1.1 503 Service Unavailable\r\nx-a: b\r\n\r\n");
  assert.equal(
    decoder.decode(withConnectionClose(plain)),
    "HTTP/1.1 503 Service Unavailable\r\nx-a: b\r\nconnection: close\r\n\r\n",
  );
});
