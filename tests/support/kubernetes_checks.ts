/**
 * Offline checks of the rendered Kubernetes manifests (deploy/kubernetes/):
 * schema validation against pinned Kubernetes 1.36 OpenAPI schemas
 * (npm:kubernetes-models 5.1.0, and its KEDA and Prometheus Operator CRD
 * packages), and the policies the gateway needs. Each check returns the
 * problems it found, so a test can show that a broken manifest fails each one.
 */
import { parseAllDocuments } from "yaml";
import { ConfigMap, Namespace, Service, ServiceAccount } from "kubernetes-models/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import {
  PrometheusRule,
  ServiceMonitor,
} from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { AlertmanagerConfig } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1alpha1";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { type Config, CONFIG_VARIABLES, loadConfig } from "../../config.ts";
import { errorMessage } from "../../core/errors.ts";

// deno-lint-ignore no-explicit-any
export type Any = any;
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: Any;
}

/** The Kubernetes version whose OpenAPI schemas kubernetes-models 5.1.0 was generated from. */
export const SCHEMA_KUBERNETES_VERSION = "1.36.0";

/** Every kind the manifests may contain, with its pinned schema (a kind missing here is an error). */
const SCHEMAS: Record<string, { new (data: Any): { validate(): void } }> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
  "monitoring.coreos.com/v1alpha1/AlertmanagerConfig": AlertmanagerConfig,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
};

/** The module whose `I<Kind>` type describes a kind, for the strict (unknown field) check. */
export function typeModule(o: K8sObject): string {
  const group = o.apiVersion.split("/")[0];
  const root = group.endsWith("coreos.com")
    ? "@kubernetes-models/prometheus-operator"
    : group === "keda.sh"
    ? "@kubernetes-models/keda"
    : "kubernetes-models";
  return `${root}/${o.apiVersion}/${o.kind}`;
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text).map((d) => d.toJSON()).filter((o) => o !== null) as K8sObject[];
}

const id = (o: K8sObject) => `${o.kind}/${o.metadata?.name}`;
const named = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);

