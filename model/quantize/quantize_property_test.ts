/**
 * The int8 quantizer's parameters against the formula (ONNX QuantizeLinear
 * with onnxruntime's calibration convention), on any range, including ranges
 * that do not contain zero: the range is widened to include 0, scale is its
 * width over 255 levels, the uint8 zero point is round(-min / scale), and 0
 * is then exactly representable. Weights: symmetric int8, one scale per output
 * channel, absmax / 127.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { activationParams, quantizeWeights } from "./quantize.ts";

const RUNS = { numRuns: 500 };
// Calibrated ranges: zero, or magnitudes a network produces (denormals would make the scale 0).
const magnitude = fc.double({ min: 1e-6, max: 1e4, noNaN: true });
const value = fc.oneof(fc.constant(0), magnitude, magnitude.map((x) => -x));

/** The formula, written from the convention rather than from the code. */
function formula(min: number, max: number): { scale: number; zeroPoint: number } {
  const rmin = Math.min(min, 0), rmax = Math.max(max, 0);
  if (rmax === rmin) return { scale: 1, zeroPoint: 0 };
  const scale = (rmax - rmin) / (255 - 0);
  return { scale, zeroPoint: Math.max(0, Math.min(255, Math.round(0 - rmin / scale))) };
}

const quantize = (x: number, p: { scale: number; zeroPoint: number }) =>
  Math.max(0, Math.min(255, Math.round(x / p.scale) + p.zeroPoint));
const dequantize = (q: number, p: { scale: number; zeroPoint: number }) => (q - p.zeroPoint) * p.scale;

Deno.test("activation scale and zero point equal the formula on any range", () => {
  fc.assert(
    fc.property(value, value, (a, b) => {
      const [min, max] = a <= b ? [a, b] : [b, a];
      const got = activationParams({ min, max });
      const want = formula(min, max);
      assert.ok(
        Math.abs(got.scale - want.scale) <= 1e-12 * want.scale,
        `scale ${got.scale} != ${want.scale}`,
      );
      assert.equal(got.zeroPoint, want.zeroPoint);
      assert.ok(Number.isInteger(got.zeroPoint) && got.zeroPoint >= 0 && got.zeroPoint <= 255);
      // Zero survives quantization exactly (Relu's clamp and zero padding depend on it).
      assert.equal(dequantize(quantize(0, got), got), 0);
      // Both ends of the range are within half a step.
      for (const x of [min, max]) {
        assert.ok(
          Math.abs(dequantize(quantize(x, got), got) - x) <= got.scale * 0.5 + 1e-9 * Math.abs(x),
          `${x}`,
        );
      }
    }),
    RUNS,
  );
});

Deno.test("ranges that do not include zero are widened to it", () => {
  fc.assert(
    fc.property(
      fc.double({ min: 1e-3, max: 1e4, noNaN: true }),
      fc.double({ min: 1e-3, max: 1e4, noNaN: true }),
      (a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        // All positive (after a Relu): zero point 0, 255 steps up to the maximum.
        const pos = activationParams({ min: lo, max: hi });
        assert.equal(pos.zeroPoint, 0);
        assert.ok(Math.abs(pos.scale - hi / 255) <= 1e-12 * pos.scale);
        // All negative: zero point 255, 255 steps down to the minimum.
        const neg = activationParams({ min: -hi, max: -lo });
        assert.equal(neg.zeroPoint, 255);
        assert.ok(Math.abs(neg.scale - hi / 255) <= 1e-12 * neg.scale);
      },
    ),
    RUNS,
  );
  assert.deepEqual(activationParams({ min: 2, max: 5 }), { scale: 5 / 255, zeroPoint: 0 });
  assert.deepEqual(activationParams({ min: -5, max: -2 }), { scale: 5 / 255, zeroPoint: 255 });
  assert.deepEqual(activationParams({ min: -1, max: 3 }), { scale: 4 / 255, zeroPoint: 64 });
  assert.deepEqual(activationParams({ min: 3, max: 3 }), { scale: 3 / 255, zeroPoint: 0 });
});

Deno.test("weights: per channel, absmax / 127, values in -127..127 within half a step", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 12 }),
      fc.infiniteStream(
        fc.oneof(
          fc.constant(0),
          fc.float({ min: -8, max: 8, noNaN: true, noDefaultInfinity: true }).filter((x) =>
            Math.abs(x) > 1e-6
          ),
        ),
      ),
      fc.nat(5),
      (channels, per, stream, zeroChannel) => {
        const w = new Float32Array(channels * per);
        for (let i = 0; i < w.length; i++) w[i] = stream.next().value;
        if (zeroChannel < channels) w.fill(0, zeroChannel * per, (zeroChannel + 1) * per);
        const { q, scales } = quantizeWeights(w, channels);
        for (let o = 0; o < channels; o++) {
          const slice = w.subarray(o * per, (o + 1) * per);
          const absMax = Math.max(...Array.from(slice, Math.abs));
          const want = absMax > 0 ? absMax / 127 : 1;
          assert.equal(scales[o], Math.fround(want), `channel ${o}`);
          for (let i = 0; i < per; i++) {
            const k = q[o * per + i];
            assert.ok(k >= -127 && k <= 127, `q ${k}`);
            assert.equal(k, Math.max(-127, Math.min(127, Math.round(slice[i] / scales[o]))) + 0);
            assert.ok(Math.abs(k * scales[o] - slice[i]) <= scales[o] * 0.5 + 1e-6);
          }
          // The channel's largest magnitude maps to +-127 exactly (the full int8 range is used).
          if (absMax > 0) {
            assert.equal(Math.max(...Array.from(q.subarray(o * per, (o + 1) * per), Math.abs)), 127);
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});
