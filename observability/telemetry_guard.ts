/**
 * Telemetry never throws into a request. Every hook and observation on the
 * request path runs through `guarded`/`recordSafely`: one that throws, or
 * carries a number that is not finite (prom-client would store a gauge or
 * counter as NaN for ever, and throws for a histogram), is dropped, counted
 * by signal for `telemetry_dropped_total{signal}`, and logged once per signal.
 *
 * The counts are per process, like the log sink's failures: hooks run in
 * model/ and observability/, and one counter must see them all.
 */
import { logger } from "./logger.ts";

const dropped = new Map<string, number>();
const logged = new Set<string>();

/** Observations dropped so far in this process, by signal (what was being recorded). */
export function droppedTelemetry(): ReadonlyMap<string, number> {
  return dropped;
}

/** The numbers an observation carries: numeric arguments, and numeric fields of object arguments. */
function numbers(args: readonly unknown[]): number[] {
  const out: number[] = [];
  for (const arg of args) {
    if (typeof arg === "number") out.push(arg);
    else if (arg !== null && typeof arg === "object" && !ArrayBuffer.isView(arg)) {
      for (const value of Object.values(arg)) if (typeof value === "number") out.push(value);
    }
  }
  return out;
}

function drop(signal: string, reason: unknown): void {
  dropped.set(signal, (dropped.get(signal) ?? 0) + 1);
  if (logged.has(signal)) return;
  logged.add(signal);
  try {
    logger("telemetry").warn("Dropped a {signal} observation, further drops are only counted: {error}", {
      signal,
      error: reason instanceof Error ? reason.message : String(reason),
    });
  } catch { /* the logger is telemetry too */ }
}

/**
 * Runs `observe` unless one of `values` is not a finite number; never throws.
 * Returns whether the observation was recorded.
 */
export function recordSafely(signal: string, values: readonly number[], observe: () => void): boolean {
  const bad = values.find((v) => !Number.isFinite(v));
  if (bad !== undefined) {
    drop(signal, `${bad} is not a finite number`);
    return false;
  }
  try {
    observe();
    return true;
  } catch (err) {
    drop(signal, err);
    return false;
  }
}

/** `hook` wrapped so it never throws and never records a non-finite number; undefined stays undefined. */
export function guarded<A extends unknown[]>(
  signal: string,
  hook: ((...args: A) => void) | undefined,
): ((...args: A) => void) | undefined {
  if (!hook) return undefined;
  return (...args: A) => void recordSafely(signal, numbers(args), () => hook(...args));
}
