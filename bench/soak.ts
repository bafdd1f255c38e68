/**
 * `deno task soak`: the real gateway under mixed load at 70% of its measured
 * capacity for SOAK_SECONDS (default 600). Every 30 s it records the window's
 * p99, unexpected answers and resident memory, then writes bench/soak.json
 * and the soak section of bench/RESULTS.md. Not part of `deno task test`.
 *
 * The mix: 80% coffee.jpg, 5% the 4000x2660 photo, 5% a PNG with alpha, 10%
 * bad uploads (garbage, truncated JPEG) that must be answered 4xx.
 */
import { freePort, startTask, waitReady } from "../tests/support/gateway_process.ts";
import { closedLoop, machine, round, summary } from "./load.ts";

const SECONDS = Number(Deno.env.get("SOAK_SECONDS") ?? 600);
const WINDOW_S = 30;
const LOAD_SHARE = 0.7;
const FIXTURES = new URL("../tests/fixtures/images/", import.meta.url);
const OUT = new URL("./", import.meta.url);
const log = (msg: string) => console.error(`[soak] ${msg}`);

interface Kind {
  name: string;
  share: number;
  body: Uint8Array<ArrayBuffer>;
  type: string;
  /** The status this upload must get. */
  expect: number;
}

async function rss(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(/^process_resident_memory_bytes (\d+)/m.exec(text)?.[1] ?? NaN);
}

const coffee = await Deno.readFile(new URL("coffee.jpg", FIXTURES));
const kinds: Kind[] = [
  { name: "coffee.jpg", share: 0.8, body: coffee, type: "image/jpeg", expect: 200 },
  {
    name: "chelsea_4000x2660.jpg",
    share: 0.05,
    body: await Deno.readFile(new URL("chelsea_4000x2660.jpg", FIXTURES)),
    type: "image/jpeg",
    expect: 200,
  },
  {
    name: "coffee_alpha.png",
    share: 0.05,
    body: await Deno.readFile(new URL("coffee_alpha.png", FIXTURES)),
    type: "image/png",
    expect: 200,
  },
  {
    name: "garbage",
    share: 0.05,
    body: new TextEncoder().encode("not an image at all"),
    type: "image/jpeg",
    expect: 415,
  },
  { name: "truncated.jpg", share: 0.05, body: coffee.slice(0, 2000), type: "image/jpeg", expect: 422 },
];
/** Deterministic interleaving: request i takes the kind whose cumulative share covers (i * golden) mod 1. */
function kindOf(i: number): Kind {
  const x = (i * 0.6180339887) % 1;
  let acc = 0;
  for (const k of kinds) {
    acc += k.share;
    if (x < acc) return k;
  }
  return kinds[0];
}

