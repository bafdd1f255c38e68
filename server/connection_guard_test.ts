/**
 * The guard with real sockets on loopback, in this thread (the framing and
 * drain logic) and in its Worker (what the gateway runs). End-to-end
 * behaviour under load is in tests/shutdown_test.ts.
 */
import assert from "node:assert/strict";
import { problemBody } from "../routes/problem.ts";
import { concat } from "../tests/support/bytes.ts";
import { ClientTable } from "./client_table.ts";
import { type ConnectionGuardOptions, guardConnections } from "./connection_guard.ts";
import { guardConnectionsInWorker } from "./guard_thread.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const LIMITS = { maxConnections: 16, headerTimeoutMs: 5000, idleTimeoutMs: 10_000 };

/** A Deno.serve upstream: /slow answers after 300 ms; /whoami answers with the client the guard recorded. */
function upstream(clients?: { clientOf(port: number): Deno.NetAddr | undefined }) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req, info) => {
    const port = info.remoteAddr.port;
    const path = new URL(req.url).pathname;
    if (path === "/slow") await sleep(300);
    if (path === "/whoami") return Response.json(clients?.clientOf(port) ?? null);
    return new Response(`${req.method} ${path} ${(await req.arrayBuffer()).byteLength}`);
  });
}

/** Reads from `conn` until it closes or `ms` pass: the text and whether the server closed it. */
async function readAll(conn: Deno.Conn, ms = 5000): Promise<{ text: string; closed: boolean }> {
  const buf = new Uint8Array(4096);
  let text = "";
  const timer = setTimeout(() => conn.close(), ms);
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) return { text, closed: true };
      text += decoder.decode(buf.subarray(0, n));
    }
  } catch {
    return { text, closed: false };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

/** Reads until `count` complete responses (Content-Length framed) have arrived. */
async function readResponses(conn: Deno.Conn, count: number): Promise<string[]> {
  const buf = new Uint8Array(4096);
  let text = "";
  const out: string[] = [];
  while (out.length < count) {
    const n = await conn.read(buf);
    if (n === null) throw new Error(`Closed after ${out.length} responses: ${text}`);
    text += decoder.decode(buf.subarray(0, n));
    let end;
    while ((end = text.indexOf("\r\n\r\n")) >= 0) {
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
      if (text.length < end + 4 + length) break;
      out.push(text.slice(0, end + 4 + length));
      text = text.slice(end + 4 + length);
    }
  }
  return out;
}

const get = (path: string, extra = "") => encoder.encode(`GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`);

function guardFor(server: Deno.HttpServer<Deno.NetAddr>, extra: Partial<ConnectionGuardOptions> = {}) {
  return guardConnections({
    hostname: "127.0.0.1",
    port: 0,
    upstream: { hostname: "127.0.0.1", port: server.addr.port },
    ...LIMITS,
    ...extra,
  });
}

Deno.test("the guard relays HTTP/1.1 exchanges as they are", async (t) => {
  const clients = new ClientTable();
  await using server = upstream({ clientOf: (p) => clients.get(p) });
  const guard = guardFor(server, { clients });
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });

  await t.step("pipelined requests, bodies and HEAD are answered in order", async () => {
    const conn = await connect();
    await conn.write(encoder.encode(
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
        "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n" +
        "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ));
    const [a, b, c] = await readResponses(conn, 3);
    conn.close();
    assert.match(a, /POST \/a 5$/);
    assert.match(b, /^HTTP\/1\.1 200/);
    assert.doesNotMatch(b, /HEAD/, "no body for HEAD");
    assert.match(c, /POST \/c 3$/);
  });

  await t.step("the server learns each client's address from the guard", async () => {
    const conn = await connect();
    await conn.write(get("/whoami", "Connection: close\r\n"));
    const { text } = await readAll(conn);
    const seen = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
    assert.equal(seen.hostname, "127.0.0.1");
    assert.equal(seen.port, (conn.localAddr as Deno.NetAddr).port);
  });

  await t.step("past the cap, the 503 is a problem of the gateway's type", async () => {
    const small = guardFor(server, { maxConnections: 1 });
    const held = await Deno.connect({ hostname: "127.0.0.1", port: small.addr.port });
    await sleep(50);
    const { text } = await readAll(await Deno.connect({ hostname: "127.0.0.1", port: small.addr.port }));
    const body = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
    assert.match(text, /^HTTP\/1\.1 503/);
    const expected = problemBody("overloaded", body.detail);
    assert.deepEqual(body, expected);
    held.close();
    await small.drain(1000);
  });

  await guard.drain(1000);
});

Deno.test("a response head split across reads is relayed whole, and marked when draining", async () => {
  // A raw upstream that writes each response head in three pieces.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    for await (const conn of listener) {
      (async () => {
        const buf = new Uint8Array(4096);
        while ((await conn.read(buf)) !== null) {
          for (const piece of ["HTTP/1.1 200 OK\r\nconte", "nt-length: 2\r\n", "\r\nok"]) {
            await conn.write(encoder.encode(piece));
            await sleep(30);
          }
        }
        conn.close();
      })().catch(() => {});
    }
  })().catch(() => {});
  const guard = guardConnections({
    hostname: "127.0.0.1",
    port: 0,
    upstream: { hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port },
    ...LIMITS,
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });
  await conn.write(get("/"));
  assert.deepEqual(await readResponses(conn, 1), ["HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]);
  await conn.write(get("/"));
  await sleep(10);
  const drained = guard.drain(5000);
  const { text, closed } = await readAll(conn);
  assert.equal(text, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
  assert.ok(closed);
  assert.deepEqual(await drained, { timedOut: false, cut: 0, late: 0 });
  listener.close();
  await served;
});

Deno.test("draining closes connections only between requests", async (t) => {
  await using server = upstream();
  const guard = guardFor(server);
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });
  const busy = await connect();
  const idleThenAsks = await connect();
  const idle = await connect();
  for (const conn of [idleThenAsks, idle]) {
    await conn.write(get("/"));
    await readResponses(conn, 1);
  }
  await busy.write(get("/slow"));
  await sleep(50);
  const started = performance.now();
  const drained = guard.drain(5000);

  await t.step("new connections are refused at once", async () => {
    // Or reset: one that reached the kernel's accept queue as the listener closed.
    await assert.rejects(
      connect().then((c) => c.read(new Uint8Array(1))),
      (err) => err instanceof Deno.errors.ConnectionRefused || err instanceof Deno.errors.ConnectionReset,
    );
  });

  await t.step(
    "the request in flight is answered in full, with Connection: close, then the connection closes",
    async () => {
      const { text, closed } = await readAll(busy);
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n(.+\r\n)*connection: close\r\n/);
      assert.match(text, /GET \/slow 0$/);
      assert.ok(closed);
    },
  );

  await t.step(
    "a request arriving on an idle connection during the drain is served, with Connection: close",
    async () => {
      await idleThenAsks.write(get("/late"));
      const { text, closed } = await readAll(idleThenAsks);
      assert.match(text, /connection: close\r\n/);
      assert.match(text, /GET \/late 0$/);
      assert.ok(closed);
    },
  );

  await t.step("a connection that stays idle is closed after the grace", async () => {
    const { text, closed } = await readAll(idle);
    assert.equal(text, "");
    assert.ok(closed);
    assert.ok(performance.now() - started >= 900, "not before the grace");
  });

  assert.deepEqual(await drained, { timedOut: false, cut: 0, late: 0 });
});

