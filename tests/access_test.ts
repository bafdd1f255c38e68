/**
 * Access control end to end: the real `deno task start` (its own permissions)
 * with a key file, over real HTTP. Startup refusals, each status, the key file
 * changed under load (no request may fail), a broken file, and a search of
 * everything the process emitted (log lines, exported spans, /metrics) for the
 * keys and their hashes.
 */
import assert from "node:assert/strict";
import { keyDigestHex } from "../access/credential.ts";
import { newKey } from "../access/key_new.ts";
import { runUntilExit, startTask, waitReady } from "./support/gateway_process.ts";
import { fixture } from "./support/helpers.ts";

const ROOT = new URL("../", import.meta.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A directory under ./keys (the start task may read key files there; the tests may write them). */
async function keysDir(): Promise<{ rel: string; abs: string; [Symbol.asyncDispose](): Promise<void> }> {
  await Deno.mkdir(new URL("keys/", ROOT), { recursive: true });
  const abs = await Deno.makeTempDir({ dir: new URL("keys/", ROOT).pathname, prefix: "test-" });
  return {
    abs,
    rel: `./keys/${abs.split("/").pop()}`,
    [Symbol.asyncDispose]: () => Deno.remove(abs, { recursive: true }),
  };
}

interface Holder {
  id: string;
  key: string;
  scopes: string[];
}

async function writeKeys(path: string, holders: Holder[]): Promise<void> {
  const keys = await Promise.all(
    holders.map(async (h) => ({ id: h.id, sha256: await keyDigestHex(h.key), scopes: h.scopes })),
  );
  // As an operator's deploy does it: write beside, then rename over (a new inode).
  await Deno.writeTextFile(`${path}.tmp`, JSON.stringify({ keys }, null, 2));
  await Deno.rename(`${path}.tmp`, path);
}

/** A real OTLP/HTTP receiver that keeps every body as sent, to be searched whole. */
function otlpReceiver() {
  const bodies: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    bodies.push(await req.text());
    return Response.json({});
  });
  return { endpoint: `http://127.0.0.1:${server.addr.port}`, bodies, close: () => server.shutdown() };
}

Deno.test("deno task start refuses to start without its key file", async (t) => {
  await using dir = await keysDir();

  await t.step("a missing file: exit 2, naming API_KEYS_FILE", async () => {
    const out = await runUntilExit({ API_KEYS_FILE: `${dir.rel}/absent.json`, MODEL_SOURCE: "synthetic" });
    assert.equal(out.code, 2);
    assert.match(out.stderr, /API_KEYS_FILE=\.\/keys\/test-\w+\/absent\.json: the file does not exist/);
    assert.match(String(out.fatal?.message), /API_KEYS_FILE=/);
  });

  await t.step("an invalid file: exit 2, naming the variable and the field", async () => {
    await Deno.writeTextFile(
      `${dir.abs}/bad.json`,
      JSON.stringify({ keys: [{ id: "x", sha256: "00", scopes: ["infer"] }] }),
    );
    const out = await runUntilExit({ API_KEYS_FILE: `${dir.rel}/bad.json`, MODEL_SOURCE: "synthetic" });
    assert.equal(out.code, 2);
    assert.match(out.stderr, /API_KEYS_FILE=.*bad\.json is invalid: keys\[0\]\.sha256/);
  });

  await t.step("a file the start task may not read: exit 2, saying so", async () => {
    const out = await runUntilExit({ API_KEYS_FILE: "./deno.json", MODEL_SOURCE: "synthetic" });
    assert.equal(out.code, 2);
    assert.match(out.stderr, /API_KEYS_FILE=\.\/deno\.json: the file cannot be read/);
  });

  await t.step("METRICS_REQUIRE_KEY=true without a key file is a configuration error", async () => {
    const out = await runUntilExit({ METRICS_REQUIRE_KEY: "true" });
    assert.equal(out.code, 2);
    assert.match(
      out.stderr,
      /METRICS_REQUIRE_KEY="true" is invalid: expected false unless API_KEYS_FILE is set/,
    );
  });
});

