/**
 * Alerts reach a person: Debian's prometheus and prometheus-alertmanager run the shipped rules and
 * routing against real gateways that break as gateways do, and a webhook receiver here stands
 * in for the pager and the ticket queue. The test changes only what makes it run in a minute:
 * `for:` durations and evaluation, scrape, grouping and resend intervals, plus the addresses
 * (the targets, and the receivers' webhook placeholders pointed at this process).
 *
 * Four instances, one Prometheus job, in parallel:
 * - failing: the real app behind the real server, on a runner that fails every inference as a
 *   native fault would, then recovers;
 * - stopped: `deno task start`, ready, then stopped with SIGTERM, then started again;
 * - unloadable: `deno task start` on a file that is not an ONNX model (it exits 1);
 * - loading: `deno task start` whose model download stalls, so it listens, answers 503 and never
 *   gets ready.
 */
import assert from "node:assert/strict";
import { parse, stringify } from "yaml";
import { freePort, type Started, startTask, waitReady } from "./support/gateway_process.ts";
import {
  captureLogs,
  fixture,
  sharedClassifier,
  stateWithRunner,
  testConfig,
  testTelemetry,
} from "./support/helpers.ts";
import type { ModelInfo, ModelRunner } from "../model/runtime/runner.ts";
import { createApp } from "../routes/app.ts";
import { startServer } from "../server/serve.ts";
import { readLinks, runbookUrl } from "../deploy/runbook_links.ts";

const ROOT = new URL("../", import.meta.url);
const TMP = new URL("tests/tmp/", ROOT);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// deno-lint-ignore no-explicit-any
type Any = any;

async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "piped" }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  return { code: out.code, stdout, text: stdout + new TextDecoder().decode(out.stderr) };
}

