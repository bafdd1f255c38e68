/**
 * Structured logging: LogTape writing JSON Lines to stdout.
 *
 * LogTape replaces std/log (the design's first choice): std/log is published
 * only on JSR, which our build machines cannot reach, and its own docs mark it
 * as likely to be removed. LogTape gives us implicit per-request context
 * (request and trace ids reach every line without being passed by hand) and
 * non-blocking stream sinks.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import {
  configure,
  dispose,
  getJsonLinesFormatter,
  getLogger,
  getStreamSink,
  type Logger,
  type LogLevel,
  type LogRecord,
  type Sink,
  withContext,
} from "@logtape/logtape";

export type { Logger, LogLevel, LogRecord, Sink };
export { withContext };

/** Root category: every logger of the service lives under it. */
export const ROOT_CATEGORY = "inference-gateway";

export function logger(...sub: string[]): Logger {
  return getLogger([ROOT_CATEGORY, ...sub]);
}

const formatJsonLine = getJsonLinesFormatter({
  categorySeparator: ".",
  message: "rendered",
  properties: "flatten",
});

/** A placeholder's value as text: strings as they are (LogTape's JSON renderer would quote them). */
function placeholderText(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.message;
  if (value !== null && typeof value === "object") {
    try {
      return JSON.stringify(value) ?? String(value);
    } catch {
      return String(value);
    }
  }
  return String(value);
}

/**
 * One JSON line per record: `message` rendered for people (`POST /predict 200`), the values also as fields
 * of their own, and `message_template` (`{method} {route} {status}`) for grouping in log search.
 */
export function jsonLines(record: LogRecord): string {
  if (record.message.length === 1) return formatJsonLine(record);
  let rendered = "";
  for (let i = 0; i < record.message.length; i++) {
    rendered += i % 2 === 0 ? String(record.message[i]) : placeholderText(record.message[i]);
  }
  const template = typeof record.rawMessage === "string" ? record.rawMessage : record.rawMessage.join("{}");
  return formatJsonLine({
    ...record,
    message: [rendered],
    properties: { message_template: template, ...record.properties },
  });
}

/** Counts sink failures; a failing sink must never fail the request that logged. */
export const logSinkFailures = { count: 0 };

/**
 * Wraps a sink so an exception inside it is counted and reported once on
 * stderr instead of reaching the caller.
 */
export function guardedSink(sink: Sink, onFailure?: (err: unknown) => void): Sink {
  let reported = false;
  const guarded = (record: LogRecord) => {
    try {
      sink(record);
    } catch (err) {
      logSinkFailures.count++;
      onFailure?.(err);
      if (!reported) {
        reported = true;
        try {
          console.error(`inference-gateway: log sink failed, further failures are only counted: ${err}`);
        } catch { /* nothing left to tell */ }
      }
    }
  };
  // Keep the inner sink's flush hooks: without them dispose() would not wait
  // for buffered lines and the last ones before exit would be lost.
  const hooks = sink as Partial<AsyncDisposable & Disposable & { drain: () => Promise<void> }>;
  const asyncDispose = hooks[Symbol.asyncDispose];
  const dispose = hooks[Symbol.dispose];
  const drain = hooks.drain;
  return Object.assign(guarded, {
    ...(asyncDispose ? { [Symbol.asyncDispose]: asyncDispose.bind(sink) } : {}),
    ...(dispose ? { [Symbol.dispose]: dispose.bind(sink) } : {}),
    ...(drain ? { drain: drain.bind(sink) } : {}),
  });
}

export interface LoggingOptions {
  level: LogLevel;
  /** Defaults to a JSON Lines stream sink on stdout. */
  sink?: Sink;
}

/** Configures LogTape once for the process (tests reconfigure with their own sink). */
export async function configureLogging(options: LoggingOptions): Promise<void> {
  const sink = options.sink ?? getStreamSink(Deno.stdout.writable, { formatter: jsonLines });
  await configure({
    reset: true,
    sinks: { main: guardedSink(sink) },
    loggers: [
      { category: [ROOT_CATEGORY], lowestLevel: options.level, sinks: ["main"] },
      // LogTape reports its own problems under this category.
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
    contextLocalStorage: new AsyncLocalStorage<Record<string, unknown>>(),
  });
}

/** Flushes and closes sinks; call last on shutdown. */
export async function shutdownLogging(): Promise<void> {
  await dispose();
}
