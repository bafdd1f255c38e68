/**
 * Slow and idle clients against the real `deno task start`: a connection that
 * never sends, one that dribbles its headers, one that trickles its body, and
 * more connections than the cap. None may hold resources past its limit, each
 * is counted, and the gateway keeps serving.
 */
import assert from "node:assert/strict";
import { freePort, metricValue, startTask, waitReady } from "./support/gateway_process.ts";
import { fixture } from "./support/helpers.ts";
import { PROBE_RESERVE } from "../server/serve.ts";

const HEADER_TIMEOUT_MS = 1500;
const BODY_TIMEOUT_MS = 1000;
const MAX_CONNECTIONS = 4;
const encoder = new TextEncoder();

/** Reads until the server closes the connection (or `limitMs` passes); returns what came and when. */
async function readToClose(
  conn: Deno.Conn,
  limitMs: number,
): Promise<{ text: string; ms: number; closed: boolean }> {
  const started = performance.now();
  const chunks: string[] = [];
  const buf = new Uint8Array(4096);
  const decoder = new TextDecoder();
  const timer = setTimeout(() => conn.close(), limitMs);
  let closed = false;
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) {
        closed = true;
        break;
      }
      chunks.push(decoder.decode(buf.subarray(0, n)));
    }
  } catch {
    // Our own close at the limit (or a reset from the server).
    closed = performance.now() - started < limitMs;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* already closed */ }
  }
  return { text: chunks.join(""), ms: performance.now() - started, closed };
}

Deno.test("slow and idle clients cannot hold the gateway", async (t) => {
  const server = await startTask({
    MODEL_SOURCE: "synthetic",
    PORT: String(freePort()),
    LOG_LEVEL: "warning",
    HEADER_TIMEOUT_MS: String(HEADER_TIMEOUT_MS),
    IDLE_TIMEOUT_MS: "2000",
    BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS),
    MAX_CONNECTIONS: String(MAX_CONNECTIONS),
  });
  const port = server.port;
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await waitReady(port, 120_000);

    await t.step("a connection that never sends is closed at the header timeout", async () => {
      const r = await readToClose(await connect(), 10_000);
      assert.ok(r.closed, "the server closed it");
      assert.ok(
        r.ms >= HEADER_TIMEOUT_MS - 100 && r.ms < HEADER_TIMEOUT_MS + 2000,
        `closed after ${r.ms} ms`,
      );
    });

    await t.step("headers dribbled a byte at a time are cut off at the header timeout too", async () => {
      const conn = await connect();
      const request = encoder.encode("GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + "a".repeat(200));
      let stop = false;
      (async () => {
        for (let i = 0; i < request.length && !stop; i++) {
          await conn.write(request.subarray(i, i + 1)).catch(() => stop = true);
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const r = await readToClose(conn, 10_000);
      stop = true;
      assert.ok(r.closed);
      assert.ok(r.ms < HEADER_TIMEOUT_MS + 2000, `closed after ${r.ms} ms while bytes kept coming`);
      assert.equal(r.text, "", "no response to an unfinished request");
    });

    await t.step("a body trickled a byte at a time is answered 408 at the body timeout", async () => {
      const conn = await connect();
      await conn.write(encoder.encode(
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n",
      ));
      let stop = false;
      (async () => {
        while (!stop) {
          await conn.write(encoder.encode("x")).catch(() => stop = true);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const started = performance.now();
      const buf = new Uint8Array(4096);
      let text = "";
      let ms = 0;
      // Until the whole response is in: its head and body may come in separate reads.
      while (!/\r\n\r\n[^]*"code"[^]*\}$/.test(text)) {
        const n = await conn.read(buf);
        if (n === null) break;
        if (!text) ms = performance.now() - started;
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
      stop = true;
      conn.close();
      assert.match(text, /^HTTP\/1\.1 408/);
      assert.match(text, /application\/problem\+json/);
      assert.match(text, /"code":"body_timeout"/);
      assert.ok(ms >= BODY_TIMEOUT_MS - 100 && ms < BODY_TIMEOUT_MS + 2000, `answered after ${ms} ms`);
    });

    await t.step("past the connection cap new connections get 503 at once", async () => {
      // Let pooled keep-alive connections from earlier steps reach their idle timeout.
      await new Promise((r) => setTimeout(r, 2500));
      // MAX_CONNECTIONS, then the reserve kept for probes (a silent connection takes a slot there too).
      const held = await Promise.all(Array.from({ length: MAX_CONNECTIONS + PROBE_RESERVE }, connect));
      await new Promise((r) => setTimeout(r, 100));
      const extra = await readToClose(await connect(), 5_000);
      assert.match(extra.text, /^HTTP\/1\.1 503/);
      assert.match(extra.text, /"code":"overloaded"/);
      assert.ok(extra.ms < 500, `refused in ${extra.ms} ms`);
      // The held ones are closed at the header timeout; then the gateway takes new clients again.
      const closed = await Promise.all(held.map((c) => readToClose(c, 10_000)));
      assert.ok(closed.every((c) => c.closed));
    });

    await t.step("every refusal is counted, and the gateway still predicts", async () => {
      const refused = (reason: string) =>
        metricValue(port, new RegExp(`^http_connections_refused_total\\{reason="${reason}"\\} (\\d+)`, "m"));
      assert.ok(await refused("header_timeout") >= 2 + MAX_CONNECTIONS + PROBE_RESERVE);
      assert.ok(await refused("connection_limit") >= 1);
      assert.ok(
        await metricValue(port, /^requests_rejected_total\{reason="body_timeout"\} (\d+)/m) >= 1,
        "the 408 is a counted rejection",
      );
      const res = await fetch(`http://127.0.0.1:${port}/predict`, {
        method: "POST",
        body: await fixture("images/coffee.jpg"),
        headers: { "content-type": "image/jpeg", connection: "close" },
      });
      assert.equal(res.status, 200);
      assert.equal((await res.json()).image.width, 600);
      const reasons = server.lines
        .filter((l) => String(l.message).startsWith("Closed a client connection"))
        .map((l) => String(l.reason));
      assert.ok(reasons.includes("header_timeout") && reasons.includes("connection_limit"), String(reasons));
      assert.equal(new Set(reasons).size, reasons.length, "logged once per reason, not per event");
    });
  } finally {
    server.child.kill("SIGTERM");
    const status = await server.status;
    assert.equal(status.code, 0, server.stderr());
  }
});
