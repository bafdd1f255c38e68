/**
 * Faults around the real `deno task start`: the trace collector down or
 * hanging, stdout blocked, and a model file that is missing or has the wrong
 * shape. Requests keep succeeding where they can, failures are counted and
 * logged once, and a broken model stops startup with a clear message.
 * (A worker dying mid-batch: model/worker_runner_test.ts.)
 */
import assert from "node:assert/strict";
import * as onnxModule from "onnx-proto";
import { freePort, metricValue, runUntilExit, startTask, waitReady } from "./support/gateway_process.ts";
import { fixture } from "./support/helpers.ts";

const ROOT = new URL("../", import.meta.url);

async function predict(port: number, bytes: Uint8Array): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}/predict`, {
    method: "POST",
    body: bytes as Uint8Array<ArrayBuffer>,
    headers: { "content-type": "image/jpeg" },
  });
  await res.body?.cancel();
  return { status: res.status, ms: performance.now() - started };
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

/** A collector that accepts connections and never answers. */
function hangingCollector() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch { /* closed */ }
  })();
  return {
    endpoint: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    close() {
      listener.close();
      for (const c of held) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
    },
  };
}

for (const mode of ["down", "hanging"] as const) {
  Deno.test(`the trace collector ${mode}: predictions succeed, export failures are counted and logged once`, async () => {
    const collector = mode === "hanging" ? hangingCollector() : undefined;
    // "down": a port nothing listens on, so every export is refused.
    const endpoint = collector?.endpoint ?? `http://127.0.0.1:${freePort()}`;
    const server = await startTask({
      MODEL_SOURCE: "synthetic",
      PORT: String(freePort()),
      LOG_LEVEL: "warning",
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_TRACES_SAMPLER: "always_on",
    });
    try {
      await waitReady(server.port, 120_000);
      const coffee = await fixture("images/coffee.jpg");
      const latencies: number[] = [];
      // Long enough for several export attempts (1 s batches, 5 s export timeout).
      const end = Date.now() + 7_000;
      while (Date.now() < end) {
        const r = await predict(server.port, coffee);
        assert.equal(r.status, 200);
        latencies.push(r.ms);
      }
      latencies.sort((a, b) => a - b);
      const p99 = latencies[Math.floor(latencies.length * 0.99)];
      assert.ok(p99 < 1000, `p99 ${p99} ms: export trouble must not slow requests`);
      const failed = await until(
        async () =>
          await metricValue(server.port, /^telemetry_export_failures_total\{signal="traces"\} (\d+)/m) > 0,
        15_000,
      );
      assert.ok(failed, "export failures are counted");
      const warnings = server.lines.filter((l) => String(l.message).startsWith("Trace export failed"));
      assert.equal(warnings.length, 1, "logged once");
      const health = await fetch(`http://127.0.0.1:${server.port}/health`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
    } finally {
      server.child.kill("SIGTERM");
      const status = await server.status;
      collector?.close();
      assert.equal(status.code, 0, `exits cleanly even with the collector ${mode}: ${server.stderr()}`);
    }
  });
}

Deno.test("stdout blocked: the gateway keeps answering and its log catches up afterwards", async () => {
  const port = freePort();
  const child = new Deno.Command("deno", {
    args: ["task", "--quiet", "start"],
    cwd: ROOT,
    env: {
      NO_COLOR: "1",
      HOST: "127.0.0.1",
      PORT: String(port),
      MODEL_SOURCE: "synthetic",
      LOG_LEVEL: "debug",
    },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    await waitReady(port, 120_000);
    // Nobody reads stdout now: the pipe (64 KiB) fills within a few hundred lines.
    const coffee = await fixture("images/coffee.jpg");
    const latencies: number[] = [];
    for (let i = 0; i < 300; i++) {
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
      if (i % 10 === 0) {
        const r = await predict(port, coffee);
        assert.equal(r.status, 200);
        latencies.push(r.ms);
      }
    }
    assert.ok(Math.max(...latencies) < 2000, `predictions stayed fast: ${Math.max(...latencies)} ms`);
    // Unblock: the buffered lines arrive, access-log lines for the requests above among them.
    let text = "";
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (text.match(/"route":"\/health"/g)?.length ?? 0) < 300) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    reader.releaseLock();
    const lines = text.split("\n").filter((l) => l.startsWith("{"));
    assert.ok(lines.every((l) => JSON.parse(l)), "every line is whole JSON");
    assert.ok((text.match(/"route":"\/health"/g)?.length ?? 0) >= 300, "no access-log line was lost");
    child.kill("SIGTERM");
    // Keep draining so the shutdown lines can be written.
    await child.stdout.cancel().catch(() => {});
    assert.equal((await child.status).code, 0);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
  }
});

/** A tiny valid ONNX model whose input is [N,3,32,32] and output [N,3]: the wrong shape for ResNet-50. */
function wrongShapeModel(): Uint8Array {
  const proto = (onnxModule as unknown as { default: typeof onnxModule }).default.onnx;
  const tensor = (name: string, dims: Array<number | string>) => ({
    name,
    type: {
      tensorType: {
        elemType: proto.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }) },
      },
    },
  });
  return proto.ModelProto.encode(proto.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "wrong_shape",
      node: [
        { opType: "GlobalAveragePool", input: ["input"], output: ["pooled"] },
        { opType: "Flatten", input: ["pooled"], output: ["logits"] },
      ],
      input: [tensor("input", ["N", 3, 32, 32])],
      output: [tensor("logits", ["N", 3])],
    },
  })).finish();
}

async function startupFailure(env: Record<string, string>): Promise<{ code: number; fatal: string }> {
  const { code, fatal } = await runUntilExit(env);
  return { code, fatal: String(fatal?.error ?? "") };
}

Deno.test("a missing or wrong-shaped model stops startup with a clear message", async (t) => {
  await t.step("missing file", async () => {
    const r = await startupFailure({ MODEL_SOURCE: "file", MODEL_PATH: "./models/does-not-exist.onnx" });
    assert.equal(r.code, 1);
    assert.match(r.fatal, /MODEL_PATH .*does-not-exist\.onnx does not exist/);
  });

  await t.step("valid ONNX with the wrong input shape", async () => {
    await Deno.mkdir(new URL("models/", ROOT), { recursive: true });
    const path = "./models/wrong-shape-test.onnx";
    await Deno.writeFile(new URL(path, ROOT), wrongShapeModel());
    try {
      const r = await startupFailure({ MODEL_SOURCE: "file", MODEL_PATH: path });
      assert.equal(r.code, 1);
      assert.match(r.fatal, /has shape \[[^\]]*3,32,32\]; expected/);
    } finally {
      await Deno.remove(new URL(path, ROOT));
    }
  });
});
