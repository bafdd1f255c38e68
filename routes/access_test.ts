/** Access control through the real app and model, in-process: each status, format and record. */
import assert from "node:assert/strict";
import { keyDigestHex } from "../access/credential.ts";
import { captureLogs, fixture, readyApp } from "../tests/support/helpers.ts";
import { accessRules, scopeFor } from "./access.ts";

const TMP = new URL("../tests/tmp/", import.meta.url);
const KEYS = {
  infer: "igw_infer-key-for-tests",
  admin: "igw_admin-key-for-tests",
  scrape: "igw_metrics-key-for-tests",
};

async function keyFile(): Promise<string> {
  await Deno.mkdir(TMP, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: TMP.pathname, prefix: "access-" });
  const path = `${dir}/keys.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      keys: [
        { id: "app", sha256: await keyDigestHex(KEYS.infer), scopes: ["infer"] },
        { id: "ops", sha256: await keyDigestHex(KEYS.admin), scopes: ["admin"] },
        { id: "prometheus", sha256: await keyDigestHex(KEYS.scrape), scopes: ["metrics"] },
      ],
    }),
  );
  return path;
}

async function keyedApp(env: Record<string, string> = {}) {
  const path = await keyFile();
  const ready = await readyApp({ API_KEYS_FILE: path, ...env });
  return { ...ready, path, close: () => ready.keys?.close() };
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

Deno.test("the access table", async (t) => {
  const rules = accessRules({ metricsRequireKey: false });
  await t.step("probes, the page and the API description are open", () => {
    for (
      const path of [
        "/health",
        "/ready",
        "/v2/health/live",
        "/v2/health/ready",
        "/",
        "/app.js",
        "/openapi.json",
        "/docs",
        "/metrics",
      ]
    ) {
      assert.equal(scopeFor(rules, path), "open", path);
    }
  });
  await t.step("inference and metadata need infer; load and unload need admin", () => {
    for (
      const path of [
        "/predict",
        "/info",
        "/v2",
        "/v2/models/resnet50",
        "/v2/models/{name}/infer",
        "/v2/repository/index",
      ]
    ) {
      assert.equal(scopeFor(rules, path), "infer", path);
    }
    for (const path of ["/v2/repository/models/resnet50/load", "/v2/repository/models/{name}/unload"]) {
      assert.equal(scopeFor(rules, path), "admin", path);
    }
  });
  await t.step("a prefix is a whole path segment", () => {
    assert.equal(scopeFor(rules, "/v2health"), "open");
    assert.equal(scopeFor(rules, "/predictions"), "open");
    assert.equal(scopeFor(accessRules({ metricsRequireKey: true }), "/metrics"), "metrics");
  });
});

/** A repository the management routes may load from (empty: a load finds no such model). */
async function repositoryEnv(): Promise<Record<string, string>> {
  await Deno.mkdir(TMP, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: TMP.pathname, prefix: "repository-" });
  return { MODEL_REPOSITORY: dir, MODEL_CONTROL_MODE: "explicit" };
}

Deno.test("without API_KEYS_FILE: inference open, management refused", async (t) => {
  await captureLogs("info");
  // Management asked for explicitly: access control still refuses it.
  const { app } = await readyApp(await repositoryEnv());
  const coffee = await fixture("images/coffee.jpg");

  await t.step("POST /predict needs no key", async () => {
    const res = await app.request("/predict", { method: "POST", body: coffee });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });

  await t.step("load and unload answer 403 naming API_KEYS_FILE, even with a key", async () => {
    for (const action of ["load", "unload"]) {
      const res = await app.request(`/v2/repository/models/resnet50/${action}`, {
        method: "POST",
        headers: bearer(KEYS.admin),
      });
      assert.equal(res.status, 403);
      assert.equal(res.headers.get("content-type"), "application/json");
      assert.match((await res.json()).error, /API_KEYS_FILE/);
    }
  });

  await t.step("the OpenAPI document asks for no key", async () => {
    const doc = await (await app.request("/openapi.json")).json();
    assert.equal(doc.paths["/predict"].post.security, undefined);
    assert.deepEqual(doc.security, []);
  });

  await t.step("no key metrics are exported, failures count from zero", async () => {
    const text = await (await app.request("/metrics")).text();
    assert.doesNotMatch(text, /^api_keys_loaded /m);
    for (const reason of ["missing", "unknown", "scope"]) {
      assert.match(text, new RegExp(`^auth_failures_total\\{reason="${reason}"\\} 0$`, "m"), reason);
    }
  });
});

Deno.test("with API_KEYS_FILE", async (t) => {
  const logs = await captureLogs("debug");
  const { app, spans, close } = await keyedApp();
  const coffee = await fixture("images/coffee.jpg");
  const png = (await fixture("images/coffee.jpg")).toBase64();
  const v2Infer = (headers: Record<string, string>) =>
    app.request("/v2/models/resnet50-image/infer", {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ inputs: [{ name: "image", shape: [1], datatype: "BYTES", data: [png] }] }),
    });
  try {
    await t.step("no key: 401 problem with WWW-Authenticate: Bearer", async () => {
      const res = await app.request("/predict", { method: "POST", body: coffee });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="inference-gateway"');
      assert.equal(res.headers.get("content-type"), "application/problem+json");
      const body = await res.json();
      assert.equal(body.code, "unauthorized");
      assert.match(body.detail, /Authorization: Bearer/);
    });

    await t.step("an unknown key: 401 with error=invalid_token", async () => {
      const res = await app.request("/predict", {
        method: "POST",
        body: coffee,
        headers: bearer("igw_nope"),
      });
      assert.equal(res.status, 401);
      assert.match(
        res.headers.get("www-authenticate")!,
        /^Bearer realm="inference-gateway", error="invalid_token"$/,
      );
      await res.body?.cancel();
    });

    await t.step("a known key without the scope: 403 insufficient_scope naming the scope", async () => {
      const res = await app.request("/predict", {
        method: "POST",
        body: coffee,
        headers: bearer(KEYS.admin),
      });
      assert.equal(res.status, 403);
      assert.match(res.headers.get("www-authenticate")!, /error="insufficient_scope", scope="infer"/);
      const body = await res.json();
      assert.equal(body.code, "insufficient_scope");
      assert.match(body.detail, /"ops" does not have the infer scope/);
    });

    await t.step("the infer key classifies, by Bearer and by X-API-Key", async () => {
      for (const headers of [bearer(KEYS.infer), { "x-api-key": KEYS.infer }]) {
        const res = await app.request("/predict", { method: "POST", body: coffee, headers });
        assert.equal(res.status, 200);
        assert.ok((await res.json()).top_k.length > 0);
      }
    });

    await t.step("two different keys at once: 401 invalid_request", async () => {
      const res = await app.request("/predict", {
        method: "POST",
        body: coffee,
        headers: { ...bearer(KEYS.infer), "x-api-key": KEYS.admin },
      });
      assert.equal(res.status, 401);
      assert.match(res.headers.get("www-authenticate")!, /error="invalid_request"/);
      await res.body?.cancel();
    });

    await t.step('under /v2 the refusals are {"error"} bodies, and the key works', async () => {
      for (
        const [headers, status] of [[{}, 401], [bearer("igw_nope"), 401], [bearer(KEYS.admin), 403]] as const
      ) {
        const res = await v2Infer(headers);
        assert.equal(res.status, status);
        assert.equal(res.headers.get("content-type"), "application/json");
        assert.equal(typeof (await res.json()).error, "string");
      }
      const ok = await v2Infer(bearer(KEYS.infer));
      assert.equal(ok.status, 200);
      assert.equal((await ok.json()).outputs.length, 1);
      for (const path of ["/v2", "/v2/models/resnet50", "/v2/models/resnet50/ready"]) {
        assert.equal((await app.request(path)).status, 401, path);
        const res = await app.request(path, { headers: bearer(KEYS.infer) });
        assert.equal(res.status, 200, path);
        await res.body?.cancel();
      }
    });

    await t.step("/info needs infer", async () => {
      assert.equal((await app.request("/info")).status, 401);
      assert.equal((await app.request("/info", { headers: bearer(KEYS.infer) })).status, 200);
    });

    await t.step("probes, the page, the document and (by default) /metrics stay open", async () => {
      for (
        const path of [
          "/health",
          "/ready",
          "/v2/health/live",
          "/v2/health/ready",
          "/",
          "/openapi.json",
          "/docs",
          "/metrics",
        ]
      ) {
        const res = await app.request(path);
        assert.equal(res.status, 200, path);
        await res.body?.cancel();
      }
    });

    await t.step("management: an infer key is refused, no key is 401", async () => {
      const infer = await app.request("/v2/repository/models/resnet50/load", {
        method: "POST",
        headers: bearer(KEYS.infer),
      });
      assert.equal(infer.status, 403);
      assert.match((await infer.json()).error, /admin scope/);
      const none = await app.request("/v2/repository/models/resnet50/unload", { method: "POST" });
      assert.equal(none.status, 401);
      await none.body?.cancel();
    });

    await t.step(
      "the OpenAPI document: schemes, and security with 401/403 on each protected operation",
      async () => {
        const doc = await (await app.request("/openapi.json")).json();
        assert.deepEqual(Object.keys(doc.components.securitySchemes).sort(), ["apiKeyHeader", "bearerAuth"]);
        assert.equal(doc.components.securitySchemes.bearerAuth.scheme, "bearer");
        assert.equal(doc.components.securitySchemes.apiKeyHeader.name, "X-API-Key");
        for (
          const [path, method] of [["/predict", "post"], ["/info", "get"], [
            "/v2/models/{name}/infer",
            "post",
          ]]
        ) {
          const op = doc.paths[path][method];
          assert.deepEqual(op.security, [{ bearerAuth: [] }, { apiKeyHeader: [] }], path);
          assert.ok(op.responses["401"] && op.responses["403"], path);
        }
        assert.ok(doc.paths["/v2/models/{name}/infer"].post.responses["401"].content["application/json"]);
        assert.ok(doc.paths["/predict"].post.responses["401"].content["application/problem+json"]);
        const load = doc.paths["/v2/repository/models/{name}/load"].post;
        assert.deepEqual(load.security, [{ bearerAuth: [] }, { apiKeyHeader: [] }]);
        assert.match(load.responses["403"].description, /admin scope; or: Model control is off/);
        for (const [path, method] of [["/health", "get"], ["/v2/health/ready", "get"], ["/metrics", "get"]]) {
          assert.equal(doc.paths[path][method].security, undefined, path);
        }
        // Redocly's recommended rules, as routes/openapi_test.ts runs them on the document without keys.
        await Deno.mkdir(TMP, { recursive: true });
        const file = new URL("openapi-keys.json", TMP);
        await Deno.writeTextFile(file, JSON.stringify(doc));
        const out = await new Deno.Command("deno", {
          args: [
            "run",
            "-q",
            "--allow-read=.",
            "--allow-write=./tests/tmp",
            "--allow-env",
            "tests/support/openapi_tools.ts",
            file.pathname,
            new URL("openapi-keys.d.ts", TMP).pathname,
          ],
          cwd: new URL("../", import.meta.url),
          env: { NO_COLOR: "1" },
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        const problems: Array<{ severity: string; ruleId: string; message: string; pointer: string }> = JSON
          .parse(
            new TextDecoder().decode(out.stdout),
          );
        assert.deepEqual(
          problems.filter((p) => p.severity === "error").map((p) =>
            `${p.ruleId}: ${p.message} at ${p.pointer}`
          ),
          [],
        );
      },
    );

    await t.step("failures are counted by reason, uses by key id", async () => {
      const text = await (await app.request("/metrics")).text();
      const value = (re: RegExp) => Number(re.exec(text)?.[1]);
      assert.ok(value(/^auth_failures_total\{reason="missing"\} (\d+)$/m) >= 1);
      assert.ok(value(/^auth_failures_total\{reason="unknown"\} (\d+)$/m) >= 2);
      assert.ok(value(/^auth_failures_total\{reason="scope"\} (\d+)$/m) >= 3);
      assert.ok(value(/^api_key_requests_total\{key_id="app"\} (\d+)$/m) >= 3);
      assert.match(text, /^api_keys_loaded 3$/m);
      assert.match(text, /^api_keys_file_valid 1$/m);
    });

    await t.step(
      "the key id is on the access log line and the span; no key or hash is anywhere",
      async () => {
        const line = logs.find((r) => r.properties.route === "/predict" && r.properties.key_id === "app");
        assert.ok(line, "an access log line with key_id");
        await new Promise((r) => setTimeout(r, 20));
        const span = spans.getFinishedSpans().find((s) =>
          s.attributes["http.route"] === "/predict" && s.attributes["enduser.id"] === "app"
        );
        assert.ok(span, "a server span with enduser.id");
        const secrets = [...Object.values(KEYS), ...await Promise.all(Object.values(KEYS).map(keyDigestHex))];
        const haystacks = {
          logs: JSON.stringify(logs.map((r) => ({ ...r, message: r.message.map(String) }))),
          spans: JSON.stringify(
            spans.getFinishedSpans().map((s) => ({
              name: s.name,
              attributes: s.attributes,
              events: s.events,
            })),
          ),
          metrics: await (await app.request("/metrics")).text(),
        };
        for (const [where, text] of Object.entries(haystacks)) {
          for (const secret of secrets) {
            assert.ok(!text.includes(secret), `${where} holds ${secret.slice(0, 8)}…`);
          }
        }
      },
    );
  } finally {
    close();
  }
});

Deno.test("with API_KEYS_FILE and MODEL_CONTROL_MODE=explicit, an admin key reaches the repository", async () => {
  await captureLogs("info");
  const { app, close } = await keyedApp(await repositoryEnv());
  try {
    // Past the gate, the repository's own answer: it has no such model.
    const admin = await app.request("/v2/repository/models/absent/load", {
      method: "POST",
      headers: bearer(KEYS.admin),
    });
    const body = await admin.json();
    assert.equal(admin.status, 404, JSON.stringify(body));
    assert.doesNotMatch(body.error, /API key|scope|API_KEYS_FILE/);
    const infer = await app.request("/v2/repository/models/absent/load", {
      method: "POST",
      headers: bearer(KEYS.infer),
    });
    assert.equal(infer.status, 403);
    await infer.body?.cancel();
  } finally {
    close();
  }
});

Deno.test("METRICS_REQUIRE_KEY=true: /metrics needs the metrics scope", async () => {
  await captureLogs("info");
  const { app, close } = await keyedApp({ METRICS_REQUIRE_KEY: "true" });
  try {
    assert.equal((await app.request("/metrics")).status, 401);
    assert.equal((await app.request("/metrics", { headers: bearer(KEYS.infer) })).status, 403);
    const res = await app.request("/metrics", { headers: bearer(KEYS.scrape) });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^auth_failures_total\{reason="scope"\} 1$/m);
  } finally {
    close();
  }
});

Deno.test("CORS with keys: the preflight needs no key and allows Authorization and X-API-Key", async () => {
  await captureLogs("info");
  const page = "http://localhost:5173";
  const { app, close } = await keyedApp({ CORS_ORIGINS: page });
  try {
    const res = await app.request("/predict", {
      method: "OPTIONS",
      headers: {
        origin: page,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, x-api-key, content-type",
      },
    });
    assert.equal(res.status, 204);
    const allowed = res.headers.get("access-control-allow-headers")!.toLowerCase().split(",");
    for (const h of ["authorization", "x-api-key"]) assert.ok(allowed.includes(h), h);
    const refused = await app.request("/predict", { method: "POST", body: "x", headers: { origin: page } });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get("access-control-allow-origin"), page);
    assert.match(refused.headers.get("access-control-expose-headers")!.toLowerCase(), /www-authenticate/);
    await refused.body?.cancel();
  } finally {
    close();
  }
});
