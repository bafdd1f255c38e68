import assert from "node:assert/strict";
import { Batcher, CancelledError, DeadlineError, DrainingError, OverloadedError } from "./batcher.ts";
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import type { ModelRunner } from "./runner.ts";
import { ControlledRunner } from "../../tests/support/controlled_runner.ts";

const CLASSES = 3;

const image = (marker: number) => {
  const t = new Float32Array(TENSOR_SIZE);
  t[0] = marker;
  return t;
};
const tick = () => new Promise((r) => setTimeout(r, 0));

function batcher(runners: ModelRunner[], options: Partial<ConstructorParameters<typeof Batcher>[1]> = {}) {
  return new Batcher(runners, {
    maxBatchSize: 4,
    maxBatchDelayMs: 0,
    maxQueue: 8,
    classes: CLASSES,
    ...options,
  });
}

Deno.test("batcher", async (t) => {
  await t.step("an idle runner takes a lone request at once (no fill delay by default)", async () => {
    const r = new ControlledRunner();
    const b = batcher([r]);
    const p = b.submit(image(7));
    await tick();
    assert.equal(r.calls.length, 1);
    assert.equal(r.calls[0].batch, 1);
    r.calls[0].finish();
    const res = await p;
    assert.deepEqual([...res.row], [7, 7, 7]);
    assert.equal(res.batchSize, 1);
  });

  await t.step(
    "requests that queue while the runner is busy go as one batch, results split in order",
    async () => {
      const r = new ControlledRunner();
      const sizes: number[] = [];
      const b = batcher([r], { onBatch: (n) => sizes.push(n) });
      const first = b.submit(image(1));
      await tick();
      const rest = [2, 3, 4, 5, 6].map((m) => b.submit(image(m)));
      await tick();
      assert.equal(b.queueDepth, 5);
      r.calls[0].finish();
      await first;
      await tick();
      assert.equal(r.calls[1].batch, 4, "capped at maxBatchSize");
      assert.deepEqual(r.calls[1].firsts, [2, 3, 4, 5]);
      r.calls[1].finish();
      await tick();
      r.calls[2].finish();
      const rows = await Promise.all(rest);
      assert.deepEqual(rows.map((x) => x.row[0]), [2, 3, 4, 5, 6]);
      assert.deepEqual(rows.map((x) => x.batchSize), [4, 4, 4, 4, 1]);
      assert.deepEqual(sizes, [1, 4, 1]);
    },
  );

  await t.step("with a fill delay, a batch waits for more requests up to the delay", async () => {
    const r = new ControlledRunner();
    const b = batcher([r], { maxBatchDelayMs: 30 });
    const a = b.submit(image(1));
    await tick();
    assert.equal(r.calls.length, 0, "waits for the batch to fill");
    const c = b.submit(image(2));
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(r.calls.length, 1);
    assert.equal(r.calls[0].batch, 2);
    r.calls[0].finish();
    await Promise.all([a, c]);
  });

  await t.step("a full queue refuses at once with OverloadedError", async () => {
    const r = new ControlledRunner();
    const depths: number[] = [];
    const b = batcher([r], { maxQueue: 2, onQueueDepth: (d) => depths.push(d) });
    const running = b.submit(image(0));
    await tick(); // now running, queue empty
    const queued = [b.submit(image(1)), b.submit(image(2))];
    await assert.rejects(b.submit(image(3)), OverloadedError);
    assert.equal(b.queueDepth, 2);
    assert.equal(Math.max(...depths), 2);
    r.calls[0].finish();
    await running;
    await tick();
    r.calls[1].finish();
    await Promise.all(queued);
  });

  await t.step(
    "a request not started by its deadline is dropped with DeadlineError; it never runs",
    async () => {
      const r = new ControlledRunner();
      const b = batcher([r]);
      const running = b.submit(image(0));
      await tick();
      const late = b.submit(image(9), { timeoutMs: 10 });
      await assert.rejects(late, DeadlineError);
      assert.equal(b.queueDepth, 0);
      r.calls[0].finish();
      await running;
      await tick();
      assert.equal(r.calls.length, 1, "the dropped request was never sent to the model");
    },
  );

  await t.step("a client that goes away frees its queue slot", async () => {
    const r = new ControlledRunner();
    const b = batcher([r], { maxQueue: 1 });
    const running = b.submit(image(0));
    await tick();
    const abort = new AbortController();
    const gone = b.submit(image(1), { signal: abort.signal });
    await assert.rejects(b.submit(image(2)), OverloadedError);
    abort.abort();
    await assert.rejects(gone, CancelledError);
    const next = b.submit(image(3));
    r.calls[0].finish();
    await running;
    await tick();
    assert.deepEqual(r.calls[1].firsts, [3]);
    r.calls[1].finish();
    await next;
  });

  await t.step("a failed run fails every request of its batch, and the runner keeps serving", async () => {
    const r = new ControlledRunner();
    const b = batcher([r]);
    const first = b.submit(image(0));
    await tick();
    const batch = [b.submit(image(1)), b.submit(image(2))];
    r.calls[0].finish();
    await first;
    await tick();
    r.calls[1].fail(new Error("worker died"));
    for (const p of batch) await assert.rejects(p, /worker died/);
    const after = b.submit(image(3));
    await tick();
    r.calls[2].finish();
    assert.equal((await after).row[0], 3);
  });

  await t.step("two runners take two batches in parallel", async () => {
    const r1 = new ControlledRunner();
    const r2 = new ControlledRunner();
    const b = batcher([r1, r2]);
    const a = b.submit(image(1));
    const c = b.submit(image(2));
    await tick();
    assert.equal(r1.calls.length + r2.calls.length, 2);
    r1.calls[0].finish();
    r2.calls[0].finish();
    await Promise.all([a, c]);
  });

  await t.step("a retired runner gets no more work; an added one picks up the queue", async () => {
    const dead = new ControlledRunner();
    const b = batcher([dead]);
    b.retire(dead);
    const waiting = b.submit(image(5));
    await tick();
    assert.equal(dead.calls.length, 0);
    const fresh = new ControlledRunner();
    b.add(fresh);
    await tick();
    fresh.calls[0].finish();
    assert.equal((await waiting).row[0], 5);
  });

  await t.step("drain refuses new work and resolves when the queue is empty", async () => {
    const r = new ControlledRunner();
    const b = batcher([r]);
    const running = b.submit(image(0));
    await tick();
    const queued = b.submit(image(1));
    let drained = false;
    const d = b.drain().then(() => drained = true);
    await assert.rejects(b.submit(image(2)), DrainingError);
    r.calls[0].finish();
    await running;
    await tick();
    assert.equal(drained, false, "still one queued");
    r.calls[1].finish();
    await queued;
    await d;
    assert.equal(drained, true);
  });
});

