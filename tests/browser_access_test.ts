/// <reference lib="dom" />
/**
 * The page at GET / and a page on another origin, in Debian's chromium,
 * against the real `deno task start` with API keys: the page loads without a
 * key, asks for one, sends a pasted key with its requests and keeps it only in
 * memory; another origin's fetch with `Authorization` passes its preflight.
 */
import assert from "node:assert/strict";
import { fileURLToPath as fromFileUrl } from "node:url";
import type { ElementHandle, HTTPRequest } from "puppeteer-core";
import { keyDigestHex } from "../access/credential.ts";
import { newKey } from "../access/key_new.ts";
import { launchChromium, watchPage } from "./support/browser.ts";
import { freePort, startTask, waitReady } from "./support/gateway_process.ts";
import { FIXTURES } from "./support/helpers.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test({
  name: "Chromium: the page with an API key, and a cross-origin call with Authorization",
  async fn(t) {
    await Deno.mkdir(new URL("keys/", ROOT), { recursive: true });
    const dir = await Deno.makeTempDir({ dir: new URL("keys/", ROOT).pathname, prefix: "test-browser-" });
    const key = newKey();
    const otherKey = newKey();
    await Deno.writeTextFile(
      `${dir}/keys.json`,
      JSON.stringify({
        keys: [
          { id: "person", sha256: await keyDigestHex(key), scopes: ["infer"] },
          { id: "ops", sha256: await keyDigestHex(otherKey), scopes: ["admin"] },
        ],
      }),
    );
    const otherPort = freePort();
    const origin = `http://127.0.0.1:${otherPort}`;
    const server = await startTask({
      MODEL_SOURCE: "synthetic",
      API_KEYS_FILE: `./keys/${dir.split("/").pop()}/keys.json`,
      CORS_ORIGINS: origin,
    });
    const gateway = `http://127.0.0.1:${server.port}`;
    const other = Deno.serve(
      { hostname: "127.0.0.1", port: otherPort, onListen: () => {} },
      () =>
        new Response("<!doctype html><title>Other origin</title>", {
          headers: { "content-type": "text/html" },
        }),
    );
    const chromium = await launchChromium();
    try {
      await waitReady(server.port, 120_000);
      const page = await chromium.browser.newPage();
      const seen = watchPage(page);
      const sent: Array<{ url: string; authorization?: string }> = [];
      page.on(
        "request",
        (req: HTTPRequest) => sent.push({ url: req.url(), authorization: req.headers().authorization }),
      );

      await t.step("the page loads without a key and asks for one", async () => {
        const response = await page.goto(`${gateway}/`);
        assert.equal(response?.status(), 200);
        await page.waitForFunction(() => document.querySelector("#status")?.textContent === "key needed");
        assert.equal(await page.$eval("#key-form", (e) => (e as HTMLElement).hidden), false);
      });

      await t.step("a key without the infer scope is refused, and the page says so", async () => {
        await page.type("#api-key", otherKey);
        await page.click("#key-use");
        await page.waitForFunction(() =>
          document.querySelector<HTMLElement>("#key-form")?.dataset.state === "refused"
        );
        assert.match(await page.$eval("#key-hint", (e) => e.textContent ?? ""), /403/);
      });

      await t.step("a pasted key is sent with the page's requests; a photo is classified", async () => {
        await page.type("#api-key", key);
        await page.click("#key-use");
        await page.waitForFunction(() => document.querySelector("#status")?.textContent === "ready");
        assert.equal(await page.$eval("#model-name", (e) => e.textContent), "resnet50");
        const input = await page.waitForSelector("#file") as ElementHandle<HTMLInputElement>;
        await input.uploadFile(fromFileUrl(new URL("images/coffee.jpg", FIXTURES)));
        await page.waitForSelector('.card[data-state="done"]', { timeout: 60_000 });
        const predict = sent.filter((r) => r.url.endsWith("/predict?top_k=5"));
        assert.equal(predict.length, 1);
        assert.equal(predict[0].authorization, `Bearer ${key}`);
        assert.equal(
          await page.$$eval('.card[data-state="done"] .top5 li', (items) => items.length),
          5,
        );
      });

      await t.step(
        "the key is only in the page's memory: not in storage, cookies, the URL or the DOM",
        async () => {
          const kept = await page.evaluate(() => ({
            local: localStorage.length,
            session: sessionStorage.length,
            cookie: document.cookie,
            url: location.href,
            html: document.documentElement.outerHTML,
            input: document.querySelector<HTMLInputElement>("#api-key")!.value,
          }));
          assert.equal(kept.local, 0);
          assert.equal(kept.session, 0);
          assert.equal(kept.cookie, "");
          assert.ok(!kept.url.includes(key));
          assert.ok(!kept.html.includes(key), "the key is not in the document");
          assert.equal(kept.input, "");
        },
      );

      await t.step("reloading the page forgets the key", async () => {
        await page.reload();
        await page.waitForFunction(() => document.querySelector("#status")?.textContent === "key needed");
      });

      await t.step("no script error and no CSP refusal on the page", () => {
        assert.deepEqual(seen.errors, []);
        assert.deepEqual(seen.cspViolations, []);
      });

      await t.step("another origin's fetch with Authorization passes its preflight", async () => {
        const cross = await chromium.browser.newPage();
        await cross.goto(`${origin}/`);
        const result = await cross.evaluate(
          async (gateway: string, key: string) => {
            const call = async (headers: Record<string, string>) => {
              const res = await fetch(`${gateway}/info`, { headers });
              return { status: res.status, wwwAuthenticate: res.headers.get("www-authenticate") };
            };
            return {
              bearer: await call({ authorization: `Bearer ${key}` }),
              apiKey: await call({ "x-api-key": key }),
              none: await call({}),
            };
          },
          gateway,
          key,
        );
        assert.equal(result.bearer.status, 200);
        assert.equal(result.apiKey.status, 200);
        assert.equal(result.none.status, 401);
        assert.equal(result.none.wwwAuthenticate, 'Bearer realm="inference-gateway"', "exposed to the page");
        await cross.close();
      });
    } finally {
      await chromium.close();
      await other.shutdown();
      // SIGTERM, which deno task passes on; SIGKILL would leave its child, the gateway, running.
      try {
        server.child.kill("SIGTERM");
      } catch { /* already exited */ }
      await server.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
