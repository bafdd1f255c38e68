/// <reference lib="dom" />
/**
 * Browsers as clients: Debian's chromium against the real `deno task start`.
 * An HTML form upload, fetch(FormData) from pages on other origins (CORS
 * allowed and refused), Swagger UI's "Try it out", and the page at GET /.
 * Bodies come from Chromium's own multipart encoder, whose mixed-case
 * boundaries (----WebKitFormBoundary…) no curl or Deno test sends.
 */
import assert from "node:assert/strict";
import { fileURLToPath as fromFileUrl } from "node:url";
import type { ElementHandle, HTTPRequest, Page } from "puppeteer-core";
import { launchChromium, watchPage } from "./support/browser.ts";
import { freePort, startTask, waitReady } from "./support/gateway_process.ts";
import { fixture, FIXTURES } from "./support/helpers.ts";

const TMP = new URL("./tmp/", import.meta.url);
const TRACE_UI_URL = "http://127.0.0.1:16686/trace/{trace_id}";

/** Absolute path of a fixture, for a file input (chromium reads the file itself). */
const fixturePath = (name: string) => fromFileUrl(new URL(name, FIXTURES));

/** Chooses files in a file input, as a person does in the file dialog. */
async function choose(page: Page, selector: string, ...paths: string[]): Promise<void> {
  const input = await page.waitForSelector(selector) as ElementHandle<HTMLInputElement> | null;
  assert.ok(input, `no ${selector} on the page`);
  await input.uploadFile(...paths);
}

interface ClassScore {
  class_id: number;
  class_name: string;
  confidence: number;
}

/** Pages another origin serves: an HTML form posting to the gateway, and an empty page with a file input. */
function otherOrigin(port: number, gateway: string): Deno.HttpServer {
  const pages: Record<string, string> = {
    "/form.html": `<!doctype html><title>Form</title>
<form method="post" enctype="multipart/form-data" action="${gateway}/predict">
  <input type="file" name="file" accept="image/*"><button type="submit">Send</button>
</form>`,
    "/client.html": `<!doctype html><title>Client</title><form><input type="file" name="file"></form>`,
  };
  return Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, (req) => {
    const page = pages[new URL(req.url).pathname];
    return page
      ? new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } })
      : new Response("Not found", { status: 404 });
  });
}

/** In the page: POST the form's file to the gateway as fetch(FormData) and as a raw body; what the page could read. */
function crossOriginCalls(page: Page, gateway: string) {
  return page.evaluate(async (gateway: string) => {
    const file = document.querySelector<HTMLInputElement>("input[type=file]")!.files![0];
    const call = async (init: RequestInit) => {
      try {
        const res = await fetch(`${gateway}/predict`, { method: "POST", ...init });
        const body = await res.json();
        return {
          status: res.status,
          requestId: body.request_id,
          headerRequestId: res.headers.get("x-request-id"),
          traceparent: res.headers.get("traceparent"),
          serverTiming: res.headers.get("server-timing"),
          top: body.top_k?.[0]?.class_id,
        };
      } catch (err) {
        return { error: String(err) };
      }
    };
    const multipart = await call({ body: new FormData(document.querySelector("form")!) });
    // image/jpeg is not a CORS-safelisted type, so this one is preflighted.
    const raw = await call({ body: file, headers: { "content-type": "image/jpeg" } });
    const timing = performance.getEntriesByType("resource")
      .filter((e) => e.name === `${gateway}/predict`)
      .map((e) => (e as PerformanceResourceTiming).serverTiming.map((s) => s.name));
    return { multipart, raw, timing };
  }, gateway);
}

/** The top-k the page rendered in a card. */
function renderedTopK(page: Page, card: string) {
  return page.$$eval(`${card} .top5 li`, (items) =>
    items.map((li) => ({
      classId: Number((li as HTMLElement).dataset.classId),
      confidence: Number((li as HTMLElement).dataset.confidence),
      label: li.querySelector(".label")!.textContent,
      pct: li.querySelector(".pct")!.textContent,
    })));
}

