/**
 * The registry over real onnxruntime sessions of tiny models (tests/tiny_model.ts):
 * swaps, failures, the memory limit and unloads, with work in flight.
 */
import assert from "node:assert/strict";
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import { testConfig } from "../../tests/support/helpers.ts";
import { tinyLabels, tinyModel } from "../../tests/support/tiny_model.ts";
import { ModelNotReadyError, ModelRegistry, type RegistryOptions, UnknownModelError } from "./registry.ts";
import { scanRepository } from "./scan.ts";
import { versionStarter } from "./start_version.ts";

const config = testConfig({ INFERENCE_WORKERS: "0", PREPROCESS_WORKERS: "0", INTRA_OP_THREADS: "1" });

class Repo {
  constructor(readonly root: string) {}
  static async create(): Promise<Repo> {
    const root = `./tests/tmp/registry-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.mkdir(root, { recursive: true });
    return new Repo(root);
  }
  async put(model: string, version: number, bytes: Uint8Array): Promise<void> {
    await Deno.mkdir(`${this.root}/${model}/${version}`, { recursive: true });
    await Deno.writeFile(`${this.root}/${model}/${version}/model.onnx`, bytes);
  }
  async write(path: string, text: string): Promise<void> {
    await Deno.mkdir(`${this.root}/${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
    await Deno.writeTextFile(`${this.root}/${path}`, text);
  }
  async scanned(model: string) {
    const found = (await scanRepository(this.root)).models.find((m) => m.name === model);
    assert.ok(found, `${model} is in the repository`);
    return found;
  }
  remove(): Promise<void> {
    return Deno.remove(this.root, { recursive: true });
  }
}

/** A registry over the real starter, counting starts and closes. */
/** Starts wait for `gate.wait` (resolved unless a test holds it). */
function registry(options: Partial<RegistryOptions> = {}, gate = { wait: Promise.resolve() }) {
  const counts = { started: 0, closed: 0 };
  const start = versionStarter(config);
  const reg = new ModelRegistry({
    start: async (source) => {
      counts.started++;
      await gate.wait;
      const started = await start(source);
      return {
        ...started,
        close: async () => {
          counts.closed++;
          await started.close();
        },
      };
    },
    estimate: (s) => s.fileBytes,
    drainPollMs: 5,
    ...options,
  });
  return { reg, counts };
}

const zeros = () => new Float32Array(TENSOR_SIZE);

/** Top-1 class of a neutral input through the model's default version (or `version`). */
async function top1(reg: ModelRegistry, model: string, version?: string): Promise<[string, string]> {
  const { classifier, version: v } = reg.resolve(model, version);
  const r = await classifier.classifyTensor(zeros(), 1);
  return [v, r.top[0].class_name];
}

Deno.test("model registry", async (t) => {
  const repo = await Repo.create();
  try {
    await t.step("loads the latest version; answers name it; labels.txt names the classes", async () => {
      await repo.put("tiny", 1, tinyModel({ seed: 1 }));
      await repo.put("tiny", 2, tinyModel({ seed: 2 }));
      await repo.write("tiny/labels.txt", tinyLabels());
      const { reg, counts } = registry();
      await reg.apply(await repo.scanned("tiny"));
      assert.deepEqual(await top1(reg, "tiny"), ["2", "class2"]);
      assert.equal(reg.resolve("tiny").classifier.info.version, "2");
      assert.equal(counts.started, 1, "latest 1: only version 2 loads");
      assert.deepEqual(reg.index(), [{ name: "tiny", version: "2", state: "READY", reason: "" }]);
      assert.throws(() => reg.resolve("tiny", "1"), UnknownModelError);
      assert.throws(() => reg.resolve("other"), { name: "UnknownModelError", message: /Model "other"/ });
      assert.deepEqual(reg.notReady(), []);
      await reg.close();
      assert.equal(counts.closed, 1);
    });

    await t.step(
      "a swap: work admitted by the old version finishes on it; new work goes to the new",
      async () => {
        const gate = { wait: Promise.resolve() };
        const { reg, counts } = registry({}, gate);
        await reg.apply(await repo.scanned("tiny"));
        let release!: () => void;
        gate.wait = new Promise<void>((r) => release = r);
        const old = reg.resolve("tiny").classifier;
        // Admitted before the swap, and still in the queue while it happens.
        const admitted = Array.from({ length: 20 }, () => old.classifyTensor(zeros(), 1));
        await repo.put("tiny", 3, tinyModel({ seed: 3 }));
        const swap = reg.apply(await repo.scanned("tiny"));
        await new Promise((r) => setTimeout(r, 0));
        assert.deepEqual(reg.index().map((e) => [e.version, e.state]), [["2", "READY"], ["3", "LOADING"]]);
        // While 3 loads, 2 still answers.
        assert.deepEqual(await top1(reg, "tiny"), ["2", "class2"]);
        release();
        await swap;
        assert.deepEqual(await top1(reg, "tiny"), ["3", "class3"]);
        const answers = await Promise.all(admitted);
        assert.ok(
          answers.every((a) => a.top[0].class_name === "class2"),
          "every admitted request answered by 2",
        );
        await reg.settled();
        assert.equal(counts.closed, 1, "version 2 closed after its work");
        assert.deepEqual(reg.index().map((e) => [e.version, e.state, e.reason]), [
          ["2", "UNAVAILABLE", "the version policy does not serve it"],
          ["3", "READY", ""],
        ]);
        await reg.close();
      },
    );

    await t.step(
      "a corrupt file, a wrong input shape, bad labels: the serving version keeps serving",
      async () => {
        const cases: Array<[Uint8Array, RegExp, string]> = [
          [
            new TextEncoder().encode("not an onnx file at all"),
            /Cannot load ONNX model .*Protobuf parsing failed/,
            "corrupt_file",
          ],
          [
            tinyModel({ seed: 4, input: [1, 28, 28] }),
            /Model input "input" has shape \[N,1,28,28\]/,
            "wrong_shape",
          ],
          [tinyModel({ seed: 4, classes: 7 }), /has 4 labels; the model outputs 7 classes/, "labels"],
        ];
        let failures = 0;
        const { reg: counted } = registry({ hooks: { onFailed: () => failures++ } });
        await counted.apply(await repo.scanned("tiny"));
        for (const [bytes, reason] of cases) {
          await repo.put("tiny", 4, bytes);
          await counted.apply(await repo.scanned("tiny"));
          const v4 = counted.index().find((e) => e.version === "4")!;
          assert.equal(v4.state, "UNAVAILABLE");
          assert.match(v4.reason, reason);
          assert.deepEqual(await top1(counted, "tiny"), ["3", "class3"], "version 3 still answers");
          assert.deepEqual(counted.notReady(), [], "the model still serves");
        }
        assert.equal(failures, 3);
        // An unchanged failed file is not retried on every rescan; a fixed one is.
        await counted.apply(await repo.scanned("tiny"));
        assert.equal(failures, 3);
        await repo.put("tiny", 4, tinyModel({ seed: 4 }));
        await counted.apply(await repo.scanned("tiny"));
        assert.deepEqual(await top1(counted, "tiny"), ["4", "class0"]);
        await counted.close();
      },
    );

    await t.step(
      "MODEL_MEMORY_LIMIT refuses a load before it starts: at the limit it loads, one byte over not",
      async () => {
        await repo.put("tiny", 5, tinyModel({ seed: 5 }));
        const size = (await Deno.stat(`${repo.root}/tiny/5/model.onnx`)).size;
        const below = registry({ memoryLimit: size - 1 });
        await below.reg.apply(await repo.scanned("tiny"));
        assert.equal(below.counts.started, 0);
        assert.equal(below.reg.reservedBytes, 0);
        const entry = below.reg.index().find((e) => e.version === "5")!;
        assert.equal(entry.state, "UNAVAILABLE");
        assert.match(entry.reason, /MODEL_MEMORY_LIMIT/);
        assert.deepEqual(below.reg.notReady().map((n) => n.name), ["tiny"]);

        const at = registry({ memoryLimit: size });
        await at.reg.apply(await repo.scanned("tiny"));
        assert.equal(at.counts.started, 1);
        assert.equal(at.reg.reservedBytes, size);
        // A swap holds both versions for a moment, so it needs room for both: refused, and 5 keeps serving.
        await repo.put("tiny", 6, tinyModel({ seed: 6 }));
        assert.equal((await Deno.stat(`${repo.root}/tiny/6/model.onnx`)).size, size);
        await at.reg.apply(await repo.scanned("tiny"));
        assert.equal(at.counts.started, 1);
        assert.deepEqual(await top1(at.reg, "tiny"), ["5", "class1"]);
        await at.reg.close();
        assert.equal(at.reg.reservedBytes, 0, "closing gives the memory back");

        const room = registry({ memoryLimit: 2 * size });
        await room.reg.apply(await repo.scanned("tiny"));
        assert.deepEqual(await top1(room.reg, "tiny"), ["6", "class2"]);
        await room.reg.close();
      },
    );

    await t.step("unload: admitted work finishes, then 404 naming the model", async () => {
      const { reg, counts } = registry();
      await reg.apply(await repo.scanned("tiny"));
      const { classifier } = reg.resolve("tiny");
      const admitted = Array.from({ length: 10 }, () => classifier.classifyTensor(zeros(), 1));
      const unloading = reg.unload("tiny");
      assert.throws(() => reg.resolve("tiny"), { name: "UnknownModelError", message: /Model "tiny"/ });
      assert.equal((await Promise.all(admitted)).length, 10);
      await unloading;
      assert.equal(counts.closed, 1);
      assert.deepEqual(reg.index().map((e) => [e.version, e.state, e.reason]), [
        ["6", "UNAVAILABLE", "it was unloaded"],
      ]);
      assert.deepEqual(reg.notReady(), [], "an unloaded model is not expected to serve");
      await assert.rejects(reg.unload("never"), UnknownModelError);
    });

    await t.step("a version still loading answers 503, not 404", async () => {
      let release!: () => void;
      const gate = new Promise<void>((r) => release = r);
      const start = versionStarter(config);
      const reg = new ModelRegistry({
        start: async (s) => {
          await gate;
          return start(s);
        },
        estimate: () => 0,
      });
      const loading = reg.apply(await repo.scanned("tiny"));
      await new Promise((r) => setTimeout(r, 0));
      assert.throws(() => reg.resolve("tiny"), ModelNotReadyError);
      assert.deepEqual(reg.notReady(), [{ name: "tiny", reason: "loading" }]);
      release();
      await loading;
      assert.equal(reg.resolve("tiny").version, "6");
      await reg.close();
    });

    await t.step("int8 asked for and impossible: the load fails with the int8 reason", async () => {
      await repo.put("quant", 1, tinyModel());
      await repo.write("quant/labels.txt", tinyLabels());
      await repo.write("quant/config.json", '{"precision": "int8"}');
      const reg = new ModelRegistry({
        start: versionStarter({ ...config, MODEL_DIR: repo.root }),
        estimate: () => 0,
      });
      await reg.apply(await repo.scanned("quant"));
      const [entry] = reg.index();
      assert.equal(entry.state, "UNAVAILABLE");
      assert.match(entry.reason, /^int8 was asked for and could not be made/);
    });

    await t.step("a bad config.json: the model serves nothing and says why", async () => {
      await repo.put("typo", 1, tinyModel());
      await repo.write("typo/labels.txt", tinyLabels());
      await repo.write("typo/config.json", '{"topk": 3}');
      const { reg, counts } = registry();
      await reg.apply(await repo.scanned("typo"));
      assert.equal(counts.started, 0);
      assert.throws(() => reg.resolve("typo"), {
        message: /typo\/config.json is invalid: has unknown field/,
      });
      assert.match(reg.notReady()[0].reason, /unknown field/);
      assert.match(reg.index()[0].reason, /unknown field/);
    });

    await t.step(
      "config.json: specific versions and a top k; a named version absent is reported",
      async () => {
        await repo.write(
          "typo/config.json",
          '{"top_k": 2, "version_policy": {"specific": {"versions": [1, 9]}}}',
        );
        const { reg } = registry();
        await reg.apply(await repo.scanned("typo"));
        assert.equal(reg.resolve("typo").topK, 2);
        assert.deepEqual(reg.index().map((e) => [e.version, e.state]), [["1", "READY"], [
          "9",
          "UNAVAILABLE",
        ]]);
        assert.deepEqual(reg.servingVersions("typo"), ["1"]);
        await reg.close();
      },
    );
  } finally {
    await repo.remove();
  }
});
