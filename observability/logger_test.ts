import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { configureLogging, guardedSink, jsonLines, logger, logSinkFailures } from "./logger.ts";

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

Deno.test("JSON Lines: the message rendered for people, the values and the template as fields", async (t) => {
  const parse = (r: LogRecord) => JSON.parse(jsonLines(r));

  await t.step("placeholders are rendered, strings unquoted", () => {
    const line = parse({
      ...record("{method} {route} {status}"),
      message: ["", "POST", " ", "/predict", " ", 200, ""],
      properties: { method: "POST", route: "/predict", status: 200, request_id: "r1" },
    });
    assert.equal(line.message, "POST /predict 200");
    assert.equal(line.message_template, "{method} {route} {status}");
    assert.equal(line.method, "POST");
    assert.equal(line.status, 200);
    assert.equal(line.level, "INFO");
    assert.equal(line.logger, "inference-gateway.test");
    assert.equal(line.request_id, "r1");
  });

  await t.step("objects render as JSON, errors as their message", () => {
    const line = parse({
      ...record("{a} and {b}"),
      message: ["", { x: 1 }, " and ", new Error("disk full"), ""],
      properties: {},
    });
    assert.equal(line.message, '{"x":1} and disk full');
  });

  await t.step("a message without placeholders carries no template", () => {
    const line = parse(record("Shutdown complete"));
    assert.equal(line.message, "Shutdown complete");
    assert.equal("message_template" in line, false);
  });

  await t.step("a real logger call renders the same way", async () => {
    const lines: string[] = [];
    await configureLogging({ level: "info", sink: (r) => lines.push(jsonLines(r)) });
    logger("test").info("Listening on http://{hostname}:{port}", { hostname: "127.0.0.1", port: 8000 });
    const line = JSON.parse(lines.at(-1)!);
    assert.equal(line.message, "Listening on http://127.0.0.1:8000");
    assert.equal(line.port, 8000);
  });
});
