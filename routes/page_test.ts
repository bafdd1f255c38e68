/** GET / and the page's files: served from disk as read at startup, under a strict CSP. */
import assert from "node:assert/strict";
import { ModelState } from "../model/runtime/state.ts";
import { captureLogs, testConfig, testTelemetry } from "../tests/support/helpers.ts";
import { createApp } from "./app.ts";
import { CONTENT_SECURITY_POLICY } from "./page.ts";

async function webDir(files: Record<string, string>): Promise<URL> {
  const dir = new URL(`../tests/tmp/web-${crypto.randomUUID()}/`, import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(new URL(name, dir), text);
  return dir;
}

Deno.test("GET / serves the page with a strict Content-Security-Policy", async (t) => {
  await captureLogs("info");
  const dir = await webDir({
    "index.html": '<!doctype html><script src="/app.js"></script>',
    "app.js": "console.log('page');",
    "app.css": "body { margin: 0 }",
    "notes.txt": "not served",
  });
  const config = testConfig({ TRACE_UI_URL: "http://localhost:16686/trace/{trace_id}" });
  const app = createApp({ config, state: new ModelState(), ...testTelemetry(config), webDir: dir });

  await t.step("index.html at /, its script and style beside it, each with its type", async () => {
    for (
      const [path, type, text] of [
        ["/", "text/html; charset=utf-8", "<!doctype html>"],
        ["/app.js", "text/javascript; charset=utf-8", "console.log"],
        ["/app.css", "text/css; charset=utf-8", "margin"],
      ]
    ) {
      const res = await app.request(path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get("content-type"), type);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
      assert.ok((await res.text()).includes(text));
    }
  });

  await t.step("the policy allows this origin only and no inline code", async () => {
    const csp = (await app.request("/")).headers.get("content-security-policy")!;
    assert.equal(csp, CONTENT_SECURITY_POLICY);
    const directives = new Map(
      csp.split(";").map((d) => {
        const [name, ...values] = d.trim().split(/\s+/);
        return [name, values] as const;
      }),
    );
    assert.deepEqual(directives.get("default-src"), ["'none'"]);
    assert.deepEqual(directives.get("script-src"), ["'self'"]);
    assert.deepEqual(directives.get("style-src"), ["'self'"]);
    assert.deepEqual(directives.get("connect-src"), ["'self'"]);
    assert.deepEqual(directives.get("img-src"), ["'self'", "blob:", "data:"]);
    assert.ok(!csp.includes("unsafe-inline") && !csp.includes("unsafe-eval"));
  });

  await t.step("other files are not served, and the page is in the OpenAPI document", async () => {
    assert.equal((await app.request("/notes.txt")).status, 404);
    const doc = await (await app.request("/openapi.json")).json();
    assert.equal(doc.paths["/"].get.operationId, "page");
    assert.ok(doc.paths["/app.js"].get);
  });

  await t.step("TRACE_UI_URL reaches the page through /info", async () => {
    const info = await (await app.request("/info")).json();
    assert.equal(info.trace_ui_url, "http://localhost:16686/trace/{trace_id}");
  });

  await t.step("files are read once: a change on disk shows after a restart only", async () => {
    await Deno.writeTextFile(new URL("app.js", dir), "changed");
    assert.match(await (await app.request("/app.js")).text(), /console\.log/);
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("without TRACE_UI_URL, /info says null", async () => {
  await captureLogs("info");
  const config = testConfig();
  const app = createApp({ config, state: new ModelState(), ...testTelemetry(config) });
  assert.equal((await (await app.request("/info")).json()).trace_ui_url, null);
});
