import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { loadConfig } from "../../config.ts";
import { buildSyntheticResNet50 } from "./synthetic_resnet50.ts";

/** The configuration's default SYNTHETIC_SEED: the model every unconfigured gateway builds. */
const DEFAULT_SEED = loadConfig(() => undefined).SYNTHETIC_SEED;
/** Pinned: the same seed must give the same bytes on every machine and run. */
const PINNED_SHA256 = "f939437d12896eafeab006d784311b5a6bd1d0635f97e5fbfb59394f04270dae";

Deno.test("synthetic ResNet-50", async (t) => {
  const model = buildSyntheticResNet50(DEFAULT_SEED);

  await t.step("has torchvision resnet50's parameter count and cost", () => {
    // torchvision.models.resnet50(): sum(p.numel() for p in model.parameters())
    assert.equal(model.stats.parameters, 25_557_032);
    assert.ok(Math.abs(model.stats.macs / 1e9 - 4.09) < 0.01, `${model.stats.macs} MACs`);
  });

  await t.step("is byte-identical for the same seed (pinned sha256)", () => {
    assert.equal(createHash("sha256").update(model.bytes).digest("hex"), PINNED_SHA256);
  });

  await t.step("differs for another seed", () => {
    const other = buildSyntheticResNet50(DEFAULT_SEED + 1);
    assert.equal(other.bytes.length, model.bytes.length);
    assert.notEqual(createHash("sha256").update(other.bytes).digest("hex"), PINNED_SHA256);
  });
});
