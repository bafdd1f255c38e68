/**
 * The edge profile as an edge platform would run it: `deno task start:edge`
 * (edge.ts under `deno serve`) grants no FFI, no writes, no processes and no
 * system information, and still serves the full-size model over real HTTP
 * with the model built in memory.
 */
import assert from "node:assert/strict";
import { runUntilExit, startTask, waitReady } from "./support/gateway_process.ts";
import { captureLogs, fixture, testConfig } from "./support/helpers.ts";
import { choosePrecision } from "../model/quantize/precision.ts";
import { resolveModel } from "../model/artifact/resolve.ts";
import { denoConfig, runProbe, taskGrant } from "./support/task_permissions.ts";

const ROOT = new URL("../", import.meta.url);
const config = await denoConfig();

Deno.test("the start:edge task grants what an edge platform grants, and no more", async (t) => {
  const edge = taskGrant(config, "start:edge");

  await t.step("deno serve runs edge.ts under the edge set", () => {
    assert.equal(edge.subcommand, "serve", "a fetch handler run by deno serve");
    assert.deepEqual(edge.entry, ["edge.ts"]);
    assert.equal(edge.set, "edge");
  });

  await t.step("no FFI, writes, processes or system information; nothing blanket", () => {
    for (const kind of ["ffi", "write", "run", "sys"] as const) {
      assert.equal(edge.grants[kind], undefined, `no ${kind}`);
    }
    for (const [kind, grant] of Object.entries(edge.grants)) {
      assert.ok(Array.isArray(grant) && grant.length > 0, `${kind} names what it allows`);
    }
    assert.ok(!edge.flags.some((f) => f === "-A" || f.startsWith("--allow-")), "nothing added to the set");
  });

  await t.step("the same configuration variables as the gateway", () => {
    assert.deepEqual(edge.grants.env, config.permissions?.gateway?.env);
    // The variables only tests and the benchmark read stay in the test set.
    for (const name of ["BENCH_SECONDS", "FUZZ_SEED", "LOG_TOKENS", "WS_NO_BUFFER_UTIL"]) {
      assert.ok(!(edge.grants.env as string[]).includes(name), `no ${name}`);
    }
  });

  // The same flags under `deno run`: deno serve adds no permission when the address comes from
  // DENO_SERVE_ADDRESS (deploy/edge.env), so this is exactly what the entry gets.
  const { results } = await runProbe(edge, "tests/support/edge_permission_probe.ts");

  await t.step("what the edge entry needs is allowed", () => {
    for (
      const need of [
        "read_labels",
        "read_models",
        "read_wasm_runtime",
        "load_wasm_runtime",
        "env_config",
        "listen_loopback",
      ]
    ) {
      assert.equal(results[need], "allowed", need);
    }
  });

  await t.step(
    "FFI and writes are refused by Deno, and so is everything else an edge platform refuses",
    () => {
      for (
        const forbidden of [
          "ffi_native_runtime",
          "ffi_libc",
          "import_onnxruntime_node",
          "import_sharp",
          "write_models",
          "mkdir_models",
          "write_tmp",
          "write_project",
          "spawn_process",
          "sys_info",
          "read_etc_passwd",
          "read_project_source",
          "env_other",
          "connect_other_host",
        ]
      ) {
        assert.equal(results[forbidden], "denied", forbidden);
      }
    },
  );
});

Deno.test("deno task start:edge refuses a bad value as main.ts does: one line naming it, exit 2", async (t) => {
  const cases = [
    { name: "PORT", value: "abc", accepts: /expected an integer from 0 to 65535$/ },
    { name: "INFERENCE_BACKEND", value: "gpu", accepts: /expected one of native, wasm$/ },
  ];
  for (const { name, value, accepts } of cases) {
    await t.step(`${name}=${value}`, async () => {
      const { code, stderr, fatal } = await runUntilExit({ [name]: value }, "start:edge");
      assert.equal(code, 2, stderr);
      // No stack trace, no "Uncaught": the operator reads one line.
      assert.deepEqual(stderr.trimEnd().split("\n").length, 1, stderr);
      assert.match(stderr.trimEnd(), new RegExp(`^Invalid configuration: ${name}="${value}" is invalid: `));
      assert.match(stderr.trimEnd(), accepts);
      assert.equal(fatal, undefined, "stops before logging starts");
    });
  }
});