Deno.test("a request that races the close of an idle connection is counted as late", async () => {
  await using server = upstream();
  const guard = guardFor(server);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });
  await conn.write(get("/"));
  await readResponses(conn, 1);
  const drained = guard.drain(5000);
  // After the grace the guard has sent its FIN; a client that has not read it yet sends.
  await sleep(1200);
  await conn.write(get("/too-late"));
  assert.deepEqual(await drained, { timedOut: false, cut: 0, late: 1 });
  const { text, closed } = await readAll(conn);
  assert.equal(text, "", "it cannot be answered");
  assert.ok(closed);
});

Deno.test("the drain timeout cuts what is left and counts it", async () => {
  await using server = upstream();
  const guard = guardFor(server);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });
  // Headers promise a body that never comes: a request on the connection until the cut.
  await conn.write(encoder.encode("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));
  await sleep(50);
  const report = await guard.drain(300);
  assert.deepEqual(report, { timedOut: true, cut: 1, late: 0 });
  assert.ok((await readAll(conn, 1000)).closed);
});

Deno.test("the guard in its Worker: listens, records clients, reports refusals, drains", async () => {
  await using server = upstream();
  const refusals: string[] = [];
  const open: number[] = [];
  const guard = await guardConnectionsInWorker({
    hostname: "127.0.0.1",
    port: 0,
    upstream: { hostname: "127.0.0.1", port: server.addr.port },
    ...LIMITS,
    headerTimeoutMs: 200,
    onRefused: (reason) => refusals.push(reason),
    onOpenChange: (n) => open.push(n),
  });
  const silent = await Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });
  assert.ok((await readAll(silent)).closed, "closed at the header timeout");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });
  await conn.write(get("/"));
  await readResponses(conn, 1);
  const closed = readAll(conn);
  const report = await guard.drain(3000);
  assert.deepEqual(report, { timedOut: false, cut: 0, late: 0 });
  assert.ok((await closed).closed);
  assert.deepEqual(refusals, ["header_timeout"]);
  assert.equal(open.at(-1), 0);
});

