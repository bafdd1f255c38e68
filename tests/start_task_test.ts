/**
 * End to end: the real `deno task start`, with exactly its scoped permissions,
 * the full-size synthetic ResNet-50 and a real photo over real HTTP.
 */
import assert from "node:assert/strict";
import { runUntilExit, startTask, waitReady } from "./support/gateway_process.ts";
import { fixture } from "./support/helpers.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("deno task start serves a real photo and shuts down cleanly", async (t) => {
  const server = await startTask({ MODEL_SOURCE: "synthetic" });
  try {
    await t.step("liveness answers before and after the model is ready", async () => {
      const res = await fetch(`http://127.0.0.1:${server.port}/health`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      await waitReady(server.port, 120_000);
    });

    await t.step("announces synthetic weights loudly at startup", () => {
      const warn = server.lines.find((l) =>
        l.level === "WARN" && String(l.message).includes("SYNTHETIC WEIGHTS")
      );
      assert.ok(warn, "a WARN line announces synthetic weights");
    });

    await t.step("predicts a real photo over HTTP", async () => {
      const form = new FormData();
      form.append("file", new Blob([await fixture("images/coffee.jpg")]), "coffee.jpg");
      const res = await fetch(`http://127.0.0.1:${server.port}/predict`, { method: "POST", body: form });
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.weights, "synthetic");
      assert.equal(body.top_k.length, 5);
      assert.equal(body.image.width, 600);
    });

    await t.step("SIGTERM drains and exits 0", async () => {
      server.child.kill("SIGTERM");
      const status = await server.status;
      assert.equal(status.code, 0, server.stderr());
      assert.ok(server.lines.some((l) => l.message === "Shutdown complete"));
    });

    await t.step("stdout held JSON lines only, messages rendered for people", () => {
      assert.deepEqual(server.notJson, [], "every stdout line is a JSON object");
      assert.ok(server.lines.length > 5);
      for (const line of server.lines) {
        for (const field of ["@timestamp", "level", "logger", "message"]) assert.ok(field in line, field);
      }
      const access = server.lines.find((l) =>
        l.logger === "inference-gateway.http" && l.route === "/predict"
      );
      assert.equal(access?.message, "POST /predict 200");
      assert.equal(access?.message_template, "{method} {route} {status}");
    });

    await t.step("nothing else was printed: no runtime notices, no native library warnings", () => {
      // Deno 2.9 prints a notice when a handler reads request.signal, and onnxruntime its telemetry
      // warnings; either would land in the log stream of a container.
      assert.equal(server.stderr(), "");
    });
  } finally {
    try {
      server.child.kill("SIGKILL");
    } catch { /* already exited */ }
    await server.status;
  }
});

Deno.test("deno task start refuses a bad configuration with a clear message", async () => {
  const out = await runUntilExit({ TOP_K: "50" });
  assert.equal(out.code, 2);
  assert.match(out.stderr, /TOP_K="50" is invalid: expected an integer from 1 to 20/);
});

Deno.test("deno task start stops with a clear message when the model file is broken", async () => {
  await Deno.mkdir(new URL("models/", ROOT), { recursive: true });
  const path = "./models/broken-test.onnx";
  await Deno.writeTextFile(new URL(path, ROOT), "this is not an ONNX model");
  try {
    const { code, fatal } = await runUntilExit({ MODEL_SOURCE: "file", MODEL_PATH: path });
    assert.equal(code, 1);
    assert.ok(fatal, "a FATAL line explains the failure");
    assert.match(String(fatal.message), /Model failed to load/);
    assert.match(String(fatal.error), /Cannot load ONNX model .*broken-test.onnx/);
  } finally {
    await Deno.remove(new URL(path, ROOT));
  }
});

/** A real OTLP/HTTP receiver on loopback: collects the spans the exporter POSTs (JSON encoding). */
function otlpReceiver() {
  const spans: Array<{ traceId: string; name: string; parentSpanId?: string }> = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/traces") {
      return new Response(null, { status: 404 });
    }
    const body = await req.json();
    for (const rs of body.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) spans.push(s);
    }
    return Response.json({});
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    spans,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("deno task start exports traces to an OTLP/HTTP endpoint, linked to logs by trace id", async () => {
  await using receiver = otlpReceiver();
  const server = await startTask({
    MODEL_SOURCE: "synthetic",
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
  });
  try {
    await waitReady(server.port, 120_000);
    const res = await fetch(`http://127.0.0.1:${server.port}/predict`, {
      method: "POST",
      body: await fixture("images/coffee.jpg"),
      headers: { "x-request-id": "e2e-otlp-1" },
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const traceId = res.headers.get("traceparent")!.split("-")[1];
    // SIGTERM flushes the batch processor before exit.
    server.child.kill("SIGTERM");
    assert.equal((await server.status).code, 0, server.stderr());
    const mine = receiver.spans.filter((s) => s.traceId === traceId);
    assert.deepEqual(
      mine.map((s) => s.name).sort(),
      ["POST /predict", "decode", "inference", "postprocess", "preprocess", "queue_wait", "read_body"],
    );
    const access = server.lines.find((l) =>
      l.logger === "inference-gateway.http" && l.request_id === "e2e-otlp-1"
    );
    assert.equal(access?.trace_id, traceId);
  } finally {
    try {
      server.child.kill("SIGKILL");
    } catch { /* already exited */ }
    await server.status;
  }
});
