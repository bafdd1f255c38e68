/**
 * The shipped Prometheus configuration, rules and dashboards, checked by the
 * real tools: promtool validates and unit-tests the rules; a real Prometheus
 * scrapes the real gateway and answers every recording rule and every
 * dashboard query.
 */
import assert from "node:assert/strict";
import { parse, stringify } from "yaml";
import { freePort, startTask, waitReady } from "./support/gateway_process.ts";
import { fixture, testConfig, testTelemetry } from "./support/helpers.ts";
import { createApp, PREDICTION_ROUTES } from "../routes/app.ts";
import { ModelState } from "../model/runtime/state.ts";

const ROOT = new URL("../", import.meta.url);
const PROM_DIR = new URL("deploy/prometheus/", ROOT);
const TMP = new URL("tests/tmp/", ROOT);

async function run(cmd: string, args: string[], cwd = PROM_DIR) {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text };
}

Deno.test("promtool: config and rules are valid", async () => {
  const config = await run("promtool", ["check", "config", "prometheus.yml"]);
  assert.equal(config.code, 0, config.text);
  const rules = await run("promtool", ["check", "rules", "rules/inference-gateway.rules.yml"]);
  assert.equal(rules.code, 0, rules.text);
  assert.match(rules.text, /SUCCESS: \d+ rules found/);
});

for (const file of ["burn_rate_fast.test.yml", "burn_rate_slow.test.yml", "signals.test.yml"]) {
  Deno.test(`promtool test rules: ${file}`, async () => {
    const r = await run("promtool", ["test", "rules", `tests/${file}`]);
    assert.equal(r.code, 0, r.text);
    assert.match(r.text, /SUCCESS/);
  });
}

// deno-lint-ignore no-explicit-any
type Any = any;

Deno.test("the SLIs count exactly the prediction routes the app primes and serves", async () => {
  const text = await Deno.readTextFile(new URL("rules/inference-gateway.rules.yml", PROM_DIR));
  const matchers = new Set(text.match(/(?<=http_route=~")[^"]+/g));
  assert.deepEqual([...matchers], [PREDICTION_ROUTES.map((r) => r.route).join("|")]);
  const { telemetry } = testTelemetry(testConfig());
  const app = createApp({ config: testConfig(), state: new ModelState(), telemetry });
  for (const { method, route } of PREDICTION_ROUTES) {
    assert.ok(
      app.routes.some((r) => r.method === method && r.path === route),
      `${method} ${route} is served`,
    );
  }
});

function dashboardExpressions(dash: Any): Array<{ panel: string; expr: string }> {
  return dash.panels.flatMap((p: Any) =>
    p.targets.map((t: Any) => ({ panel: `${dash.title} / ${p.title}`, expr: t.expr }))
  );
}

async function query(base: string, expr: string) {
  const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return await res.json();
}

