import assert from "node:assert/strict";
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import { testConfig } from "../../tests/support/helpers.ts";
import { tinyLabels, tinyModel } from "../../tests/support/tiny_model.ts";
import { ModelState } from "../runtime/state.ts";
import { estimateBytes, startRepository } from "./repository.ts";

async function put(root: string, model: string, version: number, seed: number, hidden = false) {
  const dir = `${root}/${model}/${hidden ? "." : ""}${version}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(`${dir}/model.onnx`, tinyModel({ seed }));
  await Deno.writeTextFile(`${root}/${model}/labels.txt`, tinyLabels());
}

const top1 = async (state: ModelState) =>
  (await state.serving!.classifyTensor(new Float32Array(TENSOR_SIZE), 1)).top[0].class_name;

Deno.test("startRepository", async (t) => {
  const root = `./tests/tmp/repo-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(root, { recursive: true });
  const env = (mode: string) =>
    testConfig({
      MODEL_REPOSITORY: root,
      MODEL_CONTROL_MODE: mode,
      MODEL_NAME: "tiny",
      INFERENCE_WORKERS: "1",
      PREPROCESS_WORKERS: "0",
      INTRA_OP_THREADS: "1",
    });
  try {
    await put(root, "tiny", 1, 1);
    await put(root, "second", 1, 2);

    await t.step(
      "poll: every model loads; a new version is taken once settled, and /predict follows",
      async () => {
        const state = new ModelState();
        const repo = await startRepository(env("poll"), state);
        try {
          assert.equal(state.status, "ready");
          assert.equal(repo.defaultModel, "tiny");
          assert.deepEqual(repo.registry.models, ["second", "tiny"]);
          assert.equal(state.serving!.info.version, "1");
          assert.equal(await top1(state), "class1");

          // Copied in under a hidden name, then renamed into place: the first rescan sees it change.
          await put(root, "tiny", 2, 2, true);
          await repo.poll();
          assert.equal(state.serving!.info.version, "1", "hidden versions are not taken");
          await Deno.rename(`${root}/tiny/.2`, `${root}/tiny/2`);
          await repo.poll();
          assert.equal(state.serving!.info.version, "1", "a version that just appeared waits one round");
          await repo.poll();
          assert.equal(state.serving!.info.version, "2");
          assert.equal(await top1(state), "class2");
          await repo.registry.settled();
          assert.deepEqual(
            repo.registry.index().filter((e) => e.name === "tiny").map((e) => [e.version, e.state]),
            [["1", "UNAVAILABLE"], ["2", "READY"]],
          );

          // Rolling back is removing the new directory.
          await Deno.remove(`${root}/tiny/2`, { recursive: true });
          await repo.poll();
          await repo.poll();
          assert.equal(state.serving!.info.version, "1");

          // A model whose directory goes away stops serving.
          await Deno.remove(`${root}/second`, { recursive: true });
          await repo.poll();
          await repo.poll();
          assert.deepEqual(repo.registry.models, ["tiny"]);
          assert.throws(() => repo.registry.resolve("second"), { name: "UnknownModelError" });
        } finally {
          await repo.close();
        }
      },
    );

    await t.step("explicit: nothing loads until asked; an unknown model is refused", async () => {
      const state = new ModelState();
      const repo = await startRepository(env("explicit"), state);
      try {
        assert.deepEqual(repo.registry.models, []);
        assert.equal(state.serving, undefined);
        await repo.load("tiny");
        assert.equal(state.status, "ready");
        assert.equal(await top1(state), "class1");
        await assert.rejects(repo.load("nope"), { name: "NotFound", message: /no model "nope"/ });
        await assert.rejects(repo.load("../etc"), { name: "NotFound", message: /not a model name/ });
        await repo.registry.unload("tiny");
        assert.equal(state.serving, undefined, "/predict stops serving the unloaded default model");
        assert.equal(state.status, "failed");
      } finally {
        await repo.close();
      }
    });

    await t.step(
      "MODEL_NAME absent from the repository: the first model by name is the default",
      async () => {
        const state = new ModelState();
        const repo = await startRepository({ ...env("none"), MODEL_NAME: "resnet50" }, state);
        try {
          assert.equal(repo.defaultModel, "tiny");
          assert.equal(state.status, "ready");
        } finally {
          await repo.close();
        }
      },
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("estimateBytes: the file's size times the resident factor, per session", () => {
  assert.equal(estimateBytes({ INFERENCE_WORKERS: 0 }, { fileBytes: 100 }), 400);
  assert.equal(estimateBytes({ INFERENCE_WORKERS: 1 }, { fileBytes: 100 }), 400);
  assert.equal(estimateBytes({ INFERENCE_WORKERS: 3 }, { fileBytes: 100 }), 1200);
});