/** Validates every object against its pinned OpenAPI schema. */
export function schemaProblems(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const o of objects) {
    const Model = SCHEMAS[`${o.apiVersion}/${o.kind}`];
    if (!Model) {
      problems.push(`${id(o)}: no pinned schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (err) {
      problems.push(`${id(o)}: ${errorMessage(err)}`);
    }
  }
  return problems;
}

/** The Deployment's pod template, its server container and the ConfigMap its containers read. */
export function gateway(objects: K8sObject[]) {
  const deployment = named(objects, "Deployment")[0];
  const pod = deployment?.spec?.template?.spec ?? {};
  const containers: Any[] = pod.containers ?? [];
  const init: Any[] = pod.initContainers ?? [];
  const server = containers.find((c) => c.name === "gateway") ?? containers[0] ?? {};
  const mapNames = new Set(
    [...containers, ...init].flatMap((c) => (c.envFrom ?? []).map((e: Any) => e.configMapRef?.name)),
  );
  const data: Record<string, string> = Object.assign(
    {},
    ...named(objects, "ConfigMap").filter((m) => mapNames.has(m.metadata.name)).map((m) => m.data ?? {}),
  );
  return { deployment, pod, containers, init, server, data };
}

/** The configuration the server would parse from its ConfigMap and env (undefined if it would not start). */
export function effectiveConfig(objects: K8sObject[]): Config | undefined {
  const { server, data } = gateway(objects);
  const env: Record<string, string> = { ...data };
  for (const e of server.env ?? []) if (typeof e.value === "string") env[e.name] = e.value;
  try {
    return loadConfig((name) => env[name]);
  } catch {
    return undefined;
  }
}

/** Every variable a container gets (ConfigMap keys through envFrom, and env entries) is one config.ts reads. */
export function envProblems(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const known = new Set<string>(CONFIG_VARIABLES);
  const { containers, init, data } = gateway(objects);
  for (const name of Object.keys(data)) {
    if (!known.has(name)) problems.push(`ConfigMap sets ${name}, which config.ts does not read`);
  }
  for (const c of [...containers, ...init]) {
    for (const e of c.env ?? []) {
      if (!known.has(e.name)) {
        problems.push(`container ${c.name} sets ${e.name}, which config.ts does not read`);
      }
    }
  }
  const { server } = gateway(objects);
  const env: Record<string, string> = { ...data };
  for (const e of server.env ?? []) if (typeof e.value === "string") env[e.name] = e.value;
  try {
    loadConfig((name) => env[name]);
  } catch (err) {
    problems.push(`the server would not start: ${(err as Error).message}`);
  }
  return problems;
}

/** The server listens where Kubernetes sends traffic: the named port is PORT, and the Service targets it. */
export function portProblems(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const config = effectiveConfig(objects);
  const { server } = gateway(objects);
  const http = (server.ports ?? []).find((p: Any) => p.name === "http");
  if (!http) return ["the server container has no port named http"];
  if (!config) return ["the ConfigMap does not parse, so PORT is unknown"];
  if (http.containerPort !== config.PORT) {
    problems.push(`container port ${http.containerPort} is not PORT=${config.PORT}`);
  }
  for (const svc of named(objects, "Service")) {
    for (const p of svc.spec?.ports ?? []) {
      if (p.targetPort !== "http" && p.targetPort !== config.PORT) {
        problems.push(`${id(svc)} targets port ${p.targetPort}, not http (${config.PORT})`);
      }
    }
  }
  return problems;
}

/** Startup and readiness probe /ready, liveness probes /health, and each is a real GET route of the app. */
export function probeProblems(objects: K8sObject[], getRoutes: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const { server } = gateway(objects);
  const portNames = new Set((server.ports ?? []).map((p: Any) => p.name));
  const expected = { startupProbe: "/ready", readinessProbe: "/ready", livenessProbe: "/health" } as const;
  for (const [probe, path] of Object.entries(expected)) {
    const get = server[probe]?.httpGet;
    if (!get) {
      problems.push(`the server has no HTTP ${probe}`);
      continue;
    }
    if (get.path !== path) problems.push(`${probe} checks ${get.path}, not ${path}`);
    if (!getRoutes.has(get.path)) problems.push(`${probe} path ${get.path} is not a GET route of the app`);
    if (!portNames.has(get.port)) problems.push(`${probe} port ${get.port} is not a named container port`);
  }
  return problems;
}

/** The image's user: the last numeric USER of the Dockerfile (a name cannot be verified by runAsNonRoot). */
export function dockerfileUser(dockerfile: string): number | undefined {
  const users = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1].split(":")[0]);
  const last = users.at(-1);
  return last !== undefined && /^\d+$/.test(last) ? Number(last) : undefined;
}

/** Non-root as the image's uid, read-only root, no capabilities, seccomp, no service account token. */
export function securityProblems(objects: K8sObject[], imageUser: number | undefined): string[] {
  const problems: string[] = [];
  const { pod, containers, init } = gateway(objects);
  const podSc = pod.securityContext ?? {};
  if (imageUser === undefined) problems.push("the Dockerfile's USER is not a numeric uid");
  else if (imageUser === 0) problems.push("the Dockerfile's USER is root");
  if (podSc.runAsNonRoot !== true) problems.push("the pod does not set runAsNonRoot: true");
  if (podSc.runAsUser !== imageUser || podSc.runAsUser === 0) {
    problems.push(`the pod runs as uid ${podSc.runAsUser}, not the image's user ${imageUser}`);
  }
  if (podSc.seccompProfile?.type !== "RuntimeDefault") {
    problems.push("the pod's seccomp profile is not RuntimeDefault");
  }
  if (pod.automountServiceAccountToken !== false) problems.push("the pod mounts a service account token");
  for (const sa of named(objects, "ServiceAccount")) {
    if (sa.automountServiceAccountToken !== false) problems.push(`${id(sa)} mounts its token by default`);
  }
  for (const c of [...containers, ...init]) {
    const sc = c.securityContext ?? {};
    if (sc.runAsUser === 0 || sc.runAsNonRoot === false) problems.push(`container ${c.name} may run as root`);
    if (sc.readOnlyRootFilesystem !== true) problems.push(`container ${c.name}: root filesystem is writable`);
    if (sc.allowPrivilegeEscalation !== false) {
      problems.push(`container ${c.name} allows privilege escalation`);
    }
    const drop: string[] = sc.capabilities?.drop ?? [];
    if (!drop.includes("ALL")) problems.push(`container ${c.name} does not drop all capabilities`);
    if ((sc.capabilities?.add ?? []).length > 0) problems.push(`container ${c.name} adds capabilities`);
  }
  return problems;
}

/** Seconds a pod may need after SIGTERM: keep serving, drain, then close sessions and flush telemetry. */
export const EXIT_MARGIN_SECONDS = 5;

export function gracePeriodProblems(objects: K8sObject[]): string[] {
  const { pod, data } = gateway(objects);
  const config = effectiveConfig(objects) as Record<string, unknown> | undefined;
  if (!config) return ["the ConfigMap does not parse, so the drain time is unknown"];
  // SHUTDOWN_DELAY_MS is read from the config when config.ts has it, else from the ConfigMap.
  const delay = Number(config.SHUTDOWN_DELAY_MS ?? data.SHUTDOWN_DELAY_MS ?? 0);
  const timeout = Number(config.SHUTDOWN_TIMEOUT_MS);
  const needed = Math.ceil((delay + timeout) / 1000) + EXIT_MARGIN_SECONDS;
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  return grace >= needed ? [] : [
    `terminationGracePeriodSeconds ${grace} does not cover SHUTDOWN_DELAY_MS ${delay} + ` +
    `SHUTDOWN_TIMEOUT_MS ${timeout} + ${EXIT_MARGIN_SECONDS} s (${needed} s)`,
  ];
}

/** Kubernetes CPU and memory quantities in cores and bytes. */
export function quantity(q: string | number | undefined): number {
  if (q === undefined) return NaN;
  const m = /^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) return NaN;
  const scale: Record<string, number> = {
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
  };
  return Number(m[1]) * (m[2] ? scale[m[2]] : 1);
}

