import assert from "node:assert/strict";
import { parse } from "yaml";
import {
  ALERTMANAGER,
  ALERTMANAGER_CONFIG,
  collectorHost,
  generated,
  matcherObject,
  podCommand,
  PROMETHEUS_RULE,
  ruleGroups,
  START_COMMAND,
  startTaskNet,
  startTaskWords,
  WEBHOOK_SECRET,
} from "./generate.ts";

const ROOT = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));
// deno-lint-ignore no-explicit-any
type Any = any;

Deno.test("generated Kubernetes files", async (t) => {
  await t.step("are up to date (run `deno task k8s:generate` after editing their sources)", async () => {
    for (const { path, text } of await generated()) assert.equal(await read(path), text, path);
  });

  await t.step("the PrometheusRule carries exactly the rules of deploy/prometheus/rules/", async () => {
    const rule: Any = parse(await read(PROMETHEUS_RULE));
    const groups = await ruleGroups();
    assert.deepEqual(rule.spec.groups, groups);
    // Not vacuous: the rule files hold the SLO recording rules and the alerts.
    const rules = groups.flatMap((g: Any) => g.rules);
    assert.ok(rules.filter((r: Any) => r.alert).length >= 9);
    assert.ok(rules.filter((r: Any) => r.record).length >= 20);
    assert.equal(rule.kind, "PrometheusRule");
  });

  await t.step("the pod's command is the start task's, with only the network narrowed", async () => {
    const task = await startTaskWords();
    const patch: Any = parse(await read(START_COMMAND));
    const command: string[] = patch.spec.template.spec.containers[0].command;
    assert.deepEqual(command, await podCommand());
    const net = command.filter((w) => w.startsWith("--allow-net="));
    assert.equal(net.length, 1, "one network grant");
    assert.deepEqual(
      command.filter((w) => !w.startsWith("--allow-net=")),
      task.filter((w) => !w.startsWith("--allow-net=")),
      "every other word as the start task has it",
    );
    const hosts = net[0].slice("--allow-net=".length).split(",");
    assert.equal(await collectorHost(), "otel-collector.observability.svc:4318");
    assert.deepEqual(hosts, ["0.0.0.0", "127.0.0.1", "localhost", "otel-collector.observability.svc:4318"]);
    const granted = await startTaskNet();
    for (const h of hosts.slice(0, 3)) assert.ok(granted.includes(h), `the start task grants ${h} too`);
    assert.ok(
      granted.includes("github.com") && !hosts.includes("github.com"),
      "the server does not download",
    );
  });

  await t.step("the AlertmanagerConfig routes, groups and inhibits exactly as alertmanager.yml", async () => {
    const am: Any = parse(await read(ALERTMANAGER));
    const config: Any = parse(await read(ALERTMANAGER_CONFIG));
    assert.equal(config.kind, "AlertmanagerConfig");
    const { route, inhibitRules, receivers } = config.spec;
    assert.equal(route.receiver, am.route.receiver);
    assert.deepEqual(route.groupBy, ["alertname", "instance"]);
    assert.deepEqual(
      route.routes.map((r: Any) => [r.receiver, r.matchers, r.repeatInterval]),
      am.route.routes.map((r: Any) => [r.receiver, r.matchers.map(matcherObject), r.repeat_interval]),
    );
    assert.equal(inhibitRules.length, am.inhibit_rules.length);
    assert.deepEqual(inhibitRules[0], {
      sourceMatch: [{
        name: "alertname",
        value: "InferenceModelNotReady|InferenceModelUnavailable",
        matchType: "=~",
      }],
      targetMatch: [{ name: "slo", value: "availability|latency", matchType: "=~" }],
      equal: ["instance"],
    });
    // Webhook URLs are secrets: none is written into the manifest.
    assert.deepEqual(receivers.map((r: Any) => r.name), am.receivers.map((r: Any) => r.name));
    for (const r of receivers) {
      assert.deepEqual(r.webhookConfigs, [{
        urlSecret: { name: WEBHOOK_SECRET, key: r.name },
        sendResolved: true,
      }]);
    }
    assert.ok(!/https?:\/\//.test(JSON.stringify(config.spec)), "no URL in the spec");
  });

  await t.step("matchers: every operator, escaped quotes, and anything else refused", () => {
    assert.deepEqual(matcherObject('severity="page"'), { name: "severity", value: "page", matchType: "=" });
    assert.deepEqual(matcherObject('a!="b"'), { name: "a", value: "b", matchType: "!=" });
    assert.deepEqual(matcherObject('slo=~"x|y"'), { name: "slo", value: "x|y", matchType: "=~" });
    assert.deepEqual(matcherObject(' a !~ "" '), { name: "a", value: "", matchType: "!~" });
    assert.deepEqual(matcherObject('a="say \\"hi\\""'), { name: "a", value: 'say "hi"', matchType: "=" });
    for (const bad of ["severity=page", 'a=="b"', '="b"', 'a="b', '1a="b"', 'a="b" c']) {
      assert.throws(() => matcherObject(bad), /Not a matcher/, bad);
    }
  });
});
