/**
 * The batcher as a state machine. Each request goes admitted -> queued ->
 * batched (running) -> answered, or leaves the queue timed out or because its
 * client went away; drain() waits for every one of them. Each test checks the
 * state between transitions (queue depth, what the runner was given, whether a
 * promise settled), not only the end result, and each limit is tried at its
 * value, one below and one above.
 */
import assert from "node:assert/strict";
import { Batcher, CancelledError, DeadlineError, DrainingError, OverloadedError } from "./batcher.ts";
import { TENSOR_SIZE } from "../../image/preprocess.ts";
import type { ModelRunner } from "./runner.ts";
import { ControlledRunner } from "../../tests/support/controlled_runner.ts";

const image = (marker: number) => {
  const t = new Float32Array(TENSOR_SIZE);
  t[0] = marker;
  return t;
};
const tick = () => new Promise((r) => setTimeout(r, 0));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits for `condition`, failing (never hanging) if it does not hold within 10 s. */
async function until(condition: () => boolean, what: string, step = () => {}): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    step();
    await sleep(5);
  }
}

function batcher(runners: ModelRunner[], options: Partial<ConstructorParameters<typeof Batcher>[1]> = {}) {
  return new Batcher(runners, { maxBatchSize: 4, maxBatchDelayMs: 0, maxQueue: 8, classes: 3, ...options });
}

/** Whether a promise has settled, without waiting for it. */
function settled(p: Promise<unknown>): () => boolean {
  let done = false;
  p.then(() => done = true, () => done = true);
  return () => done;
}

Deno.test("a full batch goes at once even with a fill delay; one short waits for the delay", async (t) => {
  // Far beyond a tick: only a full batch can explain a dispatch before it.
  const DELAY = 300;
  for (const n of [3, 4, 5]) {
    await t.step(`${n} requests, MAX_BATCH_SIZE=4, MAX_BATCH_DELAY_MS=${DELAY}`, async () => {
      const r = new ControlledRunner();
      const b = batcher([r], { maxBatchDelayMs: DELAY });
      const started = performance.now();
      const jobs = Array.from({ length: n }, (_, i) => b.submit(image(i + 1)));
      await tick();
      if (n < 4) {
        if (performance.now() - started < DELAY) {
          assert.equal(r.calls.length, 0, "a batch one short of full waits for more");
        }
        assert.equal(b.queueDepth, n);
        await until(() => r.calls.length > 0, "the batch is dispatched");
        assert.ok(performance.now() - started >= DELAY - 5, "and goes when the delay is up");
        assert.equal(r.calls[0].batch, n);
      } else {
        assert.equal(r.calls.length, 1, "a full batch is dispatched without waiting for the delay");
        assert.equal(r.calls[0].batch, 4);
        assert.deepEqual(r.calls[0].firsts, [1, 2, 3, 4]);
        assert.equal(b.queueDepth, n - 4, "the rest stays queued");
      }
      await until(() => b.queueDepth === 0 && r.calls.length === 0, "every batch ran", () => r.finishAll());
      const rows = await Promise.all(jobs);
      assert.deepEqual(rows.map((x) => x.row[0]), jobs.map((_, i) => i + 1));
    });
  }
});

Deno.test("with a fill delay, a partial batch goes when the delay expires, not before", async () => {
  const DELAY = 200;
  const r = new ControlledRunner();
  const b = batcher([r], { maxBatchDelayMs: DELAY });
  const t0 = performance.now();
  const first = b.submit(image(1));
  await sleep(5);
  const second = b.submit(image(2));
  // On a loaded machine a 5 ms sleep can overrun; the checks below hold whenever it did not.
  const submittedAt = performance.now() - t0;
  if (submittedAt < DELAY) assert.equal(r.calls.length, 0, "queued, waiting for the batch to fill");
  await until(() => r.calls.length > 0, "the batch is dispatched");
  assert.ok(performance.now() - t0 >= DELAY - 2, "not dispatched before the delay");
  if (submittedAt < DELAY) assert.deepEqual(r.calls[0].firsts, [1, 2], "the second request joined the batch");
  await until(() => b.queueDepth === 0 && r.calls.length === 0, "every batch ran", () => r.finishAll());
  await Promise.all([first, second]);
});

