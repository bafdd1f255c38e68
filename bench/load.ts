/**
 * Load generation and statistics shared by `deno task bench` and `deno task soak`:
 * closed loops (keep-alive clients), open loops (a fixed arrival rate, as real
 * overload arrives), /health probes, and percentiles.
 */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
export const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
export function summary(latencies: number[]) {
  const s = [...latencies].sort((a, b) => a - b);
  return {
    p50_ms: round(percentile(s, 50)),
    p90_ms: round(percentile(s, 90)),
    p99_ms: round(percentile(s, 99)),
  };
}
export interface LoadResult {
  concurrency: number;
  seconds: number;
  requests: number;
  ok: number;
  errors: Record<string, number>;
  throughput_rps: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
}

/** Closed loop: `concurrency` clients each send the next request when the last answers (keep-alive). */
export async function closedLoop(
  url: string,
  body: Uint8Array<ArrayBuffer>,
  concurrency: number,
  seconds: number,
) {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let ok = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const start = performance.now();
      try {
        const res = await fetch(url, { method: "POST", body, headers: { "content-type": "image/jpeg" } });
        await res.arrayBuffer();
        if (res.status === 200) {
          ok++;
          latencies.push(performance.now() - start);
        } else errors[res.status] = (errors[res.status] ?? 0) + 1;
      } catch (err) {
        errors[String(err)] = (errors[String(err)] ?? 0) + 1;
      }
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  const failed = Object.values(errors).reduce((a, b) => a + b, 0);
  return {
    concurrency,
    seconds: round(elapsed),
    requests: ok + failed,
    ok,
    errors,
    throughput_rps: round(ok / elapsed),
    ...summary(latencies),
  } satisfies LoadResult;
}

/** Probes /health every 20 ms while `during` runs. */
export async function probeHealth(url: string, during: Promise<unknown>) {
  const latencies: number[] = [];
  let done = false;
  during.finally(() => done = true);
  while (!done) {
    const t0 = performance.now();
    const res = await fetch(url);
    await res.arrayBuffer();
    latencies.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { probes: latencies.length, ...summary(latencies), max_ms: round(Math.max(...latencies)) };
}

/** Open loop: requests sent at a fixed rate whatever the answers, as real overload arrives. */
export async function openLoop(url: string, body: Uint8Array<ArrayBuffer>, rate: number, seconds: number) {
  const admitted: number[] = [];
  const rejected: number[] = [];
  const other: Record<string, number> = {};
  const inflight: Promise<void>[] = [];
  const interval = 1000 / rate;
  const t0 = performance.now();
  let sent = 0;
  while (performance.now() - t0 < seconds * 1000) {
    const due = t0 + sent * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sent++;
    const start = performance.now();
    inflight.push((async () => {
      try {
        const res = await fetch(url, { method: "POST", body, headers: { "content-type": "image/jpeg" } });
        await res.arrayBuffer();
        const ms = performance.now() - start;
        if (res.status === 200) admitted.push(ms);
        else if (res.status === 503) rejected.push(ms);
        else other[res.status] = (other[res.status] ?? 0) + 1;
      } catch (err) {
        other[String(err)] = (other[String(err)] ?? 0) + 1;
      }
    })());
  }
  await Promise.all(inflight);
  return {
    offered_rps: round(rate),
    sent,
    admitted: admitted.length,
    rejected_503: rejected.length,
    rejected_share: round(rejected.length / sent, 3),
    other_statuses: other,
    admitted_latency: summary(admitted),
    reject_latency: summary(rejected),
  };
}

/** What the results were measured on. (Deno lets only --allow-all read /proc/cpuinfo, so no CPU model.) */
export function machine() {
  return { cores: navigator.hardwareConcurrency, deno: Deno.version.deno, v8: Deno.version.v8 };
}

export interface WrkResult {
  concurrency: number;
  throughput_rps: number;
  requests: number;
  non_2xx: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
}

function wrkMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === "us" ? n / 1000 : unit === "s" ? n * 1000 : n;
}

/**
 * The same closed loop driven by wrk, a load generator in C, when it is
 * installed (Debian's `wrk`); undefined otherwise. On a shared 2-core machine
 * the Deno client's own CPU competes with the gateway, so this is a
 * cross-check of how much of the gap to the ceiling is the client's.
 */
export async function wrkClosedLoop(
  url: string,
  /** A JPEG to POST; without one, wrk sends GETs. */
  bodyFile: string | undefined,
  concurrency: number,
  seconds: number,
  scriptFile?: string,
): Promise<WrkResult | undefined> {
  const script = bodyFile !== undefined && scriptFile !== undefined;
  if (script) {
    await Deno.writeTextFile(
      scriptFile,
      `local f = io.open(${
        JSON.stringify(bodyFile)
      }, "rb")\nwrk.method = "POST"\nwrk.body = f:read("*all")\n` +
        `f:close()\nwrk.headers["Content-Type"] = "image/jpeg"\n`,
    );
  }
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("wrk", {
      args: [
        "-t1",
        `-c${concurrency}`,
        `-d${seconds}s`,
        "--timeout",
        "30s",
        "--latency",
        ...(script ? ["-s", scriptFile] : []),
        url,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  } finally {
    if (script) await Deno.remove(scriptFile).catch(() => {});
  }
  const text = new TextDecoder().decode(out.stdout);
  const pct = (p: number) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(text);
    return m ? round(wrkMs(m[1], m[2])) : NaN;
  };
  const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const duration = Number(/requests in ([\d.]+)s/.exec(text)?.[1] ?? seconds);
  return {
    concurrency,
    throughput_rps: round((requests - non2xx) / duration),
    requests,
    non_2xx: non2xx,
    p50_ms: pct(50),
    p90_ms: pct(90),
    p99_ms: pct(99),
  };
}
