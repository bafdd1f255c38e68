import assert from "node:assert/strict";
import { parse } from "yaml";
import {
  collectorHost,
  generated,
  podCommand,
  PROMETHEUS_RULE,
  ruleGroups,
  START_COMMAND,
  startTaskWords,
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

  await t.step("the pod's command is the start task's, with only --allow-net narrowed", async () => {
    const task = await startTaskWords();
    const patch: Any = parse(await read(START_COMMAND));
    const command: string[] = patch.spec.template.spec.containers[0].command;
    assert.deepEqual(command, await podCommand());
    assert.equal(command.length, task.length);
    const net = (words: string[]) => words.find((w) => w.startsWith("--allow-net="))!;
    assert.deepEqual(
      command.filter((w) => !w.startsWith("--allow-net=")),
      task.filter((w) => !w.startsWith("--allow-net=")),
    );
    const hosts = net(command).slice("--allow-net=".length).split(",");
    assert.equal(await collectorHost(), "otel-collector.observability.svc:4318");
    assert.deepEqual(hosts, ["0.0.0.0", "127.0.0.1", "localhost", "otel-collector.observability.svc:4318"]);
    assert.ok(!hosts.includes("github.com"), "the server does not download: the init container did");
  });
});
