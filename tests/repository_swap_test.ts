/**
 * The real gateway (`deno task start`) serving a model repository in poll
 * mode, with the full-size synthetic ResNet-50: five swaps in a row under
 * continuous keep-alive load lose nothing, every answer names its version,
 * and broken versions leave the serving one serving. Memory is reported by
 * `deno task bench:swap`, not asserted here (the machine is shared).
 */
import assert from "node:assert/strict";
import { ensureSynthetic } from "../model/artifact/resolve.ts";
import { type Started, startTask, waitReady } from "./support/gateway_process.ts";
import { fixture, testConfig } from "./support/helpers.ts";
import { requestBytes } from "./support/raw_http.ts";
import { copyVersionIn, swapUnderLoad } from "./support/swap_load.ts";
import { tinyModel } from "./support/tiny_model.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitForLog(server: Started, match: (l: Record<string, unknown>) => boolean, ms: number) {
  const deadline = Date.now() + ms;
  while (!server.lines.some(match)) {
    if (Date.now() > deadline) throw new Error(`No such log line within ${ms} ms: ${server.stderr()}`);
    await sleep(50);
  }
  return server.lines.find(match)!;
}

async function predictVersion(port: number, jpeg: Uint8Array<ArrayBuffer>): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/predict`, {
    method: "POST",
    headers: { "content-type": "image/jpeg" },
    body: jpeg,
  });
  assert.equal(res.status, 200);
  return (await res.json()).model.version;
}

Deno.test({
  name: "model repository: five swaps under load lose nothing; broken versions leave the serving one serving",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const synthetic = await ensureSynthetic(testConfig({ MODEL_SOURCE: "synthetic" }));
  const root = `./models/repository-swap-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(root, { recursive: true });
  await copyVersionIn(root, "resnet50", 1, synthetic.path);
  const server = await startTask({
    MODEL_REPOSITORY: root,
    MODEL_CONTROL_MODE: "poll",
    REPOSITORY_POLL_SECONDS: "1",
    INFERENCE_WORKERS: "1",
    PREPROCESS_WORKERS: "1",
  });
  const jpeg = await fixture("images/chelsea.jpg");
  try {
    await waitReady(server.port, 180_000);

    await t.step(
      "five swaps in a row: zero non-2xx, zero dropped connections, /ready 200 throughout",
      async () => {
        const report = await swapUnderLoad({
          port: server.port,
          root,
          model: "resnet50",
          file: synthetic.path,
          versions: [2, 3, 4, 5, 6],
          clients: 3,
          request: requestBytes("POST", "/predict", { "Content-Type": "image/jpeg" }, jpeg),
          lines: server.lines,
          swapTimeoutMs: 180_000,
        });
        console.log(JSON.stringify({ ...report, non2xx: report.non2xx.slice(0, 3) }));
        assert.deepEqual(report.non2xx, []);
        assert.equal(report.dropped, 0);
        assert.deepEqual(report.readyNot200, []);
        assert.ok(report.readyProbes > 10, `${report.readyProbes} /ready probes`);
        assert.equal(report.unnamed, 0, "every answer names the version that computed it");
        assert.deepEqual(Object.keys(report.versions).sort(), ["1", "2", "3", "4", "5", "6"]);
        assert.equal(report.swaps.length, 5);
      },
    );

    await t.step(
      "a corrupt file and a wrong input shape fail with an ERROR naming why; 6 keeps serving",
      async () => {
        await Deno.mkdir(`${root}/resnet50/.7`);
        await Deno.writeTextFile(`${root}/resnet50/.7/model.onnx`, "this is not an ONNX model");
        await Deno.rename(`${root}/resnet50/.7`, `${root}/resnet50/7`);
        const corrupt = await waitForLog(server, (l) => l.level === "ERROR" && l.version === "7", 60_000);
        assert.match(String(corrupt.reason), /Cannot load ONNX model .*7\/model.onnx/);
        assert.equal(await predictVersion(server.port, jpeg), "6");

        await Deno.mkdir(`${root}/resnet50/.8`);
        await Deno.writeFile(`${root}/resnet50/.8/model.onnx`, tinyModel({ input: [1, 28, 28] }));
        await Deno.rename(`${root}/resnet50/.8`, `${root}/resnet50/8`);
        const shape = await waitForLog(server, (l) => l.level === "ERROR" && l.version === "8", 60_000);
        assert.match(
          String(shape.reason),
          /Model input "input" has shape \[N,1,28,28\]; expected Nx3x224x224/,
        );
        assert.equal(await predictVersion(server.port, jpeg), "6");
        assert.equal((await fetch(`http://127.0.0.1:${server.port}/ready`)).status, 200);
      },
    );

    await t.step("rolling back is removing directories: version 5 loads and takes over again", async () => {
      for (const v of [8, 7, 6]) await Deno.remove(`${root}/resnet50/${v}`, { recursive: true });
      const deadline = Date.now() + 180_000;
      while ((await predictVersion(server.port, jpeg)) !== "5") {
        if (Date.now() > deadline) throw new Error("version 5 never came back");
        await sleep(200);
      }
    });
  } finally {
    server.child.kill("SIGTERM");
    await server.status;
    await Deno.remove(root, { recursive: true });
  }
});
