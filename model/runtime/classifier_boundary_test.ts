/**
 * The classifier's own limits, without the model: the pixel limit read from
 * the header (at, below and above MAX_IMAGE_PIXELS, for every format), and
 * all-or-none admission of a multi-image request at the queue's edge.
 */
import assert from "node:assert/strict";
import { Batcher, OverloadedError } from "./batcher.ts";
import { Classifier, PixelLimitError } from "./classifier.ts";
import type { ModelInfo } from "./runner.ts";
import { ControlledRunner } from "../../tests/support/controlled_runner.ts";
import { fixture } from "../../tests/support/helpers.ts";

function classifier(maxImagePixels: number, maxQueue = 8): Classifier {
  const runner = new ControlledRunner(3);
  const batcher = new Batcher([runner], { maxBatchSize: 4, maxBatchDelayMs: 0, maxQueue, classes: 3 });
  return new Classifier(runner.info as ModelInfo, batcher, ["a", "b", "c"], { maxImagePixels });
}

Deno.test("MAX_IMAGE_PIXELS: width x height at the limit passes, one pixel over is refused", async (t) => {
  // 600x400 = 240000 and 451x300 = 135300, in each format the gateway reads.
  for (
    const [file, w, h] of [["coffee.jpg", 600, 400], ["coffee.webp", 600, 400], [
      "chelsea.jpg",
      451,
      300,
    ]] as const
  ) {
    const bytes = await fixture(`images/${file}`);
    await t.step(`${file}: ${w}x${h}`, () => {
      const pixels = w * h;
      for (const limit of [pixels, pixels + 1, pixels * 2]) {
        assert.deepEqual([classifier(limit).inspect(bytes).width, classifier(limit).inspect(bytes).height], [
          w,
          h,
        ]);
      }
      for (const limit of [pixels - 1, Math.floor(pixels / 2), (w + 1) * (h - 1) - 1]) {
        assert.throws(
          () => classifier(limit).inspect(bytes),
          (e: unknown) =>
            e instanceof PixelLimitError && e.limit === limit &&
            e.message === `Image is ${w}x${h} (${pixels} pixels); the limit is ${limit} pixels`,
        );
      }
    });
  }
  await t.step("a long thin image is judged by its area, not its long side", () => {
    // 5000x2 = 10000 pixels: within a limit of 10000 though its side is 5000.
    const strip = new Uint8Array(64);
    strip.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
    const v = new DataView(strip.buffer);
    v.setUint32(16, 5000);
    v.setUint32(20, 2);
    strip.set([8, 2, 0, 0, 0], 24);
    assert.equal(classifier(10_000).inspect(strip).width, 5000);
    assert.throws(() => classifier(9_999).inspect(strip), PixelLimitError);
  });
});

Deno.test("admitAll takes every place or none: at the free places, and one more", () => {
  for (const free of [1, 2, 3]) {
    const c = classifier(1_000_000, 4);
    const taken = Array.from({ length: 4 - free }, () => c.admit());
    assert.equal(c.batcher.queueDepth, 4 - free);
    assert.throws(() => c.admitAll(free + 1), OverloadedError);
    assert.equal(c.batcher.queueDepth, 4 - free, "a refused request gives back the places it took");
    const all = c.admitAll(free);
    assert.equal(all.length, free);
    assert.equal(c.batcher.queueDepth, 4);
    for (const a of [...all, ...taken]) a.release();
    assert.equal(c.batcher.queueDepth, 0);
  }
});
