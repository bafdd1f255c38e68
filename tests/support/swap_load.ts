/**
 * Model version swaps under load, against a real gateway process in poll
 * mode: keep-alive clients post photos to /predict without pause, a probe
 * asks /ready every 100 ms, and each new version is copied into the
 * repository the way docs/operations.md says (a hidden directory renamed into
 * place). Counts every non-2xx answer, every connection lost under a request,
 * every /ready that is not 200, and which version answered; samples the
 * gateway's resident memory before and after each swap. The end-to-end test
 * asserts the counts; `deno task bench:swap` reports the memory.
 */
import { ConnectionLost, RawConnection, requestBytes } from "./raw_http.ts";

export interface SwapOptions {
  port: number;
  /** The repository directory the gateway polls. */
  root: string;
  model: string;
  /** The model file every new version is made from (hard-linked, so a swap copies nothing). */
  file: string;
  /** Versions to bring in, in order; each must be higher than the one serving. */
  versions: number[];
  clients: number;
  /** The request each client sends, again and again (a photo to /predict). */
  request: Uint8Array;
  /** Log lines of the gateway, to see the old version unloaded. */
  lines: ReadonlyArray<Record<string, unknown>>;
  /** Per swap, how long to wait for the new version to answer. */
  swapTimeoutMs: number;
  /** After the old version is unloaded, how long to wait before sampling memory (default 1 s). */
  settleMs?: number;
}

export interface SwapRecord {
  version: number;
  /** From the rename to the first answer by the new version. */
  secondsToServe: number;
  /** Resident memory of the gateway just before the swap and once the old version was unloaded. */
  rssBeforeBytes: number;
  rssAfterBytes: number;
}

export interface SwapReport {
  answered: number;
  non2xx: Array<{ status: number; body: string }>;
  /** Requests whose connection closed before their response was complete. */
  dropped: number;
  readyProbes: number;
  readyNot200: number[];
  /** Answers per version that computed them. */
  versions: Record<string, number>;
  /** Answers that did not name a version. */
  unnamed: number;
  swaps: SwapRecord[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function residentBytes(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { connection: "close" } });
  const text = await res.text();
  return Number(/^process_resident_memory_bytes (\S+)$/m.exec(text)?.[1] ?? NaN);
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Brings `version` in as an operator would: a hidden directory, then one rename. */
export async function copyVersionIn(
  root: string,
  model: string,
  version: number,
  file: string,
): Promise<void> {
  const hidden = `${root}/${model}/.${version}`;
  await Deno.mkdir(hidden, { recursive: true });
  await Deno.link(file, `${hidden}/model.onnx`);
  await Deno.rename(hidden, `${root}/${model}/${version}`);
}

export async function swapUnderLoad(options: SwapOptions): Promise<SwapReport> {
  const report: SwapReport = {
    answered: 0,
    non2xx: [],
    dropped: 0,
    readyProbes: 0,
    readyNot200: [],
    versions: {},
    unnamed: 0,
    swaps: [],
  };
  let stop = false;
  let latest = "";
  const decoder = new TextDecoder();

  const client = async () => {
    while (!stop) {
      const conn = await RawConnection.open(options.port);
      try {
        while (!stop && !conn.ended) {
          let res;
          try {
            res = await conn.exchange(options.request);
          } catch (err) {
            if (!(err instanceof ConnectionLost)) throw err;
            report.dropped++;
            break;
          }
          report.answered++;
          const body = decoder.decode(res.body);
          if (res.status < 200 || res.status > 299) {
            report.non2xx.push({ status: res.status, body: body.slice(0, 300) });
            continue;
          }
          const version = JSON.parse(body)?.model?.version;
          if (typeof version !== "string") report.unnamed++;
          else {
            report.versions[version] = (report.versions[version] ?? 0) + 1;
            latest = version;
          }
        }
      } finally {
        conn.close();
      }
    }
  };

  const probe = async () => {
    const conn = await RawConnection.open(options.port);
    try {
      while (!stop) {
        const res = await conn.exchange(requestBytes("GET", "/ready"));
        report.readyProbes++;
        if (res.status !== 200) report.readyNot200.push(res.status);
        await sleep(100);
      }
    } finally {
      conn.close();
    }
  };

  const running = [...Array.from({ length: options.clients }, client), probe()];
  try {
    await waitFor(() => report.answered >= options.clients, options.swapTimeoutMs, "the first answers");
    for (const version of options.versions) {
      const previous = latest;
      const rssBeforeBytes = await residentBytes(options.port);
      const t0 = performance.now();
      await copyVersionIn(options.root, options.model, version, options.file);
      await waitFor(() => latest === String(version), options.swapTimeoutMs, `version ${version} to answer`);
      const secondsToServe = (performance.now() - t0) / 1000;
      const unloaded = () =>
        options.lines.some((l) =>
          l.message === `Model ${options.model} version ${previous} unloaded` ||
          (l.model === options.model && l.version === previous && String(l.message).endsWith("unloaded"))
        );
      await waitFor(unloaded, options.swapTimeoutMs, `version ${previous} to be unloaded`);
      // Let the freed memory go back before sampling.
      await sleep(options.settleMs ?? 1000);
      report.swaps.push({
        version,
        secondsToServe,
        rssBeforeBytes,
        rssAfterBytes: await residentBytes(options.port),
      });
    }
  } finally {
    stop = true;
    await Promise.all(running);
  }
  return report;
}
