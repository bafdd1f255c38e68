/**
 * `deno task k8s:generate`: writes the files that are derived from another
 * source of truth, so they cannot drift from it:
 *
 * - the runbook links of the rule files, promtool tests and dashboards, from
 *   `deploy/runbooks.yml` (deploy/runbook_links.ts);
 * - `overlays/prometheus-operator/prometheusrule.yaml`, the PrometheusRule,
 *   from the rule files in `deploy/prometheus/rules/` (the ones promtool tests);
 * - `overlays/prometheus-operator/alertmanagerconfig.yaml`, the
 *   AlertmanagerConfig, from `deploy/alertmanager/alertmanager.yml` (the one
 *   amtool checks and the alerting test runs), webhook URLs from a Secret;
 * - `gateway/start-command.yaml`, the server container's command: `deno task
 *   start`'s own command and permission set, with the network grant narrowed to
 *   the listeners and the collector that the ConfigMap's
 *   OTEL_EXPORTER_OTLP_ENDPOINT names.
 *
 * `--check` writes nothing and exits 1 when a file is out of date.
 */
import { parse, stringify } from "yaml";
import { linkedFiles, readLinks, withRunbookUrls } from "../runbook_links.ts";

const ROOT = new URL("../../", import.meta.url);
export const RULES_DIR = "deploy/prometheus/rules/";
export const PROMETHEUS_RULE = "deploy/kubernetes/overlays/prometheus-operator/prometheusrule.yaml";
export const ALERTMANAGER = "deploy/alertmanager/alertmanager.yml";
export const ALERTMANAGER_CONFIG = "deploy/kubernetes/overlays/prometheus-operator/alertmanagerconfig.yaml";
/** The Secret the cluster's operator creates, one key per receiver, each holding that receiver's webhook URL. */
export const WEBHOOK_SECRET = "inference-gateway-alert-webhooks";
export const START_COMMAND = "deploy/kubernetes/gateway/start-command.yaml";
export const CONFIG_MAP = "deploy/kubernetes/gateway/configmap.yaml";

/** The addresses the server listens on and relays through, kept from the start task's --allow-net. */
const LISTENERS = ["0.0.0.0", "127.0.0.1", "localhost"];

const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));

// deno-lint-ignore no-explicit-any
type Any = any;

/** Every rule group of `deploy/prometheus/rules/*.yml`, files in name order, with current runbook links. */
export async function ruleGroups(): Promise<Any[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(new URL(RULES_DIR, ROOT))) {
    if (entry.isFile && /\.ya?ml$/.test(entry.name)) files.push(entry.name);
  }
  const links = await readLinks(read);
  const groups: Any[] = [];
  for (const file of files.sort()) {
    groups.push(...(parse(withRunbookUrls(await read(RULES_DIR + file), links)) as Any).groups);
  }
  return groups;
}

/** `severity="page"` as the prometheus-operator's matcher object. */
export function matcherObject(matcher: string): { name: string; value: string; matchType: string } {
  const m = /^\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$/.exec(matcher);
  if (!m) throw new Error(`Not a matcher of the form name="value": ${matcher}`);
  return { name: m[1], value: m[3].replace(/\\(.)/g, "$1"), matchType: m[2] };
}

/** Alertmanager's routing tree in the AlertmanagerConfig's camelCase, recursively. */
function routeObject(route: Any): Any {
  return {
    receiver: route.receiver,
    ...(route.group_by && { groupBy: route.group_by }),
    ...(route.group_wait && { groupWait: route.group_wait }),
    ...(route.group_interval && { groupInterval: route.group_interval }),
    ...(route.repeat_interval && { repeatInterval: route.repeat_interval }),
    ...(route.matchers && { matchers: route.matchers.map(matcherObject) }),
    ...(route.continue !== undefined && { continue: route.continue }),
    ...(route.routes && { routes: route.routes.map(routeObject) }),
  };
}

/**
 * The shipped routing file as the prometheus-operator's AlertmanagerConfig. The routes, grouping,
 * timings and inhibitions are the same; each webhook's URL comes from WEBHOOK_SECRET's key named
 * after its receiver (a URL with a token is a secret). The operator adds a namespace matcher to
 * the routes and inhibitions, so they only see this namespace's alerts.
 */
export async function alertmanagerConfigYaml(): Promise<string> {
  const am: Any = parse(await read(ALERTMANAGER));
  const config = {
    apiVersion: "monitoring.coreos.com/v1alpha1",
    kind: "AlertmanagerConfig",
    metadata: {
      name: "inference-gateway",
      labels: {
        "app.kubernetes.io/name": "inference-gateway",
        "app.kubernetes.io/part-of": "inference-gateway",
      },
    },
    spec: {
      route: routeObject(am.route),
      inhibitRules: (am.inhibit_rules ?? []).map((r: Any) => ({
        sourceMatch: r.source_matchers.map(matcherObject),
        targetMatch: r.target_matchers.map(matcherObject),
        equal: r.equal,
      })),
      receivers: am.receivers.map((r: Any) => {
        if (Object.keys(r).some((k) => k !== "name" && k !== "webhook_configs")) {
          throw new Error(`${ALERTMANAGER}: receiver ${r.name} has more than webhook_configs`);
        }
        return {
          name: r.name,
          webhookConfigs: (r.webhook_configs ?? []).map((w: Any) => ({
            urlSecret: { name: WEBHOOK_SECRET, key: r.name },
            sendResolved: w.send_resolved ?? true,
          })),
        };
      }),
    },
  };
  return "# Generated by `deno task k8s:generate` from deploy/alertmanager/alertmanager.yml: edit that, not this.\n" +
    `# The webhook URLs come from the Secret ${WEBHOOK_SECRET} (one key per receiver), which you create.\n` +
    stringify(config, { lineWidth: 0 });
}

