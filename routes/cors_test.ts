/** CORS_ORIGINS through the real app, in-process (the browser tests are in tests/). */
import assert from "node:assert/strict";
import { captureLogs, fixture, readyApp } from "../tests/support/helpers.ts";

const PAGE = "http://localhost:5173";

Deno.test("CORS_ORIGINS unset sends no CORS headers at all", async () => {
  await captureLogs("info");
  const { app } = await readyApp();
  const res = await app.request("/health", { headers: { origin: PAGE } });
  for (const [name] of res.headers) assert.ok(!/^(access-control-|timing-allow-origin)/.test(name), name);
  const preflight = await app.request("/predict", {
    method: "OPTIONS",
    headers: { origin: PAGE, "access-control-request-method": "POST" },
  });
  assert.equal(preflight.status, 405);
  assert.equal(preflight.headers.get("access-control-allow-origin"), null);
});

Deno.test("CORS_ORIGINS lists the origins allowed to call the API", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp({ CORS_ORIGINS: `${PAGE}, https://app.example.com` });
  const coffee = await fixture("images/coffee.jpg");

  await t.step("preflight: 204 with the allowed methods and headers", async () => {
    const res = await app.request("/predict", {
      method: "OPTIONS",
      headers: {
        origin: PAGE,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, x-request-id",
      },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-origin"), PAGE);
    assert.match(res.headers.get("access-control-allow-methods")!, /\bPOST\b/);
    const allowed = res.headers.get("access-control-allow-headers")!.toLowerCase().split(",");
    for (const h of ["content-type", "x-request-id", "traceparent"]) assert.ok(allowed.includes(h), h);
    assert.match(res.headers.get("vary")!, /Origin/);
  });

  await t.step("an allowed origin may read the answer and its tracing and timing headers", async () => {
    const res = await app.request("/predict", { method: "POST", body: coffee, headers: { origin: PAGE } });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(res.headers.get("access-control-allow-origin"), PAGE);
    const exposed = res.headers.get("access-control-expose-headers")!.toLowerCase().split(",");
    for (const h of ["x-request-id", "traceparent", "server-timing", "retry-after"]) {
      assert.ok(exposed.includes(h), h);
    }
    assert.equal(res.headers.get("timing-allow-origin"), PAGE);
    assert.ok(res.headers.get("server-timing"));
  });

  await t.step("refusals carry the headers too, so the page can read the problem", async () => {
    const res = await app.request("/predict?top_k=0", {
      method: "POST",
      body: coffee,
      headers: { origin: PAGE },
    });
    assert.equal(res.status, 400);
    await res.body?.cancel();
    assert.equal(res.headers.get("access-control-allow-origin"), PAGE);
  });

  await t.step("another origin gets no permission", async () => {
    const res = await app.request("/health", { headers: { origin: "http://evil.test" } });
    assert.equal(res.headers.get("access-control-allow-origin"), null);
    assert.equal(res.headers.get("timing-allow-origin"), null);
    const preflight = await app.request("/predict", {
      method: "OPTIONS",
      headers: { origin: "http://evil.test", "access-control-request-method": "POST" },
    });
    assert.equal(preflight.headers.get("access-control-allow-origin"), null);
  });

  await t.step("an unmatched path is still counted as route=unmatched", async () => {
    await (await app.request("/nope", { headers: { origin: PAGE } })).body?.cancel();
    const metrics = await (await app.request("/metrics")).text();
    assert.match(
      metrics,
      /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="unmatched",http_response_status_code="404"\} 1/,
    );
  });
});

Deno.test("CORS_ORIGINS=* allows every origin", async () => {
  await captureLogs("info");
  const { app } = await readyApp({ CORS_ORIGINS: "*" });
  const res = await app.request("/v2/health/live", { headers: { origin: "http://anywhere.test" } });
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  assert.equal(res.headers.get("timing-allow-origin"), "*");
});