/** Guaranteed QoS (requests equal limits) and a CPU count matching the onnxruntime threads. */
export function resourceProblems(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const { containers, init, server } = gateway(objects);
  for (const c of [...containers, ...init]) {
    for (const r of ["cpu", "memory"]) {
      const req = quantity(c.resources?.requests?.[r]);
      const lim = quantity(c.resources?.limits?.[r]);
      if (!Number.isFinite(req) || !Number.isFinite(lim)) {
        problems.push(`container ${c.name} has no ${r} request and limit`);
      } else if (req !== lim) {
        problems.push(`container ${c.name}: ${r} request ${req} is not its limit ${lim}`);
      }
    }
  }
  const config = effectiveConfig(objects);
  if (config) {
    const cores = config.INTRA_OP_THREADS * Math.max(1, config.INFERENCE_WORKERS);
    const cpu = quantity(server.resources?.limits?.cpu);
    if (cpu !== cores) {
      problems.push(
        `the server's CPU limit ${cpu} is not INTRA_OP_THREADS x INFERENCE_WORKERS = ${cores}`,
      );
    }
  }
  return problems;
}

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  selector !== undefined && Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** Service, PodDisruptionBudget and NetworkPolicy select the pods; the autoscaler owns the replica count. */
export function wiringProblems(objects: K8sObject[], adapterMetrics: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const { deployment } = gateway(objects);
  if (!deployment) return ["no Deployment"];
  const labels = deployment.spec.template.metadata?.labels ?? {};
  if (!matches(deployment.spec.selector?.matchLabels, labels)) {
    problems.push("the Deployment's selector misses its pods");
  }
  for (const s of named(objects, "Service")) {
    if (!matches(s.spec?.selector, labels)) problems.push(`${id(s)} selects no gateway pod`);
  }
  for (const p of named(objects, "PodDisruptionBudget")) {
    if (!matches(p.spec?.selector?.matchLabels, labels)) problems.push(`${id(p)} selects no gateway pod`);
  }
  for (const n of named(objects, "NetworkPolicy")) {
    if (!matches(n.spec?.podSelector?.matchLabels, labels)) problems.push(`${id(n)} selects no gateway pod`);
  }
  const hpas = named(objects, "HorizontalPodAutoscaler");
  const scaled = named(objects, "ScaledObject");
  if (hpas.length + scaled.length !== 1) {
    problems.push(
      `expected one autoscaler, found ${hpas.length} HPA(s) and ${scaled.length} ScaledObject(s)`,
    );
  }
  for (const a of [...hpas, ...scaled]) {
    const ref = a.spec.scaleTargetRef;
    if (ref?.kind !== "Deployment" || ref?.name !== deployment.metadata.name) {
      problems.push(`${id(a)} does not scale the Deployment`);
    }
    const min = a.spec.minReplicas ?? a.spec.minReplicaCount ?? 1;
    if (min < 2 && named(objects, "PodDisruptionBudget").length > 0) {
      problems.push(`${id(a)} may scale to ${min} pod: a disruption would leave none`);
    }
  }
  for (const h of hpas) {
    for (const m of h.spec.metrics ?? []) {
      if (m.type === "Pods" && !adapterMetrics.has(m.pods.metric.name)) {
        problems.push(`${id(h)} scales on ${m.pods.metric.name}, which prometheus-adapter does not serve`);
      }
    }
  }
  if (deployment.spec.replicas !== undefined && hpas.length + scaled.length > 0) {
    problems.push("the Deployment sets replicas, which every apply would reset under the autoscaler");
  }
  return problems;
}

