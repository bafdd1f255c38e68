import assert from "node:assert/strict";
import { CodedError, errorCode } from "./errors.ts";
import { callOnce, fromWire, RpcClient, toWire } from "./worker_rpc.ts";
import type { TestEvents, TestProtocol } from "../tests/support/rpc_worker.ts";

const WORKER = new URL("../tests/support/rpc_worker.ts", import.meta.url);

function start(options: ConstructorParameters<typeof RpcClient<TestProtocol, TestEvents>>[1] = {}) {
  return new RpcClient<TestProtocol, TestEvents>(new Worker(WORKER, { type: "module" }), options);
}

class DecodeError extends CodedError {
  constructor(message: string) {
    super("decode_failed", message);
  }
}

Deno.test("worker RPC", async (t) => {
  await t.step("a call returns its result; concurrent calls get their own replies", async () => {
    const client = start();
    try {
      assert.equal(await client.call("echo", "hi"), "hi");
      // The slow call is answered last; each promise still gets its own value.
      const order: number[] = [];
      const calls = [30, 0, 10].map((ms, value) =>
        client.call("delay", { ms, value }).then((v) => {
          order.push(v);
          return v;
        })
      );
      assert.deepEqual(await Promise.all(calls), [0, 1, 2]);
      assert.deepEqual(order, [1, 2, 0]);
      assert.equal(client.pending, 0);
    } finally {
      client.terminate();
    }
  });

  await t.step("buffers are transferred both ways, not copied", async () => {
    const client = start();
    try {
      const input = new Float32Array([1, 2, 3]);
      const reply = client.call("double", input.buffer, [input.buffer]);
      assert.equal(input.buffer.byteLength, 0, "the argument's buffer moved to the Worker");
      assert.deepEqual([...new Float32Array(await reply)], [2, 4, 6]);
    } finally {
      client.terminate();
    }
  });

  await t.step("an error crosses with its name, code and message", async () => {
    const client = start({ revive: { decode_failed: (m) => new DecodeError(m) } });
    const plain = start();
    try {
      const coded = await client.call("coded", "bad pixels").catch((e) => e);
      assert.ok(coded instanceof DecodeError, "revived as the host's class");
      assert.equal(errorCode(coded), "decode_failed");
      assert.equal(coded.name, "DecodeError");
      assert.equal(coded.message, "bad pixels");

      const unrevived = await plain.call("coded", "bad pixels").catch((e) => e);
      assert.ok(unrevived instanceof CodedError);
      assert.equal(errorCode(unrevived), "decode_failed", "the code alone tells it apart");
      assert.equal(unrevived.name, "DecodeError");

      const type = await plain.call("plain", "no").catch((e) => e);
      assert.equal(type.name, "TypeError");
      assert.equal(type.message, "no");
      assert.equal(errorCode(type), undefined);

      const unknown = await plain.call("nope" as "echo", "x").catch((e) => e);
      assert.match(unknown.message, /Unknown method nope/);
      assert.equal(await plain.call("echo", "still serving"), "still serving");
    } finally {
      client.terminate();
      plain.terminate();
    }
  });

  await t.step("what cannot be cloned fails that call only", async () => {
    const client = start();
    try {
      const result = await client.call("uncloneable", undefined).catch((e) => e);
      assert.equal(result.name, "DataCloneError");
      const arg = await client.call("echo", (() => {}) as unknown as string).catch((e) => e);
      assert.equal(arg.name, "DataCloneError");
      assert.equal(client.pending, 0);
      assert.equal(await client.call("echo", "fine"), "fine");
    } finally {
      client.terminate();
    }
  });

  await t.step("events reach their handler; a throwing handler changes nothing", async () => {
    const ticks: number[] = [];
    const client = start({
      on: {
        tick: (n) => {
          ticks.push(n);
          if (n === 0) throw new Error("handler bug");
        },
      },
    });
    try {
      await client.call("notify", 3);
      assert.deepEqual(ticks, [0, 1, 2]);
    } finally {
      client.terminate();
    }
  });

  await t.step("a Worker that dies fails every call in flight at once, and the next ones", async () => {
    const crashes: string[] = [];
    const client = start({ onCrash: (r) => crashes.push(r), crashError: (r) => new Error(`gone: ${r}`) });
    const slow = client.call("delay", { ms: 60_000, value: 1 });
    const crash = client.call("crash", undefined);
    const [a, b] = await Promise.all([slow.catch((e) => e), crash.catch((e) => e)]);
    assert.match(a.message, /^gone: .*boom/);
    assert.match(b.message, /^gone: .*boom/);
    assert.equal(crashes.length, 1);
    assert.ok(client.dead);
    await assert.rejects(client.call("echo", "x"), /^Error: gone/);
  });

  await t.step("terminate fails calls in flight with the default worker_crashed error", async () => {
    const crashes: string[] = [];
    const client = start({ onCrash: (r) => crashes.push(r) });
    const slow = client.call("delay", { ms: 60_000, value: 1 });
    client.terminate("closing");
    const err = await slow.catch((e) => e);
    assert.equal(errorCode(err), "worker_crashed");
    assert.match(err.message, /closing/);
    assert.deepEqual(crashes, [], "a termination asked for is not a crash");
  });

  await t.step("callOnce starts, calls and stops a Worker", async () => {
    assert.equal(await callOnce<TestProtocol, "echo">(WORKER, "echo", "once"), "once");
    const err = await callOnce<TestProtocol, "plain">(WORKER, "plain", "failed").catch((e) => e);
    assert.equal(err.message, "failed");
  });

  await t.step("wire form round-trips", () => {
    const wire = toWire(new DecodeError("m"));
    assert.deepEqual(wire, { name: "DecodeError", message: "m", code: "decode_failed" });
    assert.deepEqual(toWire("text"), { name: "Error", message: "text" });
    const back = fromWire(structuredClone(wire));
    assert.equal(back.name, "DecodeError");
    assert.equal(errorCode(back), "decode_failed");
  });
});
