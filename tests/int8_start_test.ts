/**
 * End to end: the real `deno task start` with MODEL_PRECISION=int8, under
 * exactly its scoped permissions: the synthetic model is quantized at startup
 * (or taken from the cache), gated, and served over real HTTP.
 */
import assert from "node:assert/strict";
import { metricValue, startTask, waitReady } from "./support/gateway_process.ts";
import { fixture } from "./support/helpers.ts";

Deno.test("deno task start serves int8 with its measured accuracy cost", async (t) => {
  const server = await startTask({ MODEL_SOURCE: "synthetic", MODEL_PRECISION: "int8" });
  const base = `http://127.0.0.1:${server.port}`;
  try {
    await t.step("liveness answers while the model is quantized, then it is ready", async () => {
      const res = await fetch(`${base}/health`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      // A cold start calibrates and quantizes the 100 MB model (30 s to a minute on 2 shared cores).
      await waitReady(server.port, 300_000);
    });

    await t.step("the startup log carries the quality gate's figures", () => {
      const gate = server.lines.find((l) => String(l.message).startsWith("int8 quality gate passed"));
      assert.ok(gate, "an INFO line reports the gate");
      assert.ok(Number(gate.top1_agreement) >= 0.9);
      assert.equal(typeof gate.mean_abs_top1_confidence_delta, "number");
      assert.match(String(gate.note), /not ImageNet accuracy/);
      const loaded = server.lines.find((l) => String(l.message).startsWith("Model loaded"));
      assert.equal(loaded?.precision, "int8");
    });

    await t.step("/info shows the precision and the gate", async () => {
      const info = await (await fetch(`${base}/info`)).json();
      assert.equal(info.model.precision, "int8");
      assert.equal(info.model.quantization.accepted, true);
      assert.equal(info.model.quantization.origin, "quantized-at-startup");
      assert.ok(info.model.quantization.top1_agreement >= 0.9);
      assert.equal(info.model.quantization.held_out_images, 40);
      assert.match(info.model.quantization.note, /not ImageNet accuracy/);
      assert.equal(info.config.MODEL_PRECISION, "int8");
    });

    await t.step("every prediction names the precision", async () => {
      const form = new FormData();
      form.append("file", new Blob([await fixture("images/coffee.jpg")]), "coffee.jpg");
      const res = await fetch(`${base}/predict`, { method: "POST", body: form });
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.model.precision, "int8");
      assert.equal(body.top_k.length, 5);
      const meta = await (await fetch(`${base}/v2/models/resnet50`)).json();
      assert.equal(meta.parameters.precision, "int8");
      assert.equal(meta.versions[0], body.model.version);
    });

    await t.step("metrics: model_info carries precision, gauges carry the gate", async () => {
      assert.equal(await metricValue(server.port, /model_info\{[^}]*precision="int8"[^}]*\} (\d+)/), 1);
      const agreement = await metricValue(server.port, /^model_int8_top1_agreement_ratio ([\d.]+)$/m);
      assert.ok(agreement >= 0.9, `agreement ${agreement}`);
      assert.equal(await metricValue(server.port, /^model_int8_accepted (\d+)$/m), 1);
    });

    await t.step("SIGTERM drains and exits 0", async () => {
      server.child.kill("SIGTERM");
      assert.equal((await server.status).code, 0, server.stderr());
    });
  } finally {
    try {
      server.child.kill("SIGKILL");
    } catch { /* already exited */ }
    await server.status;
  }
});
