/**
 * A real browser for the tests: Debian's chromium, started here with a fresh
 * profile under tests/tmp and driven over the DevTools protocol by
 * puppeteer-core (whose own browser download cannot work on these machines).
 * `.ci/run` installs the package when it is missing.
 */
import puppeteer, { type Browser, type ConsoleMessage, type Page } from "puppeteer-core";

export const CHROMIUM = "/usr/bin/chromium";

/** Flags for a root user in a container with no display, no GPU and no network beyond loopback. */
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
  "--remote-debugging-address=127.0.0.1",
  "--remote-debugging-port=0",
];

export interface Chromium {
  browser: Browser;
  /** Closes the browser, waits for the process to exit and removes its profile. */
  close(): Promise<void>;
}

/** Whether the chromium package is installed (the browser tests are ignored without it, with a note). */
export function hasChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

/** Starts chromium and connects to it; throws with chromium's own output if it does not come up in time. */
export async function launchChromium(timeoutMs = 30_000): Promise<Chromium> {
  await Deno.mkdir(new URL("../tmp/", import.meta.url), { recursive: true });
  const profile = await Deno.makeTempDir({
    dir: new URL("../tmp/", import.meta.url).pathname,
    prefix: "chromium-",
  });
  const child = new Deno.Command(CHROMIUM, {
    args: [...FLAGS, `--user-data-dir=${profile}`, "about:blank"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // chromium prints its DevTools address on stderr; keep reading after it so the pipe never fills.
  let output = "";
  const endpoint = new Promise<string>((resolve, reject) => {
    (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        output += chunk;
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(output);
        if (match) resolve(match[1]);
      }
      reject(new Error(`chromium exited before listening:\n${output.slice(-2000)}`));
    })().catch(reject);
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`chromium did not start in ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
  });
  const cleanup = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  };
  let browser: Browser;
  try {
    browser = await puppeteer.connect({
      browserWSEndpoint: await Promise.race([endpoint, timeout]),
      defaultViewport: { width: 1280, height: 900 },
    });
  } catch (err) {
    await cleanup();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
      // browser.close() asks chromium to quit; give it a moment, then make sure.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const exited = await Promise.race([
        child.status.then(() => true),
        new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 5000)),
      ]);
      clearTimeout(timer);
      if (!exited) await cleanup();
      else await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}

/** What a page reported that a test should look at: uncaught errors and Content-Security-Policy refusals. */
export function watchPage(page: Page): { errors: string[]; cspViolations: string[] } {
  const errors: string[] = [];
  const cspViolations: string[] = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  page.on("console", (message: ConsoleMessage) => {
    const text = message.text();
    if (/Content Security Policy/i.test(text)) cspViolations.push(text);
  });
  return { errors, cspViolations };
}
