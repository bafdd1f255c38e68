import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { guardedSink, jsonLines, logSinkFailures } from "./logger.ts";

const record = (message: string): LogRecord => ({
  category: ["inference-gateway", "test"],
  level: "info",
  message: [message],
  rawMessage: message,
  properties: { request_id: "r1" },
  timestamp: Date.now(),
});

Deno.test("guardedSink", async (t) => {
  await t.step("a throwing sink never throws into the caller; failures are counted", () => {
    const before = logSinkFailures.count;
    const sink = guardedSink(() => {
      throw new Error("stdout closed");
    });
    const originalError = console.error;
    const reported: unknown[] = [];
    console.error = (...args: unknown[]) => reported.push(args);
    try {
      sink(record("a"));
      sink(record("b"));
    } finally {
      console.error = originalError;
    }
    assert.equal(logSinkFailures.count - before, 2);
    assert.equal(reported.length, 1, "reported once");
  });

  await t.step("keeps the inner sink's dispose hook so buffered lines are flushed at exit", async () => {
    let disposed = false;
    const inner = Object.assign(() => {}, {
      [Symbol.asyncDispose]: () => Promise.resolve(void (disposed = true)),
    });
    const sink = guardedSink(inner) as unknown as AsyncDisposable;
    await sink[Symbol.asyncDispose]();
    assert.ok(disposed);
  });
});

Deno.test("JSON Lines format puts fields at top level with a stable message template", () => {
  const line = JSON.parse(jsonLines(record("{method} done")));
  assert.equal(line.level, "INFO");
  assert.equal(line.logger, "inference-gateway.test");
  assert.equal(line.message, "{method} done");
  assert.equal(line.request_id, "r1");
});
