import assert from "node:assert/strict";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { ExportResultCode } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";
import { ModelState } from "../model/runtime/state.ts";
import { createApp } from "../routes/app.ts";
import {
  brokenRunner,
  captureLogs,
  fixture,
  readyApp,
  sharedClassifier,
  stateWithRunner,
  testConfig,
  testTelemetry,
} from "../tests/support/helpers.ts";
import { UNMATCHED_ROUTE } from "./middleware.ts";
import { createTelemetry } from "./telemetry.ts";

const OPENMETRICS = "application/openmetrics-text; version=1.0.0";

async function flushed(
  spans: { getFinishedSpans(): ReadableSpan[] },
  telemetry: { tracing: { forceFlush(): Promise<void> } },
) {
  await telemetry.tracing.forceFlush();
  return spans.getFinishedSpans();
}

Deno.test("traces", async (t) => {
  await captureLogs("info");

  await t.step(
    "a prediction is one server span with the six stage spans as children (queue_wait included)",
    async () => {
      const { app, spans, telemetry } = await readyApp();
      const res = await app.request("/predict", { method: "POST", body: await fixture("images/coffee.jpg") });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      const all = await flushed(spans, telemetry);
      const server = all.find((s) => s.kind === SpanKind.SERVER)!;
      assert.equal(server.name, "POST /predict");
      assert.equal(server.attributes["http.request.method"], "POST");
      assert.equal(server.attributes["http.route"], "/predict");
      assert.equal(server.attributes["http.response.status_code"], 200);
      assert.equal(server.attributes["url.path"], "/predict");
      assert.notEqual(server.status.code, SpanStatusCode.ERROR);
      const children = all.filter((s) => s.parentSpanContext?.spanId === server.spanContext().spanId);
      assert.deepEqual(
        children.map((s) => s.name),
        ["read_body", "decode", "preprocess", "queue_wait", "inference", "postprocess"],
      );
      const byName = Object.fromEntries(children.map((s) => [s.name, s.attributes]));
      assert.equal(byName.decode["image.format"], "jpeg");
      assert.equal(byName.decode["image.width"], 600);
      assert.equal(byName.decode["image.height"], 400);
      assert.equal(byName.inference["model.name"], "resnet50");
      assert.equal(byName.inference["inference.batch_size"], 1);
      assert.equal(typeof byName.postprocess["prediction.class_id"], "number");
      assert.equal(typeof byName.postprocess["prediction.score"], "number");
      const traceId = server.spanContext().traceId;
      for (const s of all.filter((s) => s.name !== "inference_batch")) {
        assert.equal(s.spanContext().traceId, traceId, `${s.name} belongs to the request's trace`);
      }
      assert.equal(byName.inference["inference.batch_size"], 1);
      // The batch is a trace of its own that links to each request it served.
      const batch = all.find((s) => s.name === "inference_batch")!;
      assert.ok(batch.links.some((l) => l.context.traceId === traceId));
      assert.equal(batch.attributes["inference.batch_size"], 1);
    },
  );

  await t.step("response headers carry traceparent, X-Request-ID and Server-Timing", async () => {
    const { app } = await readyApp();
    const res = await app.request("/predict", { method: "POST", body: await fixture("images/coffee.jpg") });
    await res.body?.cancel();
    assert.match(res.headers.get("traceparent")!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    assert.ok(res.headers.get("x-request-id"));
    const timing = res.headers.get("server-timing")!;
    for (const stage of ["read_body", "decode", "preprocess", "inference", "postprocess", "total"]) {
      assert.match(timing, new RegExp(`${stage};dur=\\d+\\.\\d+`));
    }
  });

  await t.step("an incoming traceparent is continued", async () => {
    const { app, spans, telemetry } = await readyApp();
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const res = await app.request("/health", {
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, tracestate: "vendor=abc" },
    });
    assert.equal(res.headers.get("traceparent")!.split("-")[1], traceId);
    const server = (await flushed(spans, telemetry)).find((s) => s.kind === SpanKind.SERVER)!;
    assert.equal(server.spanContext().traceId, traceId);
    assert.equal(server.parentSpanContext?.spanId, "00f067aa0ba902b7");
    assert.equal(server.spanContext().traceState?.get("vendor"), "abc");
  });

  await t.step("4xx does not mark the server span as an error; the failing stage is", async () => {
    const { app, spans, telemetry } = await readyApp();
    const res = await app.request("/predict", {
      method: "POST",
      body: (await fixture("images/coffee.jpg")).slice(0, 600),
    });
    assert.equal(res.status, 422);
    await res.body?.cancel();
    const all = await flushed(spans, telemetry);
    const server = all.find((s) => s.kind === SpanKind.SERVER)!;
    assert.notEqual(server.status.code, SpanStatusCode.ERROR);
    assert.equal(server.attributes["inference_gateway.reject_reason"], "undecodable");
    const decode = all.find((s) => s.name === "decode")!;
    assert.equal(decode.status.code, SpanStatusCode.ERROR);
    assert.equal(decode.events[0]?.name, "exception");
  });

  await t.step("5xx marks the server span as an error", async () => {
    const config = testConfig();
    const { telemetry, spans } = testTelemetry(config);
    const app = createApp({ config, state: await brokenState(), telemetry });
    const res = await app.request("/predict", { method: "POST", body: await fixture("images/coffee.jpg") });
    assert.equal(res.status, 500);
    await res.body?.cancel();
    const server = (await flushed(spans, telemetry)).find((s) => s.kind === SpanKind.SERVER)!;
    assert.equal(server.status.code, SpanStatusCode.ERROR);
    assert.equal(server.attributes["error.type"], "500");
  });

  await t.step(
    "with sampling at 0, failed and slow requests are still exported, others are not",
    async () => {
      const config = testConfig({ OTEL_TRACES_SAMPLER_ARG: "0", LATENCY_OBJECTIVE_MS: "1" });
      const fast = testConfig({ OTEL_TRACES_SAMPLER_ARG: "0", LATENCY_OBJECTIVE_MS: "600000" });
      const coffee = await fixture("images/coffee.jpg");

      const quiet = testTelemetry(fast);
      const ok = createApp({ config: fast, state: await readyState(), telemetry: quiet.telemetry });
      await (await ok.request("/predict", { method: "POST", body: coffee })).body?.cancel();
      assert.equal((await flushed(quiet.spans, quiet.telemetry)).length, 0);
      assert.ok(quiet.telemetry.tracing.stats.spansDropped >= 6);

      const slow = testTelemetry(config);
      const slowApp = createApp({ config, state: await readyState(), telemetry: slow.telemetry });
      await (await slowApp.request("/predict", { method: "POST", body: coffee })).body?.cancel();
      const kept = await flushed(slow.spans, slow.telemetry);
      // Server span and its six stages; the batch span is a trace of its own, linked.
      assert.equal(
        kept.filter((s) => s.name !== "inference_batch").length,
        7,
        "the slow request's whole trace",
      );

      const failing = testTelemetry(fast);
      const failApp = createApp({ config: fast, state: await brokenState(), telemetry: failing.telemetry });
      await (await failApp.request("/predict", { method: "POST", body: coffee })).body?.cancel();
      assert.ok(
        (await flushed(failing.spans, failing.telemetry)).some((s) => s.status.code === SpanStatusCode.ERROR),
      );
    },
  );

  await t.step("a failing exporter never fails a request; failures are counted and logged once", async () => {
    const logs = await captureLogs("info");
    const config = testConfig();
    const failing: SpanExporter = {
      export: (_spans, done) => done({ code: ExportResultCode.FAILED, error: new Error("collector down") }),
      shutdown: () => Promise.resolve(),
    };
    const telemetry = createTelemetry(config, "test", { exporter: failing, scheduledDelayMillis: 1 });
    const app = createApp({ config, state: await readyState(), telemetry });
    for (let i = 0; i < 3; i++) {
      const res = await app.request("/predict", { method: "POST", body: await fixture("images/coffee.jpg") });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      // The flush itself reports the export failure; requests must not.
      await telemetry.tracing.forceFlush().catch(() => {});
    }
    assert.ok(telemetry.tracing.stats.exportFailures >= 3);
    assert.equal(logs.filter((l) => String(l.rawMessage).startsWith("Trace export failed")).length, 1);
    const metrics = await (await app.request("/metrics")).text();
    assert.match(metrics, /telemetry_export_failures_total\{signal="traces"\} [1-9]/);
  });
});

