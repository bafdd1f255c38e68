/**
 * The compose stack, the Dockerfile and the Grafana provisioning must agree
 * with each other and with the gateway. No Docker engine is needed: this
 * reads the files as compose and Grafana would.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { denoConfig, taskGrant } from "./support/task_permissions.ts";

const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));
const exists = async (path: string) => {
  try {
    await Deno.stat(new URL(path, ROOT));
    return true;
  } catch {
    return false;
  }
};

// deno-lint-ignore no-explicit-any
type Any = any;

Deno.test("compose stack", async (t) => {
  const compose: Any = parse(await read("docker-compose.yml"));
  const services = compose.services;
  const dockerfile = await read("Dockerfile");
  const config = await denoConfig();
  const tasks = config.tasks;

  await t.step("has the gateway, Prometheus, Alertmanager, Jaeger and Grafana on one private network", () => {
    assert.deepEqual(Object.keys(services).sort(), [
      "alertmanager",
      "grafana",
      "inference-gateway",
      "jaeger",
      "prometheus",
    ]);
    for (const [name, s] of Object.entries<Any>(services)) {
      assert.deepEqual(s.networks, ["observability"], name);
    }
    assert.equal(compose.networks.observability.driver, "bridge");
  });

  await t.step("every bind-mounted file or folder exists", async () => {
    for (const [name, s] of Object.entries<Any>(services)) {
      for (const v of s.volumes ?? []) {
        const source = String(v).split(":")[0];
        if (source.startsWith("./")) assert.ok(await exists(source), `${name}: ${source}`);
        else assert.ok(source in compose.volumes, `${name}: named volume ${source} is declared`);
      }
    }
  });

  await t.step("every service has a health check, and start order waits on health", () => {
    for (const [name, s] of Object.entries<Any>(services)) {
      assert.ok(s.healthcheck?.test, `${name} has a healthcheck`);
    }
    assert.equal(services.prometheus.depends_on["inference-gateway"].condition, "service_healthy");
    assert.equal(services.grafana.depends_on.prometheus.condition, "service_healthy");
    assert.match(dockerfile, /^HEALTHCHECK [^\n]*\\\n\s*CMD \[[^\n]*deploy\/healthcheck\.ts/m);
    assert.ok(!/curl/.test(dockerfile), "the health check needs no curl");
  });

  await t.step("Prometheus scrapes the gateway's service name and port", async () => {
    const prom: Any = parse(await read("deploy/prometheus/prometheus.yml"));
    const job = prom.scrape_configs.find((j: Any) => j.job_name === "inference-gateway");
    assert.deepEqual(job.static_configs[0].targets, ["inference-gateway:8000"]);
    assert.ok(services["inference-gateway"].ports.includes("8000:8000"));
    assert.ok(services.prometheus.command.includes("--config.file=/etc/prometheus/prometheus.yml"));
    assert.ok(services.prometheus.volumes.includes("./deploy/prometheus:/etc/prometheus:ro"));
    assert.ok(
      services.prometheus.command.includes("--enable-feature=exemplar-storage"),
      "exemplars are stored",
    );
  });

  await t.step(
    "Prometheus sends alerts to the Alertmanager service, which reads the shipped routing",
    async () => {
      const prom: Any = parse(await read("deploy/prometheus/prometheus.yml"));
      const targets = prom.alerting.alertmanagers.flatMap((a: Any) => a.static_configs[0].targets);
      assert.deepEqual(targets, ["alertmanager:9093"]);
      assert.ok(services.alertmanager.ports.includes("9093:9093"));
      assert.ok(services.alertmanager.volumes.includes("./deploy/alertmanager:/etc/alertmanager:ro"));
      assert.ok(services.alertmanager.command.includes("--config.file=/etc/alertmanager/alertmanager.yml"));
      assert.ok(await exists("deploy/alertmanager/alertmanager.yml"));
      assert.equal(services.prometheus.depends_on.alertmanager.condition, "service_healthy");
      const scraped = prom.scrape_configs.find((j: Any) => j.job_name === "alertmanager");
      assert.deepEqual(scraped.static_configs[0].targets, ["alertmanager:9093"]);
    },
  );

  await t.step("the gateway exports OTLP to Jaeger, which accepts OTLP/HTTP on 4318", () => {
    const env = services["inference-gateway"].environment;
    assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, "http://jaeger:4318");
    assert.equal(services.jaeger.environment.COLLECTOR_OTLP_ENABLED, "true");
    assert.ok(services.jaeger.ports.includes("4318:4318"));
    assert.ok(
      (taskGrant(config, "start").grants.net as string[]).includes("jaeger:4318"),
      "the start task may reach the collector",
    );
  });

  await t.step("the gateway runs as non-root with the start task's scoped permissions", () => {
    assert.match(dockerfile, /^USER 1993:1993$/m, "the deno user by number (runAsNonRoot can verify it)");
    assert.match(dockerfile, /^CMD \["deno", "task", "--quiet", "start"\]$/m);
    assert.match(dockerfile, /^FROM denoland\/deno:\d+\.\d+\.\d+$/m, "base image pinned to a version");
    assert.match(dockerfile, /deno install --frozen/);
    for (const text of [dockerfile, JSON.stringify(compose), JSON.stringify(tasks)]) {
      assert.ok(!/(^|\s|")-A(\s|"|$)|--allow-all/.test(text), "no -A anywhere");
    }
    assert.ok(services["inference-gateway"].deploy.resources.limits.memory);
    assert.ok(services["inference-gateway"].deploy.resources.limits.cpus);
  });

  await t.step(
    "the image holds only what runs: one platform's binaries, a precompiled health check",
    async () => {
      const ignore = (await read(".dockerignore")).split("\n").map((l) => l.trim());
      for (
        const path of [".git", ".ci", "tests", "bench", "docs", "deploy", "models", "node_modules", ".env"]
      ) {
        assert.ok(ignore.includes(path), `.dockerignore keeps ${path} out`);
      }
      assert.ok(ignore.includes("!deploy/healthcheck.ts"), "the health check script stays in");
      assert.match(
        dockerfile,
        /^RUN deno cache [^\n]*deploy\/healthcheck\.ts/m,
        "the health check is compiled at build",
      );
      assert.match(
        dockerfile,
        /onnxruntime-node\/bin\/napi-v\*/,
        "onnxruntime-node's other platforms are removed",
      );
    },
  );

  await t.step("no secrets in the compose file: Grafana's password comes from the environment", () => {
    assert.equal(services.grafana.environment.GF_SECURITY_ADMIN_PASSWORD, "${GRAFANA_ADMIN_PASSWORD:-admin}");
  });

  await t.step(
    "Grafana provisions both data sources and loads the dashboards from the mounted folder",
    async () => {
      const ds: Any = parse(await read("deploy/grafana/provisioning/datasources/datasources.yml"));
      const prom = ds.datasources.find((d: Any) => d.type === "prometheus");
      const jaeger = ds.datasources.find((d: Any) => d.type === "jaeger");
      assert.equal(prom.url, "http://prometheus:9090");
      assert.equal(jaeger.url, "http://jaeger:16686");
      assert.equal(
        prom.jsonData.exemplarTraceIdDestinations[0].datasourceUid,
        jaeger.uid,
        "exemplars open Jaeger",
      );
      const providers: Any = parse(await read("deploy/grafana/provisioning/dashboards/dashboards.yml"));
      const path = providers.providers[0].options.path;
      assert.ok(services.grafana.volumes.includes(`./deploy/grafana/dashboards:${path}:ro`));
      for await (const f of Deno.readDir(new URL("deploy/grafana/dashboards/", ROOT))) {
        const dash = JSON.parse(await read(`deploy/grafana/dashboards/${f.name}`));
        for (const panel of dash.panels) {
          for (const target of panel.targets) {
            assert.equal(
              target.datasource.uid,
              prom.uid,
              `${f.name}: ${panel.title}`,
            );
          }
        }
      }
    },
  );

  await t.step("every alert's runbook exists", async () => {
    const rules: Any = parse(await read("deploy/prometheus/rules/inference-gateway.rules.yml"));
    const alerts = rules.groups.flatMap((g: Any) => g.rules).filter((r: Any) => r.alert);
    assert.ok(alerts.length >= 9);
    for (const a of alerts) {
      // A link a pager can open (deploy/runbooks.yml's base), to a runbook this repository has.
      assert.match(a.annotations.runbook_url, new RegExp(`^https?://[^/]+/.*/${a.alert}\\.md$`));
      assert.ok(await exists(`docs/runbooks/${a.alert}.md`), a.alert);
      assert.ok(a.labels.severity === "page" || a.labels.severity === "ticket", a.alert);
      assert.ok(a.annotations.summary, a.alert);
    }
  });
});