Deno.test("amtool: the shipped routing is valid and routes by severity", async (t) => {
  const file = "deploy/alertmanager/alertmanager.yml";
  await t.step("check-config", async () => {
    const r = await run("amtool", ["check-config", file]);
    assert.equal(r.code, 0, r.text);
    assert.match(r.text, /SUCCESS/);
    assert.match(r.text, /4 inhibit rules/);
    assert.match(r.text, /2 receivers/);
  });
  await t.step("config routes test: page, ticket, and no severity at all", async () => {
    const cases: Array<[string[], string]> = [
      [["severity=page", "alertname=InferenceModelNotReady"], "page"],
      [["severity=ticket", "alertname=InferenceSaturated"], "ticket"],
      [["alertname=SomethingUnlabelled"], "ticket"],
      [["severity=critical"], "ticket"],
    ];
    for (const [labels, receiver] of cases) {
      const r = await run("amtool", ["config", "routes", "test", `--config.file=${file}`, ...labels]);
      assert.equal(r.code, 0, r.text);
      assert.equal(r.stdout.trim(), receiver, labels.join(" "));
    }
  });
  await t.step("a routing file with a broken matcher fails the check", async () => {
    const dir = await Deno.makeTempDir({ dir: TMP.pathname });
    try {
      const broken = (await read(file)).replace('severity="page"', "severity=~(");
      await Deno.writeTextFile(`${dir}/am.yml`, broken);
      const r = await run("amtool", ["check-config", `${dir}/am.yml`]);
      assert.notEqual(r.code, 0, r.text);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("every alert, severity and objective the routing names exists in the rules", async () => {
  // A renamed alert would otherwise silently stop a route or an inhibition from matching.
  const am: Any = parse(await read("deploy/alertmanager/alertmanager.yml"));
  const rules: Any = parse(await read("deploy/prometheus/rules/inference-gateway.rules.yml"));
  const alerts = rules.groups.flatMap((g: Any) => g.rules).filter((r: Any) => r.alert);
  const known: Record<string, Set<string>> = {
    alertname: new Set(alerts.map((a: Any) => a.alert)),
    severity: new Set(alerts.map((a: Any) => a.labels.severity)),
    slo: new Set(alerts.map((a: Any) => a.labels.slo).filter(Boolean)),
  };
  const matchers: string[] = [
    ...am.route.routes.flatMap((r: Any) => r.matchers),
    ...am.inhibit_rules.flatMap((r: Any) => [...r.source_matchers, ...r.target_matchers]),
  ];
  assert.ok(matchers.length >= 10);
  for (const matcher of matchers) {
    const [, name, op, value] = /^(\w+)(=~|=)"(.*)"$/.exec(matcher)!;
    assert.ok(known[name], `${matcher}: matches on a label the rules define`);
    const values = op === "=~" ? value.split("|") : [value];
    for (const v of values) assert.ok(known[name].has(v), `${matcher}: ${v} is not in the rules`);
  }
  // Every alert is routed somewhere by its severity, and every inhibition compares labels alerts have.
  for (const severity of known.severity) {
    assert.ok(am.route.routes.some((r: Any) => r.matchers.includes(`severity="${severity}"`)), severity);
  }
  for (const rule of am.inhibit_rules) {
    for (const label of rule.equal) assert.ok(["instance", "slo"].includes(label), label);
  }
});

/** Fails every run as a native fault while `failing`; otherwise runs the real model. */
class FlakyRunner implements ModelRunner {
  failing = true;
  constructor(private readonly real: ModelRunner) {}
  get info(): ModelInfo {
    return this.real.info;
  }
  run(input: Float32Array, batch: number): Promise<Float32Array> {
    if (this.failing) return Promise.reject(new Error("native failure at 0xdeadbeef"));
    return this.real.run(input, batch);
  }
  close(): Promise<void> {
    // The real session is the file's shared one.
    return Promise.resolve();
  }
}

interface Notification {
  receiver: string;
  at: number;
  status: string;
  alerts: Array<{ status: string; labels: Record<string, string>; annotations: Record<string, string> }>;
}

/** The pager and the ticket queue: Alertmanager's webhook JSON, by path. */
function webhookReceiver() {
  const received: Notification[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json();
    received.push({ receiver: new URL(req.url).pathname.slice(1), at: Date.now(), ...body });
    return new Response(null, { status: 204 });
  });
  return { received, server, url: (path: string) => `http://127.0.0.1:${server.addr.port}/${path}` };
}

/** One alert as it arrived: its notification's receiver and status, and the alert itself. */
function deliveries(received: Notification[]) {
  return received.flatMap((n) => n.alerts.map((a) => ({ receiver: n.receiver, at: n.at, ...a })));
}

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    await sleep(250);
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A model server whose download sends its headers and then nothing, as a stalled mirror does. */
function stalledModelServer() {
  const held: Array<ReadableStreamDefaultController<Uint8Array>> = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () =>
    new Response(
      new ReadableStream<Uint8Array>({
        start(controller) {
          held.push(controller);
          controller.enqueue(new Uint8Array(1024));
        },
      }),
      {
        headers: { "content-type": "application/octet-stream", "content-length": String(100 * 1024 * 1024) },
      },
    ));
  return {
    url: `http://127.0.0.1:${server.addr.port}/resnet50.onnx`,
    async close() {
      for (const c of held) c.error(new Error("test over"));
      await server.shutdown();
    },
  };
}

Deno.test({
  name: "alerts reach the right person with a runbook link, symptoms are held back, resolutions follow",
  // The servers, children and their streams are closed in `finally`.
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  await captureLogs("info");
  const links = await readLinks(read);
  const dir = new URL(`alerting-${crypto.randomUUID().slice(0, 8)}/`, TMP);
  await Deno.mkdir(new URL("rules/", dir), { recursive: true });
  const hooks = webhookReceiver();
  const stalled = stalledModelServer();
  const children: Started[] = [];
  const processes: Deno.ChildProcess[] = [];
  let failingServer: { shutdown(signal: string): Promise<void> } | undefined;
  const env = {
    LOG_LEVEL: "warning",
    INFERENCE_WORKERS: "0",
    PREPROCESS_WORKERS: "0",
    INTRA_OP_THREADS: "1",
  };
  try {
    // The failing instance: the real app and server, on a runner that fails.
    const flaky = new FlakyRunner((await sharedClassifier()).batcher.runners[0]);
    const failingConfig = testConfig({ PORT: String(freePort()), HOST: "127.0.0.1" });
    const state = await stateWithRunner(flaky);
    const { telemetry } = testTelemetry(failingConfig);
    const app = createApp({ config: failingConfig, state, telemetry });
    const failing = await startServer({ config: failingConfig, app, state, telemetry });
    failingServer = failing;
    const ports = {
      failing: failing.addr.port,
      stopped: freePort(),
      unloadable: freePort(),
      loading: freePort(),
    };
    const instance = (name: keyof typeof ports) => `127.0.0.1:${ports[name]}`;

    const notAModel = new URL("not-a-model.onnx", dir);
    await Deno.writeTextFile(notAModel, "this is not an ONNX model\n");
    const start = (name: keyof typeof ports, extra: Record<string, string>) =>
      startTask({ ...env, PORT: String(ports[name]), ...extra }).then((s) => (children.push(s), s));
    let stopped = await start("stopped", { MODEL_SOURCE: "synthetic" });
    const unloadable = await start("unloadable", { MODEL_PATH: notAModel.pathname });
    await start("loading", {
      MODEL_SOURCE: "url",
      MODEL_URL: stalled.url,
      MODEL_SHA256: "0".repeat(64),
    });

    // Alertmanager: the shipped routing, its webhooks pointed here, grouping waits shortened.
    const am: Any = parse(await read("deploy/alertmanager/alertmanager.yml"));
    for (const receiver of am.receivers) {
      for (const hook of receiver.webhook_configs) hook.url = hooks.url(receiver.name);
    }
    const shorten = (route: Any) => {
      if (route.group_wait) route.group_wait = "1s";
      if (route.group_interval) route.group_interval = "1s";
      for (const child of route.routes ?? []) shorten(child);
    };
    shorten(am.route);
    await Deno.writeTextFile(new URL("alertmanager.yml", dir), stringify(am));
    const amPort = freePort();
    processes.push(
      new Deno.Command("prometheus-alertmanager", {
        args: [
          `--config.file=${new URL("alertmanager.yml", dir).pathname}`,
          `--storage.path=${new URL("am-data/", dir).pathname}`,
          `--web.listen-address=127.0.0.1:${amPort}`,
          "--cluster.listen-address=",
        ],
        stdout: "null",
        stderr: "null",
      }).spawn(),
    );

    // Prometheus: the shipped config and rules, pointed at these instances and this Alertmanager.
    const prom: Any = parse(await read("deploy/prometheus/prometheus.yml"));
    prom.global.scrape_interval = "1s";
    prom.global.evaluation_interval = "1s";
    prom.alerting.alertmanagers[0].static_configs[0].targets = [`127.0.0.1:${amPort}`];
    prom.scrape_configs = prom.scrape_configs.filter((j: Any) => j.job_name === "inference-gateway");
    prom.scrape_configs[0].static_configs[0].targets = Object.keys(ports).map((n) =>
      instance(n as keyof typeof ports)
    );
    prom.scrape_configs[0].scrape_timeout = "1s";
    await Deno.writeTextFile(new URL("prometheus.yml", dir), stringify(prom));
    const rules: Any = parse(await read("deploy/prometheus/rules/inference-gateway.rules.yml"));
    for (const group of rules.groups) {
      group.interval = "1s";
      for (const rule of group.rules) if (rule.for) rule.for = "2s";
    }
    await Deno.writeTextFile(new URL("rules/inference-gateway.rules.yml", dir), stringify(rules));
    const promPort = freePort();
    processes.push(
      new Deno.Command("prometheus", {
        args: [
          `--config.file=${new URL("prometheus.yml", dir).pathname}`,
          `--storage.tsdb.path=${new URL("prom-data/", dir).pathname}`,
          `--web.listen-address=127.0.0.1:${promPort}`,
          "--rules.alert.resend-delay=1s",
        ],
        stdout: "null",
        stderr: "null",
      }).spawn(),
    );
    const promQuery = async (expr: string) => {
      const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(expr)}`)
        .catch(() => undefined);
      return res?.ok ? (await res.json()).data.result as Array<{ metric: Any; value: [number, string] }> : [];
    };
    /** An alert as Alertmanager holds it (active, inhibited or silenced), from its API. */
    const amAlerts = async () => {
      const res = await fetch(`http://127.0.0.1:${amPort}/api/v2/alerts`).catch(() => undefined);
      return res?.ok
        ? await res.json() as Array<{ labels: Any; status: { state: string; inhibitedBy: string[] } }>
        : [];
    };
    const got = (receiver: string, alertname: string, name: keyof typeof ports, status = "firing") =>
      deliveries(hooks.received).find((d) =>
        d.receiver === receiver && d.status === status && d.labels.alertname === alertname &&
        d.labels.instance === instance(name)
      );
    const predict = async (port: number, n: number, concurrency = 1) => {
      const photo = await fixture("images/coffee.jpg");
      const statuses: number[] = [];
      let sent = 0;
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (sent < n) {
          sent++;
          const res = await fetch(`http://127.0.0.1:${port}/predict`, { method: "POST", body: photo });
          statuses.push(res.status);
          await res.body?.cancel();
        }
      }));
      return statuses;
    };

    // Every target scraped at least twice, so rate() has the primed zeros to start from.
    await waitReady(ports.stopped, 120_000);
    await until("two scrapes of the live instances", 60_000, async () => {
      const r = await promQuery('count_over_time(up{job="inference-gateway"}[1m]) >= 2');
      return r.length === 4 || undefined;
    });

    await t.step("5xx from a failing runner pages with the burn alert's labels and runbook", async () => {
      assert.deepEqual(await predict(ports.failing, 2), [500, 500]);
      const page = await until(
        "the availability page",
        60_000,
        () => got("page", "InferenceAvailabilityBudgetBurnFast", "failing"),
      );
      assert.equal(page.labels.severity, "page");
      assert.equal(page.labels.slo, "availability");
      assert.equal(page.labels.stack, "inference-gateway", "Prometheus's external labels travel with it");
      assert.equal(page.annotations.runbook_url, runbookUrl(links, "InferenceAvailabilityBudgetBurnFast"));
      assert.match(page.annotations.runbook_url, /^https:\/\/.+\/InferenceAvailabilityBudgetBurnFast\.md$/);
      assert.ok(page.annotations.summary);
      // The slow burn of the same objective on the same instance is firing too, but held back.
      await until(
        "the slow burn in Alertmanager, inhibited",
        30_000,
        async () =>
          (await amAlerts()).find((a) =>
            a.labels.alertname === "InferenceAvailabilityBudgetBurnSlow" &&
            a.labels.instance === instance("failing") && a.status.inhibitedBy.length > 0
          ),
      );
      assert.equal(
        got("ticket", "InferenceAvailabilityBudgetBurnSlow", "failing"),
        undefined,
        "the ticket is held while the page fires",
      );
    });

    await t.step("an unloadable model and a stopped process each page for their own instance", async () => {
      const exit = await unloadable.status;
      assert.equal(exit.code, 1, "a model that cannot be loaded stops the process");
      stopped.child.kill("SIGTERM");
      assert.equal((await stopped.status).code, 0);
      for (const name of ["unloadable", "stopped"] as const) {
        const page = await until(
          `${name}: InferenceModelNotReady`,
          60_000,
          () => got("page", "InferenceModelNotReady", name),
        );
        assert.equal(page.labels.severity, "page");
        assert.equal(page.annotations.runbook_url, runbookUrl(links, "InferenceModelNotReady"));
        assert.ok(page.annotations.description.includes(instance(name)), page.annotations.description);
      }
    });

    await t.step(
      "a loading instance answering 503 pages for readiness only: its burn is held back",
      async () => {
        await until(
          "loading: InferenceModelNotReady",
          60_000,
          () => got("page", "InferenceModelNotReady", "loading"),
        );
        const statuses = await predict(ports.loading, 5);
        assert.ok(
          statuses.every((s) => s === 503),
          statuses.join(","),
        );
        const burn = await until(
          "loading: the burn in Alertmanager, inhibited",
          60_000,
          async () =>
            (await amAlerts()).find((a) =>
              a.labels.alertname === "InferenceAvailabilityBudgetBurnFast" &&
              a.labels.instance === instance("loading")
            ),
        );
        assert.equal(burn.status.state, "suppressed");
        assert.ok(burn.status.inhibitedBy.length > 0);
        // Give a wrongly routed notification time to arrive (group_wait and group_interval are 1 s).
        await sleep(3000);
        assert.equal(got("page", "InferenceAvailabilityBudgetBurnFast", "loading"), undefined);
      },
    );

    await t.step("tickets go to the ticket queue, never to the pager", async () => {
      const ticket = await until(
        "the synthetic-weights ticket",
        60_000,
        () => got("ticket", "InferenceSyntheticWeights", "failing"),
      );
      assert.equal(ticket.labels.severity, "ticket");
      assert.equal(ticket.annotations.runbook_url, runbookUrl(links, "InferenceSyntheticWeights"));
      const all = deliveries(hooks.received);
      assert.deepEqual(all.filter((d) => d.receiver === "page" && d.labels.severity !== "page"), []);
      assert.deepEqual(all.filter((d) => d.receiver === "ticket" && d.labels.severity !== "ticket"), []);
    });

    await t.step("recovery sends the resolutions", async () => {
      // The stopped instance comes back while the failing runner recovers and good traffic brings
      // its error ratio (2 of 82) under every page tier (3% on 6h and 30m, 7.2% on 1h and 5m).
      const restarted = start("stopped", { MODEL_SOURCE: "synthetic" }).then(async (s) => {
        stopped = s;
        await waitReady(ports.stopped, 120_000);
      });
      flaky.failing = false;
      const statuses = await predict(ports.failing, 80, 4);
      assert.ok(statuses.every((s) => s === 200), statuses.join(","));
      await restarted;
      const burn = await until(
        "the burn page resolved",
        90_000,
        () => got("page", "InferenceAvailabilityBudgetBurnFast", "failing", "resolved"),
      );
      const ready = await until(
        "the readiness page resolved",
        90_000,
        () => got("page", "InferenceModelNotReady", "stopped", "resolved"),
      );
      for (const resolved of [burn, ready]) {
        assert.equal(resolved.status, "resolved");
        assert.ok(resolved.annotations.runbook_url.startsWith(links.runbookBaseUrl));
      }
      // Resolutions come after what they resolve.
      const fired = got("page", "InferenceModelNotReady", "stopped")!;
      assert.ok(ready.at > fired.at);
    });
  } finally {
    for (const p of processes) {
      try {
        p.kill("SIGTERM");
      } catch { /* already gone */ }
      await p.status;
    }
    for (const c of children) {
      try {
        c.child.kill("SIGTERM");
      } catch { /* already gone */ }
      await c.status;
    }
    await failingServer?.shutdown("SIGTERM");
    await stalled.close();
    await hooks.server.shutdown();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