export async function prometheusRuleYaml(): Promise<string> {
  const rule = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: {
      name: "inference-gateway",
      labels: {
        "app.kubernetes.io/name": "inference-gateway",
        "app.kubernetes.io/part-of": "inference-gateway",
      },
    },
    spec: { groups: await ruleGroups() },
  };
  return "# Generated by `deno task k8s:generate` from deploy/prometheus/rules/: edit those, not this.\n" +
    stringify(rule, { lineWidth: 0 });
}

/** The start task's command as words (it has no quoting). */
export async function startTaskWords(): Promise<string[]> {
  const tasks = JSON.parse(await read("deno.json")).tasks;
  const command = typeof tasks.start === "string" ? tasks.start : tasks.start.command;
  return String(command).trim().split(/\s+/);
}

/** The hosts the start task may reach: its --allow-net flag, or the net list of its -P permission set. */
export async function startTaskNet(): Promise<string[]> {
  const words = await startTaskWords();
  const flag = words.find((w) => w.startsWith("--allow-net="));
  if (flag) return flag.slice("--allow-net=".length).split(",");
  const set = words.find((w) => w.startsWith("-P=") || w.startsWith("--permission-set="))?.split("=")[1];
  if (!set) throw new Error(`The start task names no network grant: ${words.join(" ")}`);
  const permissions = JSON.parse(await read("deno.json")).permissions ?? {};
  const net = permissions[set]?.net;
  if (!Array.isArray(net)) throw new Error(`deno.json's permission set ${set} has no net list`);
  return net;
}

/** The collector's host:port from the ConfigMap's OTEL_EXPORTER_OTLP_ENDPOINT, if one is set. */
export async function collectorHost(): Promise<string | undefined> {
  const data = (parse(await read(CONFIG_MAP)) as Any).data ?? {};
  const endpoint = data.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? data.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint) return undefined;
  const url = new URL(endpoint);
  return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
}

/**
 * The server's command in the pod: the start task's words with the network grant narrowed to
 * the listeners and the collector. An --allow-net flag after -P replaces the set's net list.
 */
export async function podCommand(): Promise<string[]> {
  const words = await startTaskWords();
  if (words[0] !== "deno" || words[1] !== "run") {
    throw new Error(`The start task must be a "deno run" command; it is: ${words.join(" ")}`);
  }
  const collector = await collectorHost();
  const hosts = (await startTaskNet()).filter((h) => LISTENERS.includes(h));
  if (collector) hosts.push(collector);
  const net = `--allow-net=${hosts.join(",")}`;
  if (words.some((w) => w.startsWith("--allow-net="))) {
    return words.map((w) => (w.startsWith("--allow-net=") ? net : w));
  }
  const at = words.findIndex((w) => w.startsWith("-P=") || w.startsWith("--permission-set="));
  return [...words.slice(0, at + 1), net, ...words.slice(at + 1)];
}

export async function startCommandYaml(): Promise<string> {
  const patch = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "inference-gateway" },
    spec: { template: { spec: { containers: [{ name: "gateway", command: await podCommand() }] } } },
  };
  return [
    "# Generated by `deno task k8s:generate`: edit deno.json's start task or configmap.yaml, not this.",
    "# The command of `deno task start`, with the network narrowed to the listeners and the collector",
    "# that OTEL_EXPORTER_OTLP_ENDPOINT names (the model hosts are the init container's business).",
    "",
  ].join("\n") + stringify(patch, { lineWidth: 0 });
}

/** Every generated file's path and the content it should have. */
export async function generated(): Promise<Array<{ path: string; text: string }>> {
  return [
    ...await linkedFiles(read, ROOT),
    { path: PROMETHEUS_RULE, text: await prometheusRuleYaml() },
    { path: ALERTMANAGER_CONFIG, text: await alertmanagerConfigYaml() },
    { path: START_COMMAND, text: await startCommandYaml() },
  ];
}

if (import.meta.main) {
  const check = Deno.args.includes("--check");
  let stale = 0;
  for (const { path, text } of await generated()) {
    const current = await read(path).catch(() => "");
    if (current === text) continue;
    if (check) {
      console.error(`${path} is out of date: run deno task k8s:generate`);
      stale++;
    } else {
      await Deno.writeTextFile(new URL(path, ROOT), text);
      console.error(`wrote ${path}`);
    }
  }
  Deno.exit(stale > 0 ? 1 : 0);
}
