import assert from "node:assert/strict";
import {
  autoscaled,
  type AutoscalerModel,
  closedLoop,
  desiredReplicas,
  openLoop,
  percentile,
  type PodModel,
} from "./simulator.ts";

/** A pod reduced to one server of fixed service time: the textbook queue. */
function plain(serviceMs: number, overrides: Partial<PodModel> = {}): PodModel {
  return {
    cores: 1,
    threads: 1,
    batchMs: () => serviceMs,
    batchSigma: 0,
    decodeMs: 0,
    decodeSigma: 0,
    httpMs: 0,
    rejectMs: 0,
    maxBatch: 1,
    maxQueue: 1_000_000,
    timeoutMs: 1_000_000,
    ...overrides,
  };
}

const near = (actual: number, expected: number, relative: number, what: string) =>
  assert.ok(
    Math.abs(actual - expected) <= relative * expected,
    `${what}: ${actual} is not within ${relative * 100}% of ${expected}`,
  );

Deno.test("capacity simulator", async (t) => {
  await t.step("closed loop on a fixed service time: throughput 1/D, latency c x D", () => {
    const r = closedLoop(plain(50), 4, 20, { warmupSeconds: 1 });
    near(r.throughputRps, 20, 0.01, "throughput");
    near(r.p50Ms, 200, 1e-6, "p50");
    near(r.p99Ms, 200, 1e-6, "p99");
    assert.equal(r.inFlightPerPod, 4);
  });

  await t.step("batching: requests waiting when the session frees up run in fours", () => {
    // Eight clients, a run of any size takes 100 ms: four wait while four run.
    const r = closedLoop(plain(100, { maxBatch: 4 }), 8, 20, { warmupSeconds: 1 });
    near(r.throughputRps, 40, 0.01, "throughput");
    near(r.p99Ms, 200, 1e-6, "latency");
  });

  await t.step("threads share the cores: decode beside inference halves both on one core", () => {
    const oneCore = plain(50, { decodeMs: 50 });
    const r1 = closedLoop(oneCore, 2, 20, { warmupSeconds: 1 });
    near(r1.throughputRps, 10, 0.01, "1 core: 100 ms of CPU per request");
    near(r1.p50Ms, 200, 0.01, "1 core latency");
    const r2 = closedLoop({ ...oneCore, cores: 2 }, 2, 20, { warmupSeconds: 1 });
    near(r2.throughputRps, 20, 0.01, "2 cores: decode and inference overlap");
    near(r2.p50Ms, 100, 0.01, "2 cores latency");
  });

  await t.step("M/D/1: mean time in system matches Pollaczek-Khinchine", () => {
    // lambda = 10/s, D = 50 ms: rho = 0.5, Wq = rho D / (2 (1 - rho)) = 25 ms, W = 75 ms, L = 0.75.
    const r = openLoop(plain(50), 1, 10, 3000, { seed: 7 });
    near(r.inFlightPerPod, 0.75, 0.04, "L = lambda W");
    near(r.throughputRps, 10, 0.03, "throughput");
    assert.equal(r.rejected, 0);
  });

  await t.step("a full queue refuses at once: overload at 5x keeps the service rate", () => {
    const r = openLoop(plain(50, { maxQueue: 2 }), 1, 100, 200, { seed: 3 });
    near(r.throughputRps, 20, 0.02, "served at the service rate");
    near(r.rejected / r.requests, 0.8, 0.02, "the rest refused");
    // An admitted request waits at most for the queue ahead plus the one running.
    assert.ok(r.p99Ms <= 50 * (2 + 1) + 1e-6, `p99 ${r.p99Ms}`);
  });

  await t.step("requests not started by REQUEST_TIMEOUT_MS are answered 504", () => {
    const r = closedLoop(plain(100, { timeoutMs: 250 }), 8, 20, { warmupSeconds: 2 });
    assert.ok(r.timedOut > 0, "some time out");
    assert.ok(r.p99Ms <= 350 + 1e-6, `served ones started within the timeout: ${r.p99Ms}`);
  });

  await t.step("the HPA's rule, as the Kubernetes documentation states it", () => {
    const a = { target: 1, tolerance: 0.1, minReplicas: 2, maxReplicas: 40 };
    assert.equal(desiredReplicas(8, 4, 4, a), 8, "twice the target doubles the pods");
    assert.equal(desiredReplicas(4.3, 4, 4, a), 4, "within 10%: no change");
    assert.equal(desiredReplicas(4.5, 4, 4, a), 5);
    assert.equal(desiredReplicas(1, 4, 4, a), 2, "never below minReplicas");
    assert.equal(desiredReplicas(100, 4, 4, a), 40, "never above maxReplicas");
    assert.equal(desiredReplicas(8, 2, 4, a), 8, "pods still starting count as using nothing");
  });

  await t.step("the autoscaler settles where the target says, and follows a step", () => {
    // 50 ms per request, one at a time per pod. At 40 req/s over n pods (M/D/1 each) the pods hold
    // L = 40 W in total, W = 50 + 25 rho / (1 - rho) ms: target 0.5 per pod settles at 5 or 6 pods.
    const auto: AutoscalerModel = {
      target: 0.5,
      minReplicas: 1,
      maxReplicas: 20,
      syncSeconds: 15,
      tolerance: 0.1,
      scrapeSeconds: 15,
      windowSeconds: 60,
      scaleUpPercent: 100,
      scaleUpPods: 4,
      scaleDownStabilizationSeconds: 300,
      scaleDownPercent: 20,
      scaleDownPeriodSeconds: 60,
      podStartSeconds: 10,
      probePeriodSeconds: 5,
    };
    const model = plain(50, { maxQueue: 8 });
    const steady = autoscaled(model, auto, () => 40, 120, { warmupSeconds: 1200, seed: 5 });
    assert.ok(steady.startPods >= 5 && steady.startPods <= 6, `settled at ${steady.startPods}`);
    const step = autoscaled(model, auto, () => 160, 300, { warmupSeconds: 1200, seed: 5 });
    const last = step.timeline.at(-1)!;
    assert.ok(last.readyPods >= 16 && last.readyPods <= 20, `at 160 req/s: ${last.readyPods}`);
  });

  await t.step("percentile is the nearest rank", () => {
    assert.equal(percentile([5, 1, 4, 2, 3], 50), 3);
    assert.equal(percentile(Array.from({ length: 100 }, (_, i) => i + 1), 99), 99);
    assert.ok(Number.isNaN(percentile([], 99)));
  });
});
