/**
 * The Kubernetes manifests, checked without a cluster: rendered by the real
 * `kubectl kustomize` (base and every overlay), validated against pinned
 * Kubernetes 1.36 OpenAPI schemas, checked for unknown fields, and held to the
 * gateway's policies. A deliberately broken overlay must fail every check.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { ModelState } from "../model/runtime/state.ts";
import { createApp } from "../routes/app.ts";
import { createTelemetry } from "../observability/telemetry.ts";
import { testConfig } from "./support/helpers.ts";
import {
  type Any,
  dockerfileUser,
  envProblems,
  gracePeriodProblems,
  type K8sObject,
  kustomizationProblems,
  networkProblems,
  parseManifests,
  portProblems,
  probeProblems,
  resourceProblems,
  schemaProblems,
  securityProblems,
  typeModule,
  wiringProblems,
} from "./support/kubernetes_checks.ts";

const ROOT = new URL("../", import.meta.url);
const K8S = "deploy/kubernetes/";
const TARGETS = ["base", "overlays/int8", "overlays/prometheus-operator", "overlays/keda"];
const BROKEN = "tests/fixtures/kubernetes/broken";

/** `kubectl kustomize dir`, failing with a clear message when kubectl is not installed. */
async function kustomize(dir: string): Promise<K8sObject[]> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("kubectl", {
      args: ["kustomize", new URL(dir, ROOT).pathname],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        "kubectl is not installed: the Kubernetes manifests are rendered with `kubectl kustomize`. " +
          "Install Debian's kubernetes-client package (.ci/run does).",
      );
    }
    throw err;
  }
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `kubectl kustomize ${dir} failed: ${stderr}`);
  return parseManifests(new TextDecoder().decode(out.stdout));
}

const isDirectory = (path: string) => {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
};

/** The app's GET routes, from the real createApp (no port, model not loaded). */
async function appGetRoutes(): Promise<Set<string>> {
  const config = testConfig();
  const app = createApp({
    config,
    state: new ModelState(),
    telemetry: createTelemetry(config, "0.0.0-test"),
  });
  const routes = new Set<string>();
  for (const r of app.routes) {
    if (r.method !== "GET" || r.path.includes("*") || r.path.includes(":")) continue;
    // A registered path answers with its own handler, not the app's 404.
    const res = await app.request(r.path);
    await res.body?.cancel();
    if (res.status !== 404) routes.add(r.path);
  }
  return routes;
}