Deno.test("deno task start with API keys", async (t) => {
  await using dir = await keysDir();
  const path = `${dir.abs}/keys.json`;
  const app: Holder = { id: "app", key: newKey(), scopes: ["infer"] };
  const ops: Holder = { id: "ops", key: newKey(), scopes: ["admin", "metrics"] };
  const late: Holder = { id: "late", key: newKey(), scopes: ["infer"] };
  await writeKeys(path, [app, ops]);
  const receiver = otlpReceiver();
  const server = await startTask({
    MODEL_SOURCE: "synthetic",
    API_KEYS_FILE: `${dir.rel}/keys.json`,
    METRICS_REQUIRE_KEY: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    LOG_LEVEL: "debug",
  });
  const base = `http://127.0.0.1:${server.port}`;
  const coffee = await fixture("images/coffee.jpg");
  const call = async (path: string, key?: string, init: RequestInit = {}) => {
    const res = await fetch(`${base}${path}`, {
      ...init,
      headers: {
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...init.headers as Record<string, string>,
      },
    });
    const text = await res.text();
    return { status: res.status, text, headers: res.headers };
  };
  const scrape = async () => (await call("/metrics", ops.key)).text;
  const metric = async (re: RegExp) => Number(re.exec(await scrape())?.[1]);
  try {
    await waitReady(server.port, 120_000);

    await t.step("the startup line says which routes are open and which need which scope", () => {
      const line = server.lines.find((l) => String(l.message).startsWith("Access:"));
      assert.ok(line, "an Access: line");
      const routes = line.routes as Record<string, string[]>;
      assert.ok(routes.open.includes("/health") && routes.open.includes("/v2/health/*"));
      assert.deepEqual(routes.metrics, ["/metrics"]);
      assert.ok(routes.infer.includes("/predict"));
      assert.deepEqual(routes.admin, ["/v2/repository/models/*"]);
    });

    await t.step("each status over real HTTP", async () => {
      const none = await call("/predict", undefined, { method: "POST", body: coffee });
      assert.equal(none.status, 401);
      assert.equal(none.headers.get("www-authenticate"), 'Bearer realm="inference-gateway"');
      assert.equal(JSON.parse(none.text).code, "unauthorized");
      assert.equal((await call("/predict", newKey(), { method: "POST", body: coffee })).status, 401);
      const scope = await call("/predict", ops.key, { method: "POST", body: coffee });
      assert.equal(scope.status, 403);
      assert.equal(JSON.parse(scope.text).code, "insufficient_scope");
      assert.equal((await call("/predict", app.key, { method: "POST", body: coffee })).status, 200);
      const v2 = await call("/v2/models/resnet50");
      assert.equal(v2.status, 401);
      assert.match(JSON.parse(v2.text).error, /API key/);
      assert.equal((await call("/v2/models/resnet50", app.key)).status, 200);
      assert.equal((await call("/metrics")).status, 401);
      assert.equal((await call("/metrics", app.key)).status, 403);
      assert.equal((await call("/metrics", ops.key)).status, 200);
      for (const open of ["/health", "/ready", "/v2/health/live", "/v2/health/ready", "/", "/openapi.json"]) {
        assert.equal((await call(open)).status, 200, open);
      }
      const load = await call("/v2/repository/models/resnet50/load", app.key, { method: "POST" });
      assert.equal(load.status, 403);
    });

    await t.step(
      "the key file changed under load: a new key is served within seconds, no request fails",
      async () => {
        const failures: string[] = [];
        let done = 0;
        let stop = false;
        const client = async (path: string, init: () => RequestInit) => {
          while (!stop) {
            const res = await call(path, app.key, init()).catch((err) => ({ status: 0, text: String(err) }));
            if (res.status !== 200) failures.push(`${path} ${res.status} ${res.text.slice(0, 120)}`);
            done++;
          }
        };
        const clients = [
          client("/predict", () => ({ method: "POST", body: coffee })),
          client("/info", () => ({})),
          client("/info", () => ({})),
          client("/v2/models/resnet50", () => ({})),
        ];
        try {
          await sleep(300);
          const started = Date.now();
          await writeKeys(path, [app, ops, late]);
          let served = false;
          while (!served && Date.now() - started < 10_000) {
            served = (await call("/info", late.key)).status === 200;
            if (!served) await sleep(100);
          }
          assert.ok(served, "the new key works within 10 s");
          // The other edits an operator makes: reorder, change another key's scopes; then the same bytes again.
          await writeKeys(path, [late, { ...ops, scopes: ["metrics", "admin", "infer"] }, app]);
          await sleep(1500);
          await writeKeys(path, [late, { ...ops, scopes: ["metrics", "admin", "infer"] }, app]);
          await sleep(1500);
        } finally {
          stop = true;
          await Promise.all(clients);
        }
        assert.deepEqual(failures, [], `${failures.length} of ${done} requests failed`);
        assert.ok(done > 20, `${done} requests during the reloads`);
        assert.equal((await call("/predict", ops.key, { method: "POST", body: coffee })).status, 200);
      },
    );

    await t.step("a revoked key is refused within seconds", async () => {
      await writeKeys(path, [app, ops]);
      const started = Date.now();
      let refused = false;
      while (!refused && Date.now() - started < 10_000) {
        refused = (await call("/info", late.key)).status === 401;
        if (!refused) await sleep(100);
      }
      assert.ok(refused, "the removed key is refused within 10 s");
    });

    await t.step("a broken file keeps the last good keys, logs one ERROR and sets the metric", async () => {
      await Deno.writeTextFile(`${path}.tmp`, '{"keys": [{"id": "app", ');
      await Deno.rename(`${path}.tmp`, path);
      const started = Date.now();
      while (await metric(/^api_keys_file_valid (\d+)$/m) !== 0 && Date.now() - started < 10_000) {
        await sleep(100);
      }
      assert.equal(await metric(/^api_keys_file_valid (\d+)$/m), 0);
      await sleep(2500); // a few more polls of the same broken version
      assert.equal((await call("/info", app.key)).status, 200);
      const errors = server.lines.filter((l) =>
        l.level === "ERROR" && String(l.message).includes("API key file")
      );
      assert.equal(errors.length, 1, JSON.stringify(errors));
      assert.match(String(errors[0].error), /API_KEYS_FILE=.*Not UTF-8 JSON/);
      assert.equal(await metric(/^api_keys_reload_failures_total (\d+)$/m), 1);
      await writeKeys(path, [app, ops]);
      while (await metric(/^api_keys_file_valid (\d+)$/m) !== 1 && Date.now() - started < 20_000) {
        await sleep(100);
      }
      assert.equal(await metric(/^api_keys_file_valid (\d+)$/m), 1);
    });

    await t.step("failures were counted by reason", async () => {
      const text = await scrape();
      for (const reason of ["missing", "unknown", "scope"]) {
        assert.ok(
          Number(new RegExp(`^auth_failures_total\\{reason="${reason}"\\} (\\d+)$`, "m").exec(text)?.[1]) > 0,
          reason,
        );
      }
      assert.match(text, /^api_key_requests_total\{key_id="app"\} \d+$/m);
    });

    await t.step("no log line, exported span or metric holds a key or a key's hash", async () => {
      const metricsText = await scrape();
      server.child.kill("SIGTERM"); // flushes the logs and the span exporter
      assert.equal((await server.status).code, 0, server.stderr());
      const spans = receiver.bodies.join("\n");
      assert.match(spans, /"key":"enduser\.id","value":\{"stringValue":"app"\}/, "spans carry the key id");
      assert.ok(server.lines.some((l) => l.key_id === "app"), "log lines carry the key id");
      const logs = [...server.lines.map((l) => JSON.stringify(l)), ...server.notJson, server.stderr()].join(
        "\n",
      );
      const secrets: Array<[string, string]> = [];
      for (const h of [app, ops, late]) {
        secrets.push([`${h.id}'s key`, h.key], [`${h.id}'s sha256`, await keyDigestHex(h.key)]);
      }
      for (const [where, text] of [["logs", logs], ["spans", spans], ["metrics", metricsText]]) {
        for (const [what, secret] of secrets) assert.ok(!text.includes(secret), `${what} is in the ${where}`);
      }
    });
  } finally {
    // SIGTERM, which deno task passes on; SIGKILL would leave its child, the gateway, running.
    try {
      server.child.kill("SIGTERM");
    } catch { /* already exited */ }
    await server.status;
    await receiver.close();
  }
});