Deno.test("the series the SLOs and dashboards read exist at zero before the first request", async () => {
  await captureLogs("info");
  const config = testConfig();
  const { telemetry } = testTelemetry(config);
  const app = createApp({ config, state: new ModelState(), telemetry });
  const text = await (await app.request("/metrics")).text();
  for (const route of ["/predict", "/v2/models/:name/infer", "/v2/models/:name/versions/:version/infer"]) {
    const labels = `http_request_method="POST",http_route="${route.replaceAll("/", "\\/")}"`;
    assert.match(text, new RegExp(`_count\\{${labels},http_response_status_code="200"\\} 0$`, "m"), route);
    for (const status of ["500", "503", "504"]) {
      assert.match(
        text,
        new RegExp(
          `_count\\{${labels},http_response_status_code="${status}",error_type="${status}"\\} 0$`,
          "m",
        ),
        `${route} ${status}`,
      );
    }
    // The latency SLI's boundary is among the zeroed buckets.
    assert.match(
      text,
      new RegExp(`_bucket\\{le="0\\.3",${labels},http_response_status_code="200"\\} 0$`, "m"),
    );
  }
  for (const reason of ["overloaded", "timeout", "not_ready", "internal", "too_large"]) {
    assert.match(text, new RegExp(`^requests_rejected_total\\{reason="${reason}"\\} 0$`, "m"), reason);
  }
  // Nothing else is created ahead (the scrape itself is recorded after it renders).
  const counts = text.split("\n").filter((l) => l.startsWith("http_server_request_duration_seconds_count{"));
  assert.equal(counts.length, 3 * 4);
  assert.ok(counts.every((l) => l.endsWith(" 0")), counts.join("\n"));
});