Deno.test("admission holds a queue place from arrival until the request is queued or fails", async () => {
  const r = new ControlledRunner();
  const b = batcher([r], { maxQueue: 2 });
  const a1 = b.admit();
  const a2 = b.admit();
  assert.equal(b.queueDepth, 2);
  assert.throws(() => b.admit(), OverloadedError);
  a2.release();
  a2.release(); // idempotent
  assert.equal(b.queueDepth, 1);
  const p = b.submit(image(1), { admission: a1 });
  await tick();
  assert.equal(b.queueDepth, 0, "the place became a running batch");
  a1.release(); // after submit: no effect
  assert.equal(b.queueDepth, 0);
  r.calls[0].finish();
  await p;
});

Deno.test("telemetry hooks that throw never strand a request", async () => {
  const r = new ControlledRunner();
  const fail = () => {
    throw new Error("registry gone");
  };
  const b = batcher([r], { onQueueDepth: fail, onBatch: fail });
  const admission = b.admit();
  const p = b.submit(image(3), { admission });
  await tick();
  assert.equal(r.calls.length, 1, "the batch was dispatched");
  r.finishAll();
  assert.equal((await p).row[0], 3);
  const again = b.submit(image(4));
  await tick();
  r.finishAll();
  assert.equal((await again).row[0], 4, "the runner came back to the pool");
});