Deno.test("a guard that cannot listen says why", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await assert.rejects(
      guardConnectionsInWorker({
        hostname: "127.0.0.1",
        port: (taken.addr as Deno.NetAddr).port,
        upstream: { hostname: "127.0.0.1", port: 1 },
        ...LIMITS,
      }),
      /in use/i,
    );
  } finally {
    taken.close();
  }
});

Deno.test("a client that half-closes after its request still gets the answer", async (t) => {
  const clients = new ClientTable();
  // /slow reports whether the guard said its client had left while it worked.
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req, info) => {
      const gone = clients.goneSignal(info.remoteAddr.port);
      const length = (await req.arrayBuffer()).byteLength;
      await sleep(300);
      return new Response(`${length} gone=${gone?.aborted}`);
    },
  );
  const guard = guardFor(server, { clients });
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });
  const post = (length: number, more = "") =>
    concat(
      encoder.encode(`POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: ${length}\r\n${more}\r\n`),
      new Uint8Array(length).fill(120),
    );

  for (const length of [5, 100_000]) {
    await t.step(`a ${length}-byte body, then shutdown(SHUT_WR), as nc -N sends it`, async () => {
      const conn = await connect();
      await conn.write(post(length));
      await conn.closeWrite();
      const { text, closed } = await readAll(conn);
      assert.match(text, /HTTP\/1\.1 200 OK\r\n/, text);
      assert.match(text, new RegExp(`\r\n\r\n${length} gone=false$`), "answered, and not as a departure");
      assert.ok(closed, "then the guard closes");
    });
  }

  await t.step("two pipelined requests, then a half-close: both are answered in order", async () => {
    const conn = await connect();
    await conn.write(concat(post(3), post(4)));
    await conn.closeWrite();
    const { text, closed } = await readAll(conn);
    const answers = [...text.matchAll(/\r\n\r\n(\d+) gone=(true|false)/g)].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(answers, ["3 false", "4 false"]);
    assert.ok(closed);
  });

  await t.step("an HTTP/1.0 request, then a half-close, is answered too", async () => {
    const conn = await connect();
    await conn.write(encoder.encode("POST /slow HTTP/1.0\r\nContent-Length: 2\r\n\r\nab"));
    await conn.closeWrite();
    const { text } = await readAll(conn);
    assert.match(text, /\r\n\r\n2 gone=false$/);
  });

  await guard.drain(1000);
});

Deno.test("a client that leaves is marked gone; one that half-closes after its request is not", async (t) => {
  const clients = new ClientTable();
  const signals: AbortSignal[] = [];
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req, info) => {
      const gone = clients.goneSignal(info.remoteAddr.port)!;
      signals.push(gone);
      await req.arrayBuffer().catch(() => {});
      await Promise.race([sleep(1500), new Promise((r) => gone.addEventListener("abort", r))]);
      return new Response(`gone=${gone.aborted}`);
    },
  );
  const guard = guardFor(server, { clients });
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });
  const waitFor = async (n: number) => {
    for (let i = 0; i < 200 && signals.length < n; i++) await sleep(5);
    assert.equal(signals.length, n, "the request reached the server");
  };
  const abortedWithin = async (signal: AbortSignal, ms: number) => {
    const deadline = performance.now() + ms;
    while (!signal.aborted && performance.now() < deadline) await sleep(5);
    return signal.aborted;
  };

  await t.step("closing the socket after a complete request is a departure", async () => {
    const conn = await connect();
    await conn.write(encoder.encode("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"));
    await waitFor(1);
    conn.close();
    assert.ok(await abortedWithin(signals[0], 1000), "noticed while the request is still being worked on");
  });

  await t.step("a half-close in the middle of a body is a departure", async () => {
    const conn = await connect();
    await conn.write(encoder.encode("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));
    await waitFor(2);
    await conn.closeWrite();
    assert.ok(await abortedWithin(signals[1], 1000));
    conn.close();
  });

  await t.step("a half-close after a complete request is not", async () => {
    const conn = await connect();
    await conn.write(encoder.encode("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"));
    await waitFor(3);
    await conn.closeWrite();
    assert.equal(await abortedWithin(signals[2], 1000), false);
    const { text } = await readAll(conn);
    assert.match(text, /\r\n\r\ngone=false$/);
  });

  await guard.drain(1000);
});