Deno.test("deno task start:edge serves the model built in memory, and writes nothing", async (t) => {
  // A model directory it may read but not write, and which has no model: the synthetic
  // ResNet-50 must be built in memory.
  const modelDir = `./models/edge-test-${crypto.randomUUID().slice(0, 8)}`;
  const server = await startTask({ MODEL_SOURCE: "synthetic", MODEL_DIR: modelDir }, "start:edge");
  try {
    const base = `http://127.0.0.1:${server.port}`;
    await t.step("probes answer while the model loads; then it is ready", async () => {
      const res = await fetch(`${base}/health`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      await waitReady(server.port, 180_000);
    });

    await t.step("/info names the WASM runtime and a model that came from memory", async () => {
      const info = await (await fetch(`${base}/info`)).json();
      assert.equal(info.model.runtime, "onnxruntime-web");
      assert.equal(info.model.source, "synthetic");
      assert.match(info.model.path, /^memory:/);
      assert.equal(info.config.INFERENCE_BACKEND, "wasm");
      assert.equal(info.config.INFERENCE_WORKERS, 0);
    });

    await t.step("predicts a real photo, and a v2 tensor, over HTTP", async () => {
      const form = new FormData();
      form.append("file", new Blob([await fixture("images/coffee.jpg")]), "coffee.jpg");
      const res = await fetch(`${base}/predict`, { method: "POST", body: form });
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.top_k.length, 5);
      assert.equal(body.image.width, 600);

      const v2 = await fetch(`${base}/v2/models/resnet50/infer`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          inputs: [{
            name: "input",
            datatype: "FP32",
            shape: [1, 3, 224, 224],
            data: new Array(150_528).fill(0),
          }],
        }),
      });
      assert.equal(v2.status, 200, await v2.clone().text());
      const answer = await v2.json();
      assert.deepEqual(answer.outputs[0].shape, [1, 1000]);
    });

    await t.step("the same metrics as the native profile", async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      assert.match(
        text,
        /^http_server_request_duration_seconds_count\{http_request_method="POST",http_route="\/predict",http_response_status_code="200"\} 1$/m,
      );
      assert.match(text, /^inference_stage_duration_seconds_count\{stage="inference"\} 2$/m);
      assert.match(text, /^model_ready 1$/m);
      // Both runtimes report the same runtime_version; the runtime label tells them apart.
      assert.match(text, /^model_info\{[^}]*runtime_version="[^"]+",runtime="onnxruntime-web"\} 1$/m);
    });

    await t.step("nothing was written: the model directory was never created", async () => {
      await assert.rejects(Deno.stat(new URL(modelDir, ROOT)), Deno.errors.NotFound);
      assert.ok(
        server.lines.some((l) => String(l.message).startsWith("Built synthetic ResNet-50 in memory")),
      );
    });
  } finally {
    server.child.kill("SIGTERM");
    await server.status;
  }
});

Deno.test("deno task start:edge serves int8 quantized ahead, and refuses to quantize", async (t) => {
  await captureLogs("info");
  const config = testConfig({ MODEL_SOURCE: "synthetic", MODEL_PRECISION: "int8" });
  const int8 = await choosePrecision(config, await resolveModel(config));
  assert.equal(int8.precision, "int8");

  await t.step("MODEL_PATH at the int8 file: served as int8 on the WASM runtime", async () => {
    const server = await startTask({ MODEL_PATH: int8.path, MODEL_PRECISION: "int8" }, "start:edge");
    try {
      await waitReady(server.port, 120_000);
      const base = `http://127.0.0.1:${server.port}`;
      const info = await (await fetch(`${base}/info`)).json();
      assert.deepEqual(
        [info.model.runtime, info.model.precision, info.model.quantization.origin],
        ["onnxruntime-web", "int8", "pre-quantized"],
      );
      const res = await fetch(`${base}/predict`, {
        method: "POST",
        body: await fixture("images/chelsea.jpg"),
        headers: { "content-type": "image/jpeg" },
      });
      assert.equal(res.status, 200);
      assert.equal((await res.json()).top_k.length, 5);
    } finally {
      server.child.kill("SIGTERM");
      await server.status;
    }
  });

  await t.step("MODEL_PRECISION=int8 over an fp32 model: not ready, and /ready says what to do", async () => {
    const server = await startTask({ MODEL_SOURCE: "synthetic", MODEL_PRECISION: "int8" }, "start:edge");
    try {
      const base = `http://127.0.0.1:${server.port}`;
      let body: { status?: string; error?: string } = {};
      for (let i = 0; i < 200 && body.status !== "failed"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        body = await (await fetch(`${base}/ready`)).json();
      }
      assert.equal(body.status, "failed");
      assert.match(body.error ?? "", /Quantize ahead/);
    } finally {
      server.child.kill("SIGTERM");
      await server.status;
    }
  });
});