Deno.test("drain does not resolve while a batch runs with the queue empty", async () => {
  const r = new ControlledRunner();
  const b = batcher([r]);
  const running = b.submit(image(1));
  await tick();
  assert.equal(r.calls.length, 1, "running");
  assert.equal(b.queueDepth, 0, "and nothing queued");
  const drained = settled(b.drain());
  await tick();
  assert.equal(drained(), false, "a batch in flight keeps drain waiting");
  await assert.rejects(b.submit(image(2)), DrainingError);
  assert.throws(() => b.admit(), DrainingError);
  r.calls[0].finish();
  assert.equal((await running).row[0], 1, "the running request is answered");
  await tick();
  assert.equal(drained(), true, "then drain resolves");
});

Deno.test("drain resolves at once on an idle batcher, and after a failed batch", async () => {
  const idle = batcher([new ControlledRunner()]);
  const d = settled(idle.drain());
  await tick();
  assert.equal(d(), true);

  const r = new ControlledRunner();
  const b = batcher([r]);
  const job = b.submit(image(1));
  await tick();
  const drained = settled(b.drain());
  r.calls[0].fail(new Error("session lost"));
  await assert.rejects(job, /session lost/);
  await tick();
  assert.equal(drained(), true, "a failed batch counts as finished");
});

Deno.test("drain waits for admitted requests still being decoded, which may still queue", async () => {
  const r = new ControlledRunner();
  const b = batcher([r]);
  const decoding = b.admit();
  assert.equal(b.queueDepth, 1);
  const drained = settled(b.drain());
  await tick();
  assert.equal(drained(), false, "an admitted request is work drain must wait for");
  // The admission was taken before draining began: it is served.
  const job = b.submit(image(5), { admission: decoding });
  await tick();
  assert.equal(r.calls.length, 1);
  assert.equal(drained(), false, "now running");
  r.calls[0].finish();
  assert.equal((await job).row[0], 5);
  await tick();
  assert.equal(drained(), true);

  // An admission given back (the request failed before the queue) also ends the wait.
  const b2 = batcher([new ControlledRunner()]);
  const a = b2.admit();
  const d2 = settled(b2.drain());
  await tick();
  assert.equal(d2(), false);
  a.release();
  await tick();
  assert.equal(d2(), true);
});

Deno.test("a queued request that times out leaves the queue; one already running does not", async (t) => {
  await t.step("queued -> timed out: depth falls, the runner never sees it, drain ends", async () => {
    const r = new ControlledRunner();
    const b = batcher([r]);
    const busy = b.submit(image(0));
    await tick();
    const queuedAt = performance.now();
    const late = b.submit(image(9), { timeoutMs: 100 });
    const lateDone = settled(late);
    assert.equal(b.queueDepth, 1, "queued behind the running batch");
    await sleep(5);
    if (performance.now() - queuedAt < 100) assert.equal(lateDone(), false, "not yet timed out");
    const err = await late.catch((e) => e);
    assert.ok(err instanceof DeadlineError);
    assert.equal(err.timeoutMs, 100);
    assert.ok(performance.now() - queuedAt >= 98, "not before its deadline");
    assert.equal(b.queueDepth, 0, "it left the queue");
    const drained = settled(b.drain());
    r.calls[0].finish();
    await busy;
    await tick();
    assert.equal(r.calls.length, 1, "the timed-out request never ran");
    assert.equal(drained(), true);
  });

  await t.step("running -> answered after its deadline passed: the deadline no longer applies", async () => {
    const r = new ControlledRunner();
    const b = batcher([r]);
    const job = b.submit(image(3), { timeoutMs: 10 });
    await tick();
    assert.equal(r.calls.length, 1, "started before its deadline");
    await sleep(30);
    r.calls[0].finish();
    assert.equal((await job).row[0], 3, "answered, not timed out");
  });
});

Deno.test("a client that goes away: queued leaves, running is still answered", async (t) => {
  await t.step("queued -> client gone", async () => {
    const r = new ControlledRunner();
    const depths: number[] = [];
    const b = batcher([r], { onQueueDepth: (d) => depths.push(d) });
    const busy = b.submit(image(0));
    await tick();
    const abort = new AbortController();
    const gone = b.submit(image(1), { signal: abort.signal });
    const stays = b.submit(image(2));
    assert.equal(b.queueDepth, 2);
    abort.abort();
    await assert.rejects(gone, CancelledError);
    assert.equal(b.queueDepth, 1, "only the one that went away left");
    assert.equal(depths.at(-1), 1, "and the depth gauge heard of it");
    r.calls[0].finish();
    await busy;
    await tick();
    assert.deepEqual(r.calls[1].firsts, [2], "the batch holds only the request still wanted");
    r.calls[1].finish();
    await stays;
  });

  await t.step("a signal already aborted is refused before it queues", async () => {
    const b = batcher([new ControlledRunner()]);
    const abort = new AbortController();
    abort.abort();
    await assert.rejects(b.submit(image(1), { signal: abort.signal }), CancelledError);
    assert.equal(b.queueDepth, 0);
  });

  await t.step("running -> client gone: the batch is not disturbed", async () => {
    const r = new ControlledRunner();
    const b = batcher([r]);
    const abort = new AbortController();
    const job = b.submit(image(4), { signal: abort.signal });
    await tick();
    abort.abort();
    r.calls[0].finish();
    assert.equal((await job).row[0], 4);
  });
});