/** Runs `deno check` over modules that give each object its kubernetes-models type; returns errors per module. */
async function strictTypeErrors(sets: Record<string, K8sObject[]>): Promise<Record<string, string[]>> {
  // A fixed place: with unchanged manifests deno check answers from its cache.
  const dir = new URL("tests/tmp/k8s-strict/", ROOT);
  await Deno.mkdir(dir, { recursive: true });
  try {
    const files: string[] = [];
    for (const [name, objects] of Object.entries(sets)) {
      const imports = new Map<string, string>();
      const lines = objects.map((o, i) => {
        imports.set(typeModule(o), `I${o.kind}`);
        return `export const o${i}: I${o.kind} = ${JSON.stringify(o, null, 1)};`;
      });
      const header = [...imports].map(([module, type]) => `import type { ${type} } from "${module}";`);
      const file = new URL(`${name.replaceAll("/", "_")}.ts`, dir).pathname;
      await Deno.writeTextFile(file, [...header, ...lines].join("\n") + "\n");
      files.push(file);
    }
    const out = await new Deno.Command("deno", {
      args: ["check", "--quiet", ...files],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    const errors: Record<string, string[]> = {};
    // Each diagnostic: "TS2353 [ERROR]: <message>" ... "at file:///.../<name>.ts:line:col".
    for (const m of text.matchAll(/TS\d+ \[ERROR\]: ([^\n]+)[\s\S]*?at file:\/\/([^\s:]+\.ts):\d+/g)) {
      const name = Object.keys(sets).find((n) => m[2].endsWith(`/${n.replaceAll("/", "_")}.ts`)) ?? m[2];
      (errors[name] ??= []).push(m[1]);
    }
    if (!out.success && Object.keys(errors).length === 0) throw new Error(`deno check failed: ${text}`);
    return errors;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("Kubernetes manifests", async (t) => {
  const rendered: Record<string, K8sObject[]> = Object.fromEntries(
    await Promise.all(TARGETS.map(async (d) => [d, await kustomize(K8S + d)] as const)),
  );
  const broken = await kustomize(BROKEN);
  const dockerfile = await Deno.readTextFile(new URL("Dockerfile", ROOT));
  const adapter: Any = parse(await Deno.readTextFile(new URL(`${K8S}prometheus-adapter/config.yaml`, ROOT)));
  const adapterMetrics = new Set<string>(adapter.rules.map((r: Any) => r.name.as));
  const routes = await appGetRoutes();
  const all = Object.entries(rendered);
  const kinds = (objects: K8sObject[]) => objects.map((o) => o.kind).sort();

  await t.step("kubectl kustomize renders the base and every overlay with the objects each adds", () => {
    const base = [
      "ConfigMap",
      "Deployment",
      "HorizontalPodAutoscaler",
      "Namespace",
      "NetworkPolicy",
      "PodDisruptionBudget",
      "Service",
      "ServiceAccount",
    ];
    assert.deepEqual(kinds(rendered.base), base);
    assert.deepEqual(kinds(rendered["overlays/int8"]), base);
    assert.deepEqual(
      kinds(rendered["overlays/prometheus-operator"]),
      [...base, "AlertmanagerConfig", "PrometheusRule", "ServiceMonitor"].sort(),
    );
    assert.deepEqual(
      kinds(rendered["overlays/keda"]),
      [...base.filter((k) => k !== "HorizontalPodAutoscaler"), "ScaledObject"].sort(),
    );
    for (const [dir, objects] of all) {
      for (const o of objects) {
        if (o.kind !== "Namespace") {
          assert.equal(o.metadata.namespace, "inference-gateway", `${dir}: ${o.kind}`);
        }
        assert.equal(
          o.metadata.labels?.["app.kubernetes.io/part-of"],
          "inference-gateway",
          `${dir}: ${o.kind}`,
        );
      }
    }
    const cm = (dir: string) => rendered[dir].find((o) => o.kind === "ConfigMap")!.data;
    assert.equal(cm("overlays/int8").MODEL_PRECISION, "int8");
    assert.equal(cm("base").MODEL_PRECISION, undefined);
  });

  await t.step("every kustomization uses only what kubectl 1.20's kustomize (v2.0.3) supports", async () => {
    const dirs = ["gateway", ...TARGETS].map((d) => K8S + d).concat(BROKEN);
    for (const dir of dirs) {
      const base = new URL(`${dir}/`, ROOT);
      const k: Any = parse(await Deno.readTextFile(new URL("kustomization.yaml", base)));
      const at = (p: string) => new URL(p, base).pathname;
      assert.deepEqual(
        kustomizationProblems(k, (p) => isDirectory(at(p)), (p) => Deno.readTextFileSync(at(p))),
        [],
        dir,
      );
    }
    // And the check refuses what v2.0.3 cannot do.
    const newer = { resources: ["../gateway"], patches: [{ path: "p.yaml" }], labels: [] };
    assert.deepEqual(
      kustomizationProblems(newer, (p) => p === "../gateway", () => "$patch: delete\n"),
      [
        "patches is not supported by kubectl 1.20's kustomize",
        "labels is not supported by kubectl 1.20's kustomize",
        "resources lists the directory ../gateway: kubectl 1.20 needs it under bases",
      ],
    );
    assert.deepEqual(
      kustomizationProblems({ patchesStrategicMerge: ["d.yaml"] }, () => false, () => "$patch: delete\n"),
      ["d.yaml deletes with $patch, which kubectl 1.20 ignores"],
    );
  });

  await t.step("every object validates against the Kubernetes 1.36 OpenAPI schemas", () => {
    for (const [dir, objects] of all) assert.deepEqual(schemaProblems(objects), [], dir);
  });

  await t.step("no object has a field its schema does not know (strict, as kubectl apply)", async () => {
    const errors = await strictTypeErrors({ ...rendered, broken });
    for (const dir of TARGETS) assert.deepEqual(errors[dir] ?? [], [], dir);
    assert.ok(
      (errors.broken ?? []).some((e) => e.includes("'\"imagePullPolice\"' does not exist")),
      `the broken overlay's unknown field is found: ${JSON.stringify(errors.broken)}`,
    );
  });

  await t.step("policy: probes are real routes; the port is PORT; env vars are config.ts's", () => {
    assert.ok(routes.has("/ready") && routes.has("/health"), [...routes].join(", "));
    for (const [dir, objects] of all) {
      assert.deepEqual(probeProblems(objects, routes), [], dir);
      assert.deepEqual(portProblems(objects), [], dir);
      assert.deepEqual(envProblems(objects), [], dir);
    }
  });

  await t.step("policy: non-root as the image's uid, grace period, resources, wiring, network", () => {
    const uid = dockerfileUser(dockerfile);
    assert.equal(uid, 1993, "the Dockerfile's USER is the numeric uid of the image's deno user");
    for (const [dir, objects] of all) {
      assert.deepEqual(securityProblems(objects, uid), [], dir);
      assert.deepEqual(gracePeriodProblems(objects), [], dir);
      assert.deepEqual(resourceProblems(objects), [], dir);
      assert.deepEqual(wiringProblems(objects, adapterMetrics), [], dir);
      assert.deepEqual(networkProblems(objects), [], dir);
    }
  });

  await t.step(
    "the autoscaling metric is one the app exports, under one signal for both autoscalers",
    async () => {
      const config = testConfig();
      const app = createApp({
        config,
        state: new ModelState(),
        telemetry: createTelemetry(config, "0.0.0-test"),
      });
      await (await app.request("/health")).body?.cancel();
      const exposition = await (await app.request("/metrics")).text();
      for (const rule of adapter.rules) {
        const metric = /^(\w+)\{/.exec(rule.seriesQuery)![1];
        assert.match(
          exposition,
          new RegExp(`^# TYPE ${metric.replace(/_(sum|count|bucket)$/, "")} `, "m"),
          metric,
        );
      }
      const inFlight = adapter.rules.find((r: Any) => r.name.as === "inference_requests_in_flight");
      const keda = rendered["overlays/keda"].find((o) => o.kind === "ScaledObject")!;
      const hpa = rendered.base.find((o) => o.kind === "HorizontalPodAutoscaler")!;
      const routeMatcher = (q: string) => /route=~"([^"]+)"/.exec(q)![1];
      const trigger = keda.spec.triggers[0];
      assert.equal(routeMatcher(trigger.metadata.query), routeMatcher(inFlight.metricsQuery));
      assert.match(trigger.metadata.query, /rate\(http_server_request_duration_seconds_sum\{[^}]*\}\[1m\]\)/);
      assert.equal(
        trigger.metadata.threshold,
        hpa.spec.metrics[0].pods.target.averageValue,
        "the same target",
      );
      assert.deepEqual(keda.spec.advanced.horizontalPodAutoscalerConfig.behavior, hpa.spec.behavior);
      assert.equal(keda.spec.minReplicaCount, hpa.spec.minReplicas);
      assert.equal(keda.spec.maxReplicaCount, hpa.spec.maxReplicas);
    },
  );

  await t.step("the deliberately broken overlay fails every check", () => {
    const expect = (problems: string[], pattern: RegExp, check: string) =>
      assert.ok(
        problems.some((p) => pattern.test(p)),
        `${check} should report ${pattern}: ${JSON.stringify(problems)}`,
      );
    expect(schemaProblems(broken), /maxReplicas must be integer/, "schema");
    expect(probeProblems(broken, routes), /readinessProbe path \/readyz is not a GET route/, "probes");
    expect(
      probeProblems(broken, routes),
      /livenessProbe port metrics is not a named container port/,
      "probes",
    );
    expect(portProblems(broken), /container port 8000 is not PORT=9000/, "port");
    expect(envProblems(broken), /ConfigMap sets MODEL_PRECISON, which config.ts does not read/, "env");
    expect(securityProblems(broken, dockerfileUser(dockerfile)), /runs as uid 0/, "non-root");
    expect(securityProblems(broken, dockerfileUser(dockerfile)), /runAsNonRoot/, "non-root");
    expect(
      securityProblems(broken, dockerfileUser(dockerfile)),
      /root filesystem is writable/,
      "read-only root",
    );
    expect(securityProblems(broken, dockerfileUser(dockerfile)), /adds capabilities/, "capabilities");
    expect(securityProblems(broken, dockerfileUser(dockerfile)), /service account token/, "token");
    expect(securityProblems(broken, 0), /USER is root/, "image user");
    expect(securityProblems(broken, undefined), /not a numeric uid/, "image user");
    expect(gracePeriodProblems(broken), /terminationGracePeriodSeconds 10 does not cover/, "grace period");
    expect(resourceProblems(broken), /cpu request 2 is not its limit 4/, "resources");
    expect(resourceProblems(broken), /CPU limit 4 is not INTRA_OP_THREADS/, "resources");
    expect(
      wiringProblems(broken, adapterMetrics),
      /requests_per_second, which prometheus-adapter does not serve/,
      "hpa",
    );
    expect(wiringProblems(broken, adapterMetrics), /sets replicas/, "replicas");
    expect(wiringProblems(broken, adapterMetrics), /may scale to 1 pod/, "min replicas");
    expect(networkProblems(broken), /lets ingress reach every port/, "network");
    assert.equal(dockerfileUser("FROM x\nUSER deno\n"), undefined, "a user name is not verifiable");
  });
});