/** Ingress only to the HTTP port; egress only to DNS, the collector's port and HTTPS (the model source). */
export function networkProblems(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const config = effectiveConfig(objects);
  const policies = named(objects, "NetworkPolicy");
  if (policies.length === 0) return ["no NetworkPolicy"];
  const endpoint = config?.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? config?.OTEL_EXPORTER_OTLP_ENDPOINT;
  const collectorPort = endpoint ? Number(new URL(endpoint).port || 80) : undefined;
  const allowedEgress = new Set(["53/UDP", "53/TCP", "443/TCP"]);
  if (collectorPort !== undefined) allowedEgress.add(`${collectorPort}/TCP`);
  for (const n of policies) {
    const types: string[] = n.spec.policyTypes ?? [];
    if (!types.includes("Ingress") || !types.includes("Egress")) {
      problems.push(`${id(n)} does not restrict both ways`);
    }
    for (const rule of n.spec.ingress ?? []) {
      const ports = rule.ports ?? [];
      if (ports.length === 0) problems.push(`${id(n)} lets ingress reach every port`);
      for (const p of ports) {
        if (p.port !== "http" && p.port !== config?.PORT) {
          problems.push(`${id(n)} lets ingress reach port ${p.port}`);
        }
      }
    }
    const egressPorts = new Set<string>();
    for (const rule of n.spec.egress ?? []) {
      const ports = rule.ports ?? [];
      if (ports.length === 0) problems.push(`${id(n)} lets egress reach every port`);
      for (const p of ports) egressPorts.add(`${p.port}/${p.protocol ?? "TCP"}`);
    }
    for (const p of egressPorts) if (!allowedEgress.has(p)) problems.push(`${id(n)} lets egress reach ${p}`);
    if (collectorPort !== undefined && !egressPorts.has(`${collectorPort}/TCP`)) {
      problems.push(`${id(n)} blocks the collector's port ${collectorPort}`);
    }
    if (!egressPorts.has("53/UDP")) problems.push(`${id(n)} blocks DNS`);
  }
  return problems;
}

/**
 * Fields a kustomization may use: what kubectl 1.20's built-in kustomize (v2.0.3) supports and
 * current kustomize still accepts. `resources` must name files there (directories go in `bases`).
 */
export const KUSTOMIZE_V2_FIELDS = new Set([
  "apiVersion",
  "kind",
  "namespace",
  "namePrefix",
  "nameSuffix",
  "commonLabels",
  "commonAnnotations",
  "bases",
  "resources",
  "patchesStrategicMerge",
  "patchesJson6902",
  "configMapGenerator",
  "secretGenerator",
  "generatorOptions",
  "images",
]);

/**
 * Problems with a kustomization for kubectl 1.20. `isDirectory` tells whether a path it names is a
 * directory, `read` returns a patch file's text.
 */
export function kustomizationProblems(
  kustomization: Record<string, Any>,
  isDirectory: (path: string) => boolean,
  read: (path: string) => string,
): string[] {
  const problems: string[] = [];
  for (const field of Object.keys(kustomization)) {
    if (!KUSTOMIZE_V2_FIELDS.has(field)) {
      problems.push(`${field} is not supported by kubectl 1.20's kustomize`);
    }
  }
  for (const r of kustomization.resources ?? []) {
    if (isDirectory(r)) {
      problems.push(`resources lists the directory ${r}: kubectl 1.20 needs it under bases`);
    }
  }
  for (const p of kustomization.patchesStrategicMerge ?? []) {
    // kustomize v2.0.3 ignores the directive and keeps the object.
    if (/\$patch:\s*delete/.test(read(p))) {
      problems.push(`${p} deletes with $patch, which kubectl 1.20 ignores`);
    }
  }
  return problems;
}