Deno.test("MAX_QUEUE: at the limit accepted, one above refused, one below leaves a place", async () => {
  for (const maxQueue of [1, 2, 3]) {
    const r = new ControlledRunner();
    const b = batcher([r], { maxQueue, maxBatchSize: 1 });
    const busy = b.submit(image(0));
    await tick();
    const queued: Array<Promise<unknown>> = [];
    for (let i = 0; i < maxQueue - 1; i++) queued.push(b.submit(image(i + 1)));
    assert.equal(b.queueDepth, maxQueue - 1, "one below the limit");
    const admission = b.admit(); // the last place
    assert.equal(b.queueDepth, maxQueue, "at the limit");
    assert.throws(() => b.admit(), OverloadedError);
    await assert.rejects(
      b.submit(image(99)),
      (e: unknown) => e instanceof OverloadedError && e.queueLimit === maxQueue,
    );
    admission.release();
    queued.push(b.submit(image(7)));
    assert.equal(b.queueDepth, maxQueue);
    b.drain();
    for (let i = 0; i <= maxQueue; i++) {
      r.finishAll();
      await tick();
    }
    await busy;
    await Promise.all(queued);
  }
});

Deno.test("MAX_BATCH_SIZE: a queue of size-1, size and size+1 splits into batches no larger", async () => {
  for (const waiting of [3, 4, 5]) {
    const r = new ControlledRunner();
    const b = batcher([r], { maxBatchSize: 4 });
    const busy = b.submit(image(0));
    await tick();
    const jobs = Array.from({ length: waiting }, (_, i) => b.submit(image(i + 1)));
    r.calls[0].finish();
    await busy;
    await tick();
    assert.equal(r.calls[1].batch, Math.min(waiting, 4), `${waiting} waiting`);
    assert.equal(b.queueDepth, Math.max(0, waiting - 4));
    r.calls[1].finish();
    await tick();
    if (waiting > 4) {
      assert.deepEqual(r.calls[2].firsts, [5]);
      r.calls[2].finish();
    } else {
      assert.equal(r.calls.length, 2);
    }
    const rows = await Promise.all(jobs);
    assert.deepEqual(rows.map((x) => x.row[0]), jobs.map((_, i) => i + 1), "each gets its own row, in order");
  }
});

Deno.test("a runner retired while it runs finishes its batch and gets no more work", async () => {
  const dying = new ControlledRunner();
  const healthy = new ControlledRunner();
  const b = batcher([dying], { maxBatchSize: 1 });
  const first = b.submit(image(1));
  await tick();
  assert.equal(dying.calls.length, 1, "running on the runner about to be retired");
  b.retire(dying);
  assert.equal(b.runners.length, 0);
  const second = b.submit(image(2));
  dying.calls[0].finish();
  assert.equal((await first).row[0], 1, "its batch is still answered");
  await tick();
  assert.equal(dying.calls.length, 1, "the retired runner was not handed the next request");
  assert.equal(b.queueDepth, 1, "which waits for a runner");
  b.add(healthy);
  await tick();
  healthy.calls[0].finish();
  assert.equal((await second).row[0], 2);
});

Deno.test("draining: the last queued request leaving (client gone) while a batch runs does not end the drain", async () => {
  const r = new ControlledRunner();
  const b = batcher([r]);
  const running = b.submit(image(1));
  await tick();
  const abort = new AbortController();
  const queued = b.submit(image(2), { signal: abort.signal });
  const drained = settled(b.drain());
  abort.abort();
  await assert.rejects(queued, CancelledError);
  assert.equal(b.queueDepth, 0, "the queue is empty");
  await tick();
  assert.equal(drained(), false, "but the running batch still holds the drain");
  r.calls[0].finish();
  await running;
  await tick();
  assert.equal(drained(), true);
});
