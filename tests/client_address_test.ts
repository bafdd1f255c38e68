/**
 * The client's address through the real `deno task start`: the guard hands
 * the TCP peer to the app, which logs it (client_address) and puts it on the
 * server span (client.address, client.port). X-Forwarded-For is believed only
 * from a peer in TRUSTED_PROXIES. Clients connect from 127.0.0.2 and
 * 127.0.0.3 (all of 127.0.0.0/8 is loopback) by binding their local address.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { startTask, waitReady } from "./support/gateway_process.ts";

/** Sends one GET over a socket bound to `localAddress`; resolves with the local port once answered. */
function getFrom(localAddress: string, port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    let localPort = 0;
    const socket = net.connect({ host: "127.0.0.1", port, localAddress }, () => {
      localPort = socket.localPort!;
      const lines = ["GET /info HTTP/1.1", "Host: 127.0.0.1", "Connection: close"];
      for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
      socket.write(lines.join("\r\n") + "\r\n\r\n");
    });
    let text = "";
    socket.on("data", (d) => text += d.toString());
    socket.on("error", reject);
    socket.on("close", () => {
      if (!text.startsWith("HTTP/1.1 200")) reject(new Error(`Unexpected answer: ${text.slice(0, 100)}`));
      else resolve(localPort);
    });
  });
}

interface OtlpSpan {
  name: string;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
}

/** A real OTLP/HTTP receiver on loopback, keeping the spans the gateway exports. */
function otlpReceiver() {
  const spans: OtlpSpan[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json();
    for (const rs of body.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
    }
    return Response.json({});
  });
  return { endpoint: `http://127.0.0.1:${server.addr.port}`, spans, close: () => server.shutdown() };
}

function attributes(span: OtlpSpan): Record<string, unknown> {
  return Object.fromEntries(span.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
}

Deno.test("the access log and the server span carry the client's address", async (t) => {
  const receiver = otlpReceiver();
  const server = await startTask({
    MODEL_SOURCE: "synthetic",
    TRUSTED_PROXIES: "127.0.0.2",
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
  });
  try {
    await waitReady(server.port, 120_000);
    const plainPort = await getFrom("127.0.0.2", server.port, { "X-Request-ID": "plain" });
    const spoofPort = await getFrom("127.0.0.3", server.port, {
      "X-Request-ID": "spoofed",
      "X-Forwarded-For": "203.0.113.7",
    });
    await getFrom("127.0.0.2", server.port, { "X-Request-ID": "proxied", "X-Forwarded-For": "203.0.113.7" });
    // SIGTERM flushes the access log and the span exporter.
    server.child.kill("SIGTERM");
    assert.equal((await server.status).code, 0, server.stderr());
    const access = (id: string) =>
      server.lines.find((l) => l.logger === "inference-gateway.http" && l.request_id === id);
    const span = (id: string) => {
      const s = receiver.spans.find((s) => attributes(s)["inference_gateway.request_id"] === id);
      assert.ok(s, `a span for ${id}`);
      return attributes(s);
    };

    await t.step("a client connecting from 127.0.0.2 is logged as 127.0.0.2", () => {
      assert.equal(access("plain")?.client_address, "127.0.0.2");
      const s = span("plain");
      assert.equal(s["client.address"], "127.0.0.2");
      assert.equal(Number(s["client.port"]), plainPort);
    });

    await t.step("a spoofed X-Forwarded-For from an untrusted peer is ignored", () => {
      assert.equal(access("spoofed")?.client_address, "127.0.0.3");
      const s = span("spoofed");
      assert.equal(s["client.address"], "127.0.0.3");
      assert.equal(Number(s["client.port"]), spoofPort);
    });

    await t.step("the same header from a trusted proxy names the client", () => {
      assert.equal(access("proxied")?.client_address, "203.0.113.7");
      const s = span("proxied");
      assert.equal(s["client.address"], "203.0.113.7");
      assert.equal(s["client.port"], undefined, "X-Forwarded-For carries no port");
      assert.equal(s["network.peer.address"], "127.0.0.2", "the proxy is the peer");
    });
  } finally {
    try {
      server.child.kill("SIGKILL");
    } catch { /* already exited */ }
    await server.status;
    await receiver.close();
  }
});

/** Sends raw `request` over a socket bound to `localAddress`; resolves with all the server sent until it closed. */
function rawFrom(localAddress: string, port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress }, () => socket.write(request));
    let text = "";
    const timer = setTimeout(() => socket.destroy(), 10_000);
    socket.on("data", (d) => text += d.toString());
    socket.on("error", reject);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

Deno.test("a local process cannot bypass the guard through the internal listener", async (t) => {
  const server = await startTask({ MODEL_SOURCE: "synthetic" });
  try {
    await waitReady(server.port, 120_000);
    const internalPort = server.lines.find((l) => typeof l.internal_port === "number")?.internal_port;
    assert.equal(typeof internalPort, "number", "the listening line names the internal port");
    const request = "GET /info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

    for (const from of ["127.0.0.1", "127.0.0.2"]) {
      await t.step(
        `a request from ${from} straight to the internal port is refused with a problem`,
        async () => {
          const text = await rawFrom(from, internalPort as number, request);
          assert.match(text, /^HTTP\/1\.1 403 /, text.slice(0, 200));
          assert.match(text, /content-type: application\/problem\+json/i);
          const body = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
          assert.equal(body.code, "forbidden");
          assert.equal(body.type, "urn:inference-gateway:problem:forbidden");
          assert.match(body.detail, new RegExp(`public port \\(${server.port}\\)`));
        },
      );
    }

    await t.step("the public port still serves", async () => {
      const text = await rawFrom("127.0.0.2", server.port, request);
      assert.match(text, /^HTTP\/1\.1 200 /, text.slice(0, 200));
    });
  } finally {
    server.child.kill("SIGTERM");
    await server.status;
  }
});