const server = await startTask({ MODEL_SOURCE: "synthetic", LOG_LEVEL: "warning", PORT: String(freePort()) });
const base = `http://127.0.0.1:${server.port}`;
const started = new Date().toISOString();
let result;
try {
  await waitReady(server.port, 180_000);
  await closedLoop(`${base}/predict`, coffee, 4, 3); // warm up
  const capacity = (await closedLoop(`${base}/predict`, coffee, 16, 15)).throughput_rps;
  const rate = capacity * LOAD_SHARE;
  log(`capacity ${capacity} req/s with coffee.jpg; soaking at ${round(rate)} req/s for ${SECONDS} s`);
  const warmRss = await rss(base);

  const windows: Array<
    { t_s: number; requests: number; p99_ms: number; unexpected: number; rss_mib: number }
  > = [];
  const all: number[] = [];
  let unexpectedTotal = 0;
  const unexpectedSamples: string[] = [];
  const inflight = new Set<Promise<void>>();
  const t0 = performance.now();
  let sent = 0;
  for (let w = 0; w * WINDOW_S < SECONDS; w++) {
    const latencies: number[] = [];
    let unexpected = 0;
    const windowEnd = t0 + Math.min(SECONDS, (w + 1) * WINDOW_S) * 1000;
    while (performance.now() < windowEnd) {
      const wait = t0 + (sent * 1000) / rate - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const kind = kindOf(sent++);
      const begin = performance.now();
      const p = (async () => {
        try {
          const res = await fetch(`${base}/predict`, {
            method: "POST",
            body: kind.body,
            headers: { "content-type": kind.type },
          });
          await res.arrayBuffer();
          if (res.status !== kind.expect) {
            unexpected++;
            if (unexpectedSamples.length < 10) unexpectedSamples.push(`${kind.name}: ${res.status}`);
          } else if (kind.expect === 200) latencies.push(performance.now() - begin);
        } catch (err) {
          unexpected++;
          if (unexpectedSamples.length < 10) unexpectedSamples.push(`${kind.name}: ${err}`);
        }
      })();
      inflight.add(p);
      p.finally(() => inflight.delete(p));
    }
    await Promise.all(inflight);
    const s = summary(latencies);
    const mem = await rss(base);
    windows.push({
      t_s: Math.round((performance.now() - t0) / 1000),
      requests: latencies.length + unexpected,
      p99_ms: s.p99_ms,
      unexpected,
      rss_mib: round(mem / 2 ** 20),
    });
    all.push(...latencies);
    unexpectedTotal += unexpected;
    log(
      `t=${windows.at(-1)!.t_s}s p99 ${s.p99_ms} ms, unexpected ${unexpected}, RSS ${
        round(mem / 2 ** 20)
      } MiB`,
    );
  }
  const p99s = windows.map((w) => w.p99_ms);
  const mems = windows.map((w) => w.rss_mib);
  result = {
    started,
    machine: machine(),
    seconds: SECONDS,
    capacity_rps: capacity,
    offered_rps: round(rate),
    sent,
    unexpected: unexpectedTotal,
    unexpected_samples: unexpectedSamples,
    mix: kinds.map((k) => ({ name: k.name, share: k.share, expect: k.expect })),
    latency_ok_requests: summary(all),
    p99_by_window_ms: { min: Math.min(...p99s), max: Math.max(...p99s) },
    rss_mib: {
      warm: round(warmRss / 2 ** 20),
      min: Math.min(...mems),
      max: Math.max(...mems),
      last: mems.at(-1),
    },
    windows,
  };
} finally {
  server.child.kill("SIGTERM");
  await server.status;
}

await Deno.writeTextFile(new URL("soak.json", OUT), JSON.stringify(result, null, 2) + "\n");
const section = `<!-- soak:start -->
## Soak (\`deno task soak\`)

Run on ${result.started} (${result.machine.cores} cores, Deno ${result.machine.deno}): ${result.seconds} s of mixed uploads
(80% coffee.jpg, 5% the 4000x2660 photo, 5% PNG with alpha, 10% bad uploads that must get 4xx) sent open-loop at
${result.offered_rps} req/s, 70% of the ${result.capacity_rps} req/s measured with coffee.jpg at c=16 just before.

- ${result.sent} requests; answers other than the expected status: **${result.unexpected}**.
- Latency of the successful predictions over the whole run: p50 ${result.latency_ok_requests.p50_ms} ms, p99
  ${result.latency_ok_requests.p99_ms} ms; p99 per 30 s window between ${result.p99_by_window_ms.min} and
  ${result.p99_by_window_ms.max} ms.
- Resident memory: ${result.rss_mib.warm} MiB warm; between ${result.rss_mib.min} and ${result.rss_mib.max} MiB over the
  run, ${result.rss_mib.last} MiB at the end.

| t (s) | requests | p99 ms | unexpected | RSS MiB |
| --- | --- | --- | --- | --- |
${
  result.windows.map((w) => `| ${w.t_s} | ${w.requests} | ${w.p99_ms} | ${w.unexpected} | ${w.rss_mib} |`)
    .join("\n")
}
<!-- soak:end -->
`;
const previous = await Deno.readTextFile(new URL("RESULTS.md", OUT)).catch(() => "# Benchmark results\n");
const kept = previous.replace(/\n?<!-- soak:start -->[\s\S]*<!-- soak:end -->\n?/, "\n");
await Deno.writeTextFile(new URL("RESULTS.md", OUT), `${kept.trimEnd()}\n\n${section}`);
log("wrote bench/soak.json and the soak section of bench/RESULTS.md");
if (result.unexpected > 0) Deno.exitCode = 1;