Deno.test("a real Prometheus with the shipped rules answers every recording rule and dashboard query", async () => {
  // The gateway, under exactly its start task's permissions; MAX_QUEUE=1 so bursts produce real 503s.
  const gatewayPort = freePort();
  const gateway = await startTask({
    MODEL_SOURCE: "synthetic",
    PORT: String(gatewayPort),
    LOG_LEVEL: "warning",
    MAX_QUEUE: "1",
  });
  const promPort = freePort();
  const dir = new URL(`prom-${crypto.randomUUID().slice(0, 8)}/`, TMP);
  await Deno.mkdir(new URL("rules/", dir), { recursive: true });
  let prometheus: Deno.ChildProcess | undefined;
  try {
    // The shipped files, with the target pointed at this gateway. Intervals are shortened so
    // rules evaluate within the test (the shipped 30s/5m would need minutes of waiting).
    const config: Any = parse(await Deno.readTextFile(new URL("prometheus.yml", PROM_DIR)));
    config.global.scrape_interval = "1s";
    config.global.evaluation_interval = "1s";
    config.scrape_configs.find((j: Any) => j.job_name === "inference-gateway").static_configs[0].targets = [
      `127.0.0.1:${gatewayPort}`,
    ];
    await Deno.writeTextFile(new URL("prometheus.yml", dir), stringify(config));
    const rules: Any = parse(await Deno.readTextFile(new URL("rules/inference-gateway.rules.yml", PROM_DIR)));
    for (const g of rules.groups) g.interval = "1s";
    await Deno.writeTextFile(new URL("rules/inference-gateway.rules.yml", dir), stringify(rules));

    prometheus = new Deno.Command("prometheus", {
      args: [
        `--config.file=${new URL("prometheus.yml", dir).pathname}`,
        `--storage.tsdb.path=${new URL("data/", dir).pathname}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        "--enable-feature=exemplar-storage",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const prom = `http://127.0.0.1:${promPort}`;
    await waitReady(gatewayPort, 120_000);
    // Traffic sent before Prometheus's first scrape only shows as a counter's starting value,
    // which rate() never sees: wait until the target has been scraped twice.
    const scraped = Date.now() + 60_000;
    while (Date.now() < scraped) {
      const r = await query(prom, 'count_over_time(up{job="inference-gateway"}[1m])').catch(() => undefined);
      if (Number(r?.data?.result?.[0]?.value?.[1]) >= 2) break;
      await new Promise((res) => setTimeout(res, 250));
    }

    // Traffic: good predictions, client errors, and bursts that overflow the queue (503).
    const coffee = await fixture("images/coffee.jpg");
    const send = (body: BodyInit) =>
      fetch(`http://127.0.0.1:${gatewayPort}/predict`, { method: "POST", body }).then((r) =>
        r.body?.cancel()
      );
    for (let round = 0; round < 6; round++) {
      await Promise.all(Array.from({ length: 6 }, () => send(coffee)));
      await send("not an image");
      await send(coffee.slice(0, 500));
      await new Promise((r) => setTimeout(r, 500));
    }
    // Let Prometheus scrape and evaluate a few more times.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const r = await query(prom, "slo:availability_errors:ratio_rate5m").catch(() => undefined);
      if (r?.data?.result?.length) break;
      await new Promise((res) => setTimeout(res, 500));
    }
    await new Promise((r) => setTimeout(r, 3000));

    const failures: string[] = [];
    for (const group of rules.groups) {
      for (const rule of group.rules.filter((r: Any) => r.record)) {
        const r = await query(prom, rule.record);
        if (r.status !== "success" || r.data.result.length === 0) {
          failures.push(`rule ${rule.record}: no data`);
        }
      }
    }
    for await (const f of Deno.readDir(new URL("deploy/grafana/dashboards/", ROOT))) {
      const dash = JSON.parse(await Deno.readTextFile(new URL(`deploy/grafana/dashboards/${f.name}`, ROOT)));
      for (const { panel, expr } of dashboardExpressions(dash)) {
        const r = await query(prom, expr);
        if (r.status !== "success") failures.push(`${panel}: ${r.error}`);
        else if (r.data.result.length === 0) failures.push(`${panel}: no data for ${expr}`);
      }
    }
    assert.deepEqual(failures, []);

    // The traffic included failures, and the SLI saw them.
    const errors = await query(
      prom,
      'sum(http_server_request_duration_seconds_count{http_response_status_code="503"})',
    );
    assert.ok(Number(errors.data.result[0]?.value[1]) > 0, "bursts produced 503s");
    const avail = await query(prom, "slo:availability_errors:ratio_rate5m");
    assert.ok(Number(avail.data.result[0].value[1]) > 0, "5xx spend the availability budget");

    // Exemplars made it through the OpenMetrics scrape.
    const now = Date.now() / 1000;
    const ex = await (await fetch(
      `${prom}/api/v1/query_exemplars?query=${
        encodeURIComponent("http_server_request_duration_seconds_bucket")
      }&start=${now - 300}&end=${now}`,
    )).json();
    assert.ok(
      ex.data.some((s: Any) => s.exemplars.some((e: Any) => /^[0-9a-f]{32}$/.test(e.labels.trace_id))),
      "latency exemplars carry trace ids",
    );
  } finally {
    prometheus?.kill("SIGTERM");
    await prometheus?.status;
    gateway.child.kill("SIGTERM");
    await gateway.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