Deno.test("what the framer cannot frame is answered by the guard and closed, never relayed", async (t) => {
  const seen: string[] = [];
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    seen.push(`${req.method} ${new URL(req.url).pathname}`);
    if (new URL(req.url).pathname === "/slow") await sleep(300);
    return new Response(`${req.method} ${new URL(req.url).pathname} ${(await req.arrayBuffer()).byteLength}`);
  });
  const refused: string[] = [];
  const guard = guardFor(server, { onRefused: (reason) => refused.push(reason) });
  const send = async (bytes: string | Uint8Array) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });
    await conn.write(typeof bytes === "string" ? encoder.encode(bytes) : bytes);
    return await readAll(conn, 5000);
  };
  const bodyOf = (text: string) => JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));

  const cases: Array<[string, string | Uint8Array, number, string]> = [
    [
      "two Content-Length values (3 and 4)",
      "POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      400,
      "bad_request",
    ],
    [
      "CL.TE",
      "POST /x HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
      400,
      "bad_request",
    ],
    [
      "TE.CL",
      "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
      400,
      "bad_request",
    ],
    [
      "obfuscated Transfer-Encoding",
      "POST /x HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
      400,
      "bad_request",
    ],
    ["obs-fold", "GET /x HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400, "bad_request"],
    [
      "a 16-digit Content-Length with leading zeros is framed",
      "POST /x HTTP/1.1\r\nContent-Length: 0000000000000003\r\n\r\nabc",
      200,
      "",
    ],
    [
      "a Content-Length of 2^63",
      "POST /x HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n",
      400,
      "bad_request",
    ],
    [
      "a chunk size of 2^63",
      "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\nabc",
      400,
      "bad_request",
    ],
    [
      "the HTTP/2 prior-knowledge preface",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      505,
      "http_version_not_supported",
    ],
    ["CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400, "bad_request"],
    [
      "a 200 KB Connection header",
      `GET /x HTTP/1.1\r\nConnection: ${"keep-alive, ".repeat(17_000)}\r\n\r\n`,
      431,
      "request_head_too_large",
    ],
    [
      "a 200 KB Transfer-Encoding header",
      `POST /x HTTP/1.1\r\nTransfer-Encoding: ${"gzip, ".repeat(34_000)}chunked\r\n\r\n`,
      431,
      "request_head_too_large",
    ],
  ];
  for (const [name, bytes, status, code] of cases) {
    await t.step(`${name}: ${status}`, async () => {
      seen.length = 0;
      const { text, closed } = await send(bytes);
      assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), text.slice(0, 200));
      if (status === 200) return;
      assert.ok(closed, "closed after the answer");
      assert.deepEqual(bodyOf(text), problemBody(code as "bad_request", bodyOf(text).detail));
      assert.match(text, /\r\nconnection: close\r\n/);
      assert.deepEqual(seen, [], "nothing reached the server");
    });
  }

  await t.step("pipelined: the good request before a bad one is answered first, in order", async () => {
    seen.length = 0;
    const { text, closed } = await send(
      "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nPOST /y HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    );
    assert.ok(closed);
    assert.match(text, /^HTTP\/1\.1 200 [^]*GET \/slow 0HTTP\/1\.1 400 /);
    assert.deepEqual(seen, ["GET /slow"]);
  });

  await t.step("a chunked body gone wrong ends its request with a 400", async () => {
    seen.length = 0;
    const { text, closed } = await send(
      "POST /z HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
    );
    assert.ok(closed);
    assert.match(text, /^HTTP\/1\.1 400 /);
  });

  await t.step("each refusal is counted", () => {
    assert.ok(refused.includes("unframeable"));
    assert.ok(refused.includes("head_too_large"));
  });

  await t.step("a head trickled past the timeout is closed, whatever it says", async () => {
    const slow = guardFor(server, { headerTimeoutMs: 500 });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: slow.addr.port });
    // A length of 17 digits (leading zeros) was once passed through unframed, and the header timeout
    // stopped applying to what followed: here a second head that never ends.
    await conn.write(encoder.encode("POST /x HTTP/1.1\r\nContent-Length: 00000000000000001\r\n\r\na"));
    await conn.write(encoder.encode("GET /y HTTP/1.1\r\n"));
    const started = performance.now();
    const { text, closed } = await readAll(conn, 5000);
    assert.match(text, /POST \/x 1$/, "the first request was framed and answered");
    assert.ok(closed && performance.now() - started < 4000, "closed by the header timeout");
    await slow.drain(100);
  });

  await guard.drain(1000);
});