Deno.test("Chromium as a client of deno task start", async (t) => {
  await Deno.mkdir(TMP, { recursive: true });
  const allowedPort = freePort();
  const blockedPort = freePort();
  const allowedOrigin = `http://127.0.0.1:${allowedPort}`;
  const server = await startTask({
    MODEL_SOURCE: "synthetic",
    CORS_ORIGINS: allowedOrigin,
    TRACE_UI_URL,
  });
  const gateway = `http://127.0.0.1:${server.port}`;
  const allowed = otherOrigin(allowedPort, gateway);
  const blocked = otherOrigin(blockedPort, gateway);
  const chromium = await launchChromium();
  try {
    await waitReady(server.port, 120_000);
    const coffee = await fixture("images/coffee.jpg");
    // The answer for the same photo from a non-browser client: the model is deterministic.
    const api = await (await fetch(`${gateway}/predict?top_k=5`, { method: "POST", body: coffee })).json();
    const apiTop: ClassScore[] = api.top_k;

    await t.step("an HTML form upload is answered 200 with the top 5", async () => {
      const page = await chromium.browser.newPage();
      try {
        await page.goto(`${allowedOrigin}/form.html`);
        const sent: string[] = [];
        page.on("request", (req: HTTPRequest) => {
          if (req.url().endsWith("/predict")) sent.push(req.headers()["content-type"] ?? "");
        });
        await choose(page, "input[type=file]", fixturePath("images/coffee.jpg"));
        const [response] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
        assert.match(sent[0], /^multipart\/form-data; boundary=----WebKitFormBoundary[0-9A-Za-z]{16}$/);
        assert.equal(response?.status(), 200, await response?.text() ?? "no response");
        const body = JSON.parse(await page.$eval("body", (b) => b.innerText));
        assert.deepEqual(body.top_k.map((c: ClassScore) => c.class_id), apiTop.map((c) => c.class_id));
        assert.equal(body.image.width, 600);
      } finally {
        await page.close();
      }
    });

    await t.step(
      "fetch(FormData) from a listed origin is allowed, with the timing headers exposed",
      async () => {
        const page = await chromium.browser.newPage();
        try {
          await page.goto(`${allowedOrigin}/client.html`);
          await choose(page, "input[type=file]", fixturePath("images/coffee.jpg"));
          const { multipart, raw, timing } = await crossOriginCalls(page, gateway);
          for (const result of [multipart, raw]) {
            assert.ok(!("error" in result), JSON.stringify(result));
            assert.equal(result.status, 200);
            assert.equal(result.top, apiTop[0].class_id);
            // Readable only because Access-Control-Expose-Headers lists them.
            assert.equal(result.headerRequestId, result.requestId);
            assert.match(String(result.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
            assert.match(String(result.serverTiming), /inference;dur=[\d.]+/);
          }
          // The Resource Timing API sees the server's stages only with Timing-Allow-Origin.
          assert.equal(timing.length, 2);
          for (const names of timing) assert.ok(names.includes("inference"), JSON.stringify(timing));
        } finally {
          await page.close();
        }
      },
    );

    await t.step("fetch(FormData) from an origin not listed is blocked by the browser", async () => {
      const page = await chromium.browser.newPage();
      try {
        await page.goto(`http://127.0.0.1:${blockedPort}/client.html`);
        await choose(page, "input[type=file]", fixturePath("images/coffee.jpg"));
        const { multipart, raw } = await crossOriginCalls(page, gateway);
        for (const result of [multipart, raw]) {
          assert.deepEqual(result, { error: "TypeError: Failed to fetch" });
        }
      } finally {
        await page.close();
      }
    });

    await t.step(
      "Swagger UI at /docs: Try it out on POST /predict with a photo shows the answer",
      async () => {
        const page = await chromium.browser.newPage();
        try {
          const seen = watchPage(page);
          await page.goto(`${gateway}/docs`);
          // The operation's block, found by method and path (its id depends on the tag and operationId).
          await page.waitForSelector(".opblock-post .opblock-summary-path");
          const id = await page.$$eval(
            ".opblock-post",
            (blocks) =>
              blocks.find((b) =>
                b.querySelector(".opblock-summary-path")?.getAttribute("data-path") === "/predict"
              )
                ?.id,
          );
          assert.ok(id, "Swagger UI shows POST /predict");
          const op = `#${id}`;
          // Each control appears once the previous click has been rendered.
          await (await page.waitForSelector(`${op} .opblock-summary`))!.click();
          await (await page.waitForSelector(`${op} .try-out__btn`))!.click();
          await page.waitForSelector(`${op} .execute`);
          assert.equal(
            await page.$eval(`${op} select.content-type`, (s) => (s as HTMLSelectElement).value),
            "multipart/form-data",
          );
          await choose(page, `${op} input[type=file]`, fixturePath("images/coffee.jpg"));
          await page.click(`${op} .execute`);
          const status = await page.waitForSelector(
            `${op} .live-responses-table tr.response .response-col_status`,
            {
              timeout: 60_000,
            },
          );
          assert.equal((await status!.evaluate((e) => e.textContent))?.trim(), "200");
          const shown = await page.$eval(
            `${op} .live-responses-table tr.response .response-col_description .highlight-code pre`,
            (e) => e.textContent ?? "",
          );
          const body = JSON.parse(shown);
          assert.deepEqual(body.top_k.map((c: ClassScore) => c.class_id), apiTop.map((c) => c.class_id));
          assert.deepEqual(seen.errors, []);
        } finally {
          await page.close();
        }
      },
    );

    await t.step("the page at GET /", async (t) => {
      const page = await chromium.browser.newPage();
      const seen = watchPage(page);
      try {
        const response = await page.goto(`${gateway}/`);
        assert.equal(response?.status(), 200);
        const csp = response?.headers()["content-security-policy"] ?? "";
        // Scripts and styles from this origin only (directly or through default-src), never inline.
        assert.match(csp, /(script-src|default-src) 'self'/);
        assert.match(csp, /(style-src|default-src) 'self'/);
        assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
        await page.waitForFunction(() => document.querySelector("#status")?.textContent === "ready");

        await t.step("shows the synthetic-weights warning before any upload", async () => {
          assert.equal(await page.$eval("#warning", (e) => (e as HTMLElement).hidden), false);
          assert.match(await page.$eval("#warning", (e) => e.textContent ?? ""), /synthetic/);
        });

        await t.step("a chosen photo's rendered top 5 is the API's answer", async () => {
          await choose(page, "#file", fixturePath("images/coffee.jpg"));
          await page.waitForSelector('.card[data-state="done"]', { timeout: 60_000 });
          const shown = await renderedTopK(page, '.card[data-state="done"]');
          assert.deepEqual(
            shown.map((c) => [c.classId, c.label, c.pct]),
            apiTop.map((c) => [c.class_id, c.class_name, `${(c.confidence * 100).toFixed(1)}%`]),
          );
          for (const [i, c] of shown.entries()) {
            assert.ok(
              Math.abs(c.confidence - apiTop[i].confidence) < 1e-6,
              `${c.confidence} ${apiTop[i].confidence}`,
            );
          }
          await page.screenshot({ path: fromFileUrl(new URL("page.png", TMP)) });
        });

        await t.step(
          "stage timings as one stacked bar; request id; trace id linking to the trace UI",
          async () => {
            const card = '.card[data-state="done"]';
            const stages = await page.$$eval(
              `${card} .stack .segment`,
              (s) => s.map((e) => (e as HTMLElement).dataset.stage),
            );
            assert.deepEqual(stages, [
              "read_body",
              "decode",
              "preprocess",
              "queue_wait",
              "inference",
              "postprocess",
            ]);
            assert.match(
              await page.$eval(`${card} .request-id`, (e) => e.textContent ?? ""),
              /^[0-9a-f-]{36}$/,
            );
            const link = await page.$eval(`${card} .trace-id a`, (a) => ({
              href: (a as HTMLAnchorElement).href,
              text: a.textContent ?? "",
            }));
            assert.match(link.text, /^[0-9a-f]{32}$/);
            assert.equal(link.href, TRACE_UI_URL.replace("{trace_id}", link.text));
          },
        );

        await t.step("a refused file shows the problem's title and detail", async () => {
          const gif = fromFileUrl(new URL("not-a-photo.gif", TMP));
          await Deno.writeFile(gif, new TextEncoder().encode("GIF89a\x01\x00\x01\x00\x80\x00\x00"));
          await choose(page, "#file", gif);
          const card = '.card[data-state="refused"]';
          await page.waitForSelector(card, { timeout: 60_000 });
          assert.equal(
            await page.$eval(`${card} .problem-title`, (e) => e.textContent),
            "Unsupported image format",
          );
          assert.equal(
            await page.$eval(`${card} .problem-detail`, (e) => e.textContent),
            "Image format gif is not supported; send JPEG, PNG or WebP",
          );
          await Deno.remove(gif);
        });

        await t.step("several photos show a grid", async () => {
          await page.click("#clear");
          const photos = ["images/chelsea_orientation_6.jpg", "images/rocket.jpg", "images/coffee.webp"];
          await choose(page, "#file", ...photos.map(fixturePath));
          await page.waitForFunction(
            () => document.querySelectorAll('.card[data-state="done"]').length === 3,
            {
              timeout: 60_000,
            },
          );
          const names = await page.$$eval(".card .file-name", (e) => e.map((n) => n.textContent));
          assert.deepEqual(names, ["chelsea_orientation_6.jpg", "rocket.jpg", "coffee.webp"]);
          assert.match(
            await page.$eval(".card .image-meta", (e) => e.textContent ?? ""),
            /^JPEG · 300×451 · 48 KB · EXIF orientation 6, turned upright$/,
          );
          const columns = await page.$eval(
            "#results",
            (g) => getComputedStyle(g).gridTemplateColumns.split(" ").length,
          );
          assert.ok(columns >= 2, `${columns} column(s)`);
          await page.screenshot({ path: fromFileUrl(new URL("page-grid.png", TMP)), fullPage: true });
        });

        await t.step("no script error and nothing refused by the Content-Security-Policy", () => {
          assert.deepEqual(seen.errors, []);
          assert.deepEqual(seen.cspViolations, []);
        });
      } finally {
        await page.close();
      }
    });
  } finally {
    await chromium.close();
    await allowed.shutdown();
    await blocked.shutdown();
    try {
      server.child.kill("SIGTERM");
    } catch { /* already exited */ }
    await server.status;
  }
});
