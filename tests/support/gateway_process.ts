/** Runs the real gateway as a child process (`deno task start`), for end-to-end tests and the benchmark. */

const ROOT = new URL("../../", import.meta.url);

export interface Started {
  port: number;
  lines: Array<Record<string, unknown>>;
  /** Lines of stdout that are not JSON objects (there should be none). */
  notJson: string[];
  stderr: () => string;
  child: Deno.ChildProcess;
  /** Resolves once the process has exited and all its stdout has been read. */
  status: Promise<Deno.CommandStatus>;
}

/** Entry tasks: `start` (main.ts) and `start:edge` (edge.ts under deno serve). */
export type StartTaskName = "start" | "start:edge";

/** `deno task start` (or `task`) with its exact permissions, on loopback, output captured. */
function startCommand(env: Record<string, string>, task: StartTaskName = "start"): Deno.Command {
  return new Deno.Command("deno", {
    args: ["task", "--quiet", task],
    cwd: ROOT,
    env: { NO_COLOR: "1", PORT: "0", HOST: "127.0.0.1", ...env },
    stdout: "piped",
    stderr: "piped",
  });
}

/** Starts `deno task start` (its exact permissions) and resolves once it logs its listening port. */
export async function startTask(
  env: Record<string, string>,
  task: StartTaskName = "start",
): Promise<Started> {
  const child = startCommand(env, task).spawn();
  const lines: Array<Record<string, unknown>> = [];
  const notJson: string[] = [];
  let stderrText = "";
  let stdoutClosed!: () => void;
  const drained = new Promise<void>((r) => stdoutClosed = r);
  (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderrText += chunk;
  })();
  const port = new Promise<number>((resolve, reject) => {
    (async () => {
      let buffer = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          const record = parseObject(line);
          if (!record) {
            notJson.push(line);
            continue;
          }
          lines.push(record);
          if (typeof record.port === "number" && String(record.message).startsWith("Listening")) {
            resolve(record.port);
          }
        }
      }
      stdoutClosed();
      reject(new Error(`Server exited before listening: ${stderrText}`));
    })();
  });
  const status = Promise.all([child.status, drained]).then(([s]) => s);
  // With a fixed port the caller need not wait for the (info-level) listening line.
  const fixed = Number(env.PORT ?? 0);
  if (fixed > 0) port.catch(() => {});
  return { port: fixed > 0 ? fixed : await port, lines, notJson, stderr: () => stderrText, child, status };
}

function parseObject(line: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(line);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export async function waitReady(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`http://127.0.0.1:${port}/ready`).catch(() => undefined);
    const ok = res?.status === 200;
    await res?.body?.cancel();
    if (ok) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Not ready after ${timeoutMs} ms`);
}

/** A port that was free a moment ago (bind to 0, read it, release it). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Runs `deno task start` (or `task`) until it exits (startup failures): exit code, stderr, and its FATAL log line if any. */
export async function runUntilExit(
  env: Record<string, string>,
  task: StartTaskName = "start",
): Promise<{ code: number; stderr: string; fatal?: Record<string, unknown> }> {
  const out = await startCommand(env, task).output();
  const fatal = new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map((l) => JSON.parse(l))
    .find((l) => l.level === "FATAL");
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr), fatal };
}

/**
 * One number from the gateway's /metrics: the first group of `pattern`, 0 when the series is absent.
 * The connection is closed after, so it never counts against MAX_CONNECTIONS.
 */
export async function metricValue(port: number, pattern: RegExp): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { connection: "close" } });
  return Number(pattern.exec(await res.text())?.[1] ?? 0);
}
