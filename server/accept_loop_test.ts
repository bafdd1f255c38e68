/**
 * The accept loop against what really makes accept() fail: clients that reset before being accepted (from
 * a raw socket with SO_LINGER 0), and, through a listener that fails on cue, every other error class.
 */
import assert from "node:assert/strict";
import { sendResets } from "../tests/support/resets.ts";
import { ACCEPT_ERROR_REASONS, acceptErrorReason, acceptLoop, BACKOFF_MAX_MS } from "./accept_loop.ts";
import { guardConnections } from "./connection_guard.ts";

const os = (code: string, message: string) => Object.assign(new Error(message), { code });

Deno.test("accept errors are classified by what they concern", async (t) => {
  await t.step("a closed listener ends the loop", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    listener.close();
    const err = await listener.accept().catch((e) => e);
    assert.equal(acceptErrorReason(err), undefined);
  });
  await t.step("one connection's failure is counted under its reason", () => {
    assert.equal(acceptErrorReason(new Deno.errors.NotConnected("os error 107")), "reset");
    assert.equal(acceptErrorReason(new Deno.errors.ConnectionReset("reset")), "reset");
    assert.equal(acceptErrorReason(new Deno.errors.ConnectionAborted("os error 103")), "aborted");
    assert.equal(acceptErrorReason(os("EMFILE", "Too many open files (os error 24)")), "descriptors");
    assert.equal(
      acceptErrorReason(os("ENFILE", "Too many open files in system (os error 23)")),
      "descriptors",
    );
    assert.equal(acceptErrorReason(new Error("something new")), "other");
    assert.equal(acceptErrorReason("not even an Error"), "other");
  });
  await t.step("each reason is in the metric's vocabulary", () => {
    assert.deepEqual([...ACCEPT_ERROR_REASONS].sort(), ["aborted", "descriptors", "other", "reset"]);
  });
});

/** A listener whose accept() fails with each of `errors` in turn, then hangs until closed. */
function scriptedListener(errors: unknown[]): Deno.Listener & { accepts: number[] } {
  let closed: (() => void) | undefined;
  const accepts: number[] = [];
  return {
    accepts,
    accept() {
      accepts.push(performance.now());
      const err = errors.shift();
      if (err !== undefined) return Promise.reject(err);
      return new Promise((_, reject) => closed = () => reject(new Deno.errors.BadResource("closed")));
    },
    close() {
      closed?.();
    },
  } as unknown as Deno.Listener & { accepts: number[] };
}

Deno.test("the loop outlives every accept error and backs off only on a shortage", async (t) => {
  await t.step("resets and aborts are retried at once", async () => {
    const errors = [
      ...Array.from({ length: 50 }, () => new Deno.errors.NotConnected("os error 107")),
      new Deno.errors.ConnectionAborted("os error 103"),
    ];
    const listener = scriptedListener(errors);
    const seen: string[] = [];
    let closing = false;
    const loop = acceptLoop(listener, {
      closing: () => closing,
      onConnection: () => {},
      onError: (reason) => seen.push(reason),
    });
    while (listener.accepts.length < 52) await new Promise((r) => setTimeout(r, 1));
    assert.deepEqual(seen, [...Array(50).fill("reset"), "aborted"]);
    closing = true;
    listener.close();
    await loop;
  });

  await t.step("EMFILE waits, doubling, and the loop is still accepting after", async () => {
    const listener = scriptedListener(Array.from({ length: 6 }, () => os("EMFILE", "os error 24")));
    let closing = false;
    const loop = acceptLoop(listener, { closing: () => closing, onConnection: () => {} });
    while (listener.accepts.length < 7) await new Promise((r) => setTimeout(r, 5));
    const gaps = listener.accepts.slice(1).map((at, i) => at - listener.accepts[i]);
    // 5, 10, 20, 40, 80, 160 ms: each wait at least its nominal value (timers fire late, never early).
    gaps.forEach((gap, i) => assert.ok(gap >= 5 * 2 ** i - 1, `wait ${i} was ${gap} ms`));
    assert.ok(gaps.every((gap) => gap < BACKOFF_MAX_MS * 10), "bounded");
    closing = true;
    listener.close();
    await loop;
  });

  await t.step("a listener closed by someone else is an error, not a quiet end", async () => {
    const listener = scriptedListener([]);
    const loop = acceptLoop(listener, { closing: () => false, onConnection: () => {} });
    listener.close();
    await assert.rejects(loop, /closed unexpectedly/);
  });

  await t.step("a throwing callback neither stops the loop nor leaks the connection", async () => {
    const real = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let closing = false;
    const seen: string[] = [];
    let calls = 0;
    const loop = acceptLoop(real, {
      closing: () => closing,
      onConnection: (conn) => {
        if (++calls === 1) throw new Error("boom");
        conn.close();
      },
      onError: (reason) => seen.push(reason),
    });
    for (let i = 0; i < 2; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: real.addr.port });
      // Closed by the loop in both cases: the read ends.
      assert.equal(await c.read(new Uint8Array(1)), null);
      c.close();
    }
    assert.deepEqual(seen, ["other"]);
    closing = true;
    real.close();
    await loop;
  });
});

Deno.test("300 resets before accept leave the public port answering", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => new Response("ok"));
  const counts = new Map<string, number>();
  const guard = guardConnections({
    hostname: "127.0.0.1",
    port: 0,
    upstream: { hostname: "127.0.0.1", port: server.addr.port },
    maxConnections: 64,
    headerTimeoutMs: 5000,
    idleTimeoutMs: 5000,
    onAcceptError: (reason) => counts.set(reason, (counts.get(reason) ?? 0) + 1),
  });
  try {
    await sendResets(guard.addr.port, 300);
    const response = await fetch(`http://127.0.0.1:${guard.addr.port}/`, {
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "ok");
    // Python resets faster than the guard accepts: most of the 300 were gone before accept().
    assert.ok((counts.get("reset") ?? 0) > 0, `resets counted: ${JSON.stringify([...counts])}`);
    assert.deepEqual([...counts.keys()].filter((k) => k !== "reset"), []);
  } finally {
    await guard.drain(100);
    await server.shutdown();
  }
});