Deno.test("one client cannot hold every slot, and probes get through a full guard", async (t) => {
  await using server = upstream();
  const refused: string[] = [];
  const onRefused = (reason: string) => refused.push(reason);
  const open = async (port: number, hostname = "127.0.0.1") => {
    const conn = await Deno.connect({ hostname, port });
    // A request answered proves the guard admitted the connection.
    await conn.write(get("/x"));
    const [text] = await readResponses(conn, 1);
    return { conn, text };
  };

  await t.step(
    "at MAX_CONNECTIONS_PER_CLIENT and below: served; one above: 503, others still served",
    async () => {
      const guard = guardFor(server, { maxConnectionsPerClient: 3, onRefused });
      const held = [];
      for (let i = 0; i < 3; i++) held.push(await open(guard.addr.port));
      assert.ok(held.every((h) => /^HTTP\/1\.1 200/.test(h.text)));
      const { text } = await readAll(await Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port }));
      assert.match(text, /^HTTP\/1\.1 503 [^]*MAX_CONNECTIONS_PER_CLIENT/);
      assert.ok(refused.includes("client_limit"));
      // Another address (127.0.0.2 is loopback too) is another client.
      const other = await open(guard.addr.port, "127.0.0.2").catch(() => undefined);
      if (other) {
        assert.match(other.text, /^HTTP\/1\.1 200/);
        other.conn.close();
      }
      // A slot freed is a slot back.
      held.pop()!.conn.close();
      await sleep(100);
      const again = await open(guard.addr.port);
      assert.match(again.text, /^HTTP\/1\.1 200/);
      again.conn.close();
      for (const h of held) h.conn.close();
      await guard.drain(1000);
    },
  );

  await t.step("a trusted proxy's address is not capped", async () => {
    const guard = guardFor(server, { maxConnectionsPerClient: 1, trustedProxies: ["127.0.0.1/32"] });
    const a = await open(guard.addr.port);
    const b = await open(guard.addr.port);
    assert.match(b.text, /^HTTP\/1\.1 200/);
    a.conn.close();
    b.conn.close();
    await guard.drain(1000);
  });

  await t.step("with every slot taken, the reserve serves /health, /ready and /metrics only", async () => {
    const guard = guardFor(server, { maxConnections: 2, probeReserve: 1, onRefused });
    const held = [await open(guard.addr.port), await open(guard.addr.port)];
    const probe = await Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });
    await probe.write(get("/health"));
    const [health] = await readResponses(probe, 1);
    assert.match(health, /^HTTP\/1\.1 200[^]*GET \/health 0$/);
    await probe.write(get("/predict"));
    const { text } = await readAll(probe);
    assert.match(text, /^HTTP\/1\.1 503 [^]*only \/health, \/ready and \/metrics/);
    // The reserve holds one: with it taken too, the next connection is refused outright.
    await sleep(200);
    const probe2 = await Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });
    await probe2.write(get("/metrics"));
    assert.match((await readResponses(probe2, 1))[0], /GET \/metrics 0$/);
    const busy = await Deno.connect({ hostname: "127.0.0.1", port: guard.addr.port });
    assert.match((await readAll(busy)).text, /^HTTP\/1\.1 503 [^]*connection limit; retry/);
    probe2.close();
    for (const h of held) h.conn.close();
    await guard.drain(1000);
  });
});