Deno.test("metrics", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const coffee = await fixture("images/coffee.jpg");
  for (let i = 0; i < 2; i++) {
    await (await app.request("/predict", { method: "POST", body: coffee })).body?.cancel();
  }
  await (await app.request("/predict", { method: "POST", body: "GIF89a" })).body?.cancel();
  await (await app.request("/predict", { method: "POST", body: new Uint8Array(0) })).body?.cancel();

  await t.step("the catalogue is present in the Prometheus text format", async () => {
    const res = await app.request("/metrics");
    assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    for (
      const name of [
        "http_server_request_duration_seconds_bucket",
        "http_server_active_requests",
        "inference_stage_duration_seconds_bucket",
        "requests_rejected_total",
        "image_input_bytes_bucket",
        "image_input_pixels_bucket",
        "prediction_confidence_bucket",
        "model_load_duration_seconds",
        "model_ready 1",
        "model_info{",
        "build_info{",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "nodejs_eventloop_lag_p99_seconds",
        "nodejs_heap_size_used_bytes",
        "telemetry_export_failures_total",
        "inference_batch_size_bucket",
        "inference_queue_depth",
        "inference_queue_limit",
        "inference_workers",
        "inference_worker_restarts_total",
      ]
    ) assert.ok(text.includes(name), `missing ${name}`);
    assert.ok(!text.includes("process_open_fds"), "metrics that are always 0 under Deno are dropped");
    assert.ok(!/process_resident_memory_bytes 0\n/.test(text), "resident memory is real");
    // The objective (300 ms) is a bucket boundary, so the latency SLI is exact.
    assert.match(
      text,
      /http_server_request_duration_seconds_bucket\{le="0\.3",http_request_method="POST",http_route="\/predict",http_response_status_code="200"\}/,
    );
    assert.match(
      text,
      /http_server_request_duration_seconds_count\{http_request_method="POST",http_route="\/predict",http_response_status_code="200"\} 2/,
    );
    assert.match(text, /requests_rejected_total\{reason="unsupported_media_type"\} 1/);
    assert.match(text, /requests_rejected_total\{reason="missing_file"\} 1/);
    // Every request reads its body; only the two valid images reach the later stages.
    assert.match(text, /inference_stage_duration_seconds_count\{stage="read_body"\} 4/);
    for (const stage of ["decode", "preprocess", "inference", "postprocess"]) {
      assert.match(text, new RegExp(`inference_stage_duration_seconds_count\\{stage="${stage}"\\} 2`), stage);
    }
    assert.match(text, /prediction_confidence_count 2/);
    assert.match(text, /inference_batch_size_count 2/);
    assert.match(text, /inference_queue_depth 0/);
    assert.match(text, /inference_workers 1/);
    assert.match(
      text,
      /model_info\{name="resnet50",version="[0-9a-f]{12}",weights="synthetic",precision="fp32",sha256="[0-9a-f]{64}"/,
    );
  });

  await t.step("OpenMetrics is served on request, with trace exemplars", async () => {
    const res = await app.request("/metrics", { headers: { accept: OPENMETRICS } });
    assert.match(res.headers.get("content-type")!, /application\/openmetrics-text/);
    const text = await res.text();
    assert.match(
      text,
      /http_server_request_duration_seconds_bucket\{.*\} \d+ # \{trace_id="[0-9a-f]{32}",span_id="[0-9a-f]{16}"\}/,
    );
    assert.match(text, /inference_stage_duration_seconds_bucket\{.*\} \d+ # \{trace_id="[0-9a-f]{32}"/);
    assert.ok(text.trimEnd().endsWith("# EOF"));
  });

  await t.step("1000 random paths add one route label, not 1000", async () => {
    for (let i = 0; i < 1000; i++) {
      await (await app.request(`/${crypto.randomUUID()}/${i}`)).body?.cancel();
    }
    const text = await (await app.request("/metrics")).text();
    const routes = new Set(text.match(/(?<=_count\{[^}]*http_route=")[^"]+/g));
    assert.ok(routes.size < 8, [...routes].join(", "));
    assert.match(
      text,
      new RegExp(
        `_count\\{http_request_method="GET",http_route="${UNMATCHED_ROUTE}",http_response_status_code="404"\\} 1000`,
      ),
    );
  });
});

Deno.test("one request's trace id is in its response, spans, access log and an exemplar", async () => {
  const logs = await captureLogs("info");
  const { app, spans, telemetry } = await readyApp();
  const res = await app.request("/predict", { method: "POST", body: await fixture("images/coffee.jpg") });
  const body = await res.json();
  const traceId = res.headers.get("traceparent")!.split("-")[1];

  const exported = await flushed(spans, telemetry);
  assert.ok(exported.length >= 6);
  assert.ok(
    exported.filter((s) => s.name !== "inference_batch").every((s) => s.spanContext().traceId === traceId),
  );

  const access = logs.find((l) =>
    l.category.join(".") === "inference-gateway.http" && l.properties.trace_id === traceId
  );
  assert.ok(access, "the access-log line carries the trace id");
  assert.equal(access.properties.request_id, body.request_id);
  assert.equal(access.properties.route, "/predict");
  assert.equal(access.properties.status, 200);

  const metrics = await (await app.request("/metrics", { headers: { accept: OPENMETRICS } })).text();
  assert.ok(
    metrics.includes(`trace_id="${traceId}"`),
    "an exemplar links the latency histogram to the trace",
  );
});

Deno.test("log lines inside a request carry request_id, trace_id and span_id implicitly", async () => {
  const logs = await captureLogs("info");
  const config = testConfig();
  const { telemetry } = testTelemetry(config);
  const app = createApp({ config, state: await brokenState(), telemetry });
  const res = await app.request("/predict", {
    method: "POST",
    body: await fixture("images/coffee.jpg"),
    headers: { "x-request-id": "req-42" },
  });
  assert.equal(res.status, 500);
  await res.body?.cancel();
  const error = logs.find((l) => l.level === "error" && String(l.rawMessage).startsWith("Unhandled error"))!;
  assert.equal(error.properties.request_id, "req-42");
  assert.match(String(error.properties.trace_id), /^[0-9a-f]{32}$/);
  assert.match(String(error.properties.span_id), /^[0-9a-f]{16}$/);
  assert.ok(!JSON.stringify(logs.map((l) => l.properties)).includes("\\xff\\xd8"), "no image bytes in logs");
});

async function readyState(): Promise<ModelState> {
  return stateWithRunner((await sharedClassifier()).batcher.runners[0]);
}

async function brokenState(): Promise<ModelState> {
  return stateWithRunner(await brokenRunner("native failure"));
}
