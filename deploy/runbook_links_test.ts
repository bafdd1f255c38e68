import assert from "node:assert/strict";
import { parse } from "yaml";
import {
  type Links,
  panelUrl,
  readLinks,
  RULES_DIR,
  runbookUrl,
  withRunbookLinks,
  withRunbookUrls,
  withStartHere,
} from "./runbook_links.ts";

const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));
// deno-lint-ignore no-explicit-any
type Any = any;

const LINKS: Links = {
  runbookBaseUrl: "https://wiki.example/runbooks",
  grafanaUrl: "https://grafana.example",
  prometheusUrl: "https://prometheus.example",
  panels: { A: { dashboard: "d1", panel: 2 }, B: { dashboard: "d1", panel: 3 } },
};

Deno.test("runbook links", async (t) => {
  await t.step("each runbook_url is its nearest alert's, quoting and comments kept", () => {
    const rules = [
      "# a comment",
      "      - alert: A",
      "        annotations:",
      '          runbook_url: "docs/runbooks/A.md"',
      "      - alert: B",
      "        annotations:",
      "          runbook_url: old",
    ].join("\n");
    assert.equal(
      withRunbookUrls(rules, LINKS),
      [
        "# a comment",
        "      - alert: A",
        "        annotations:",
        '          runbook_url: "https://wiki.example/runbooks/A.md"',
        "      - alert: B",
        "        annotations:",
        "          runbook_url: https://wiki.example/runbooks/B.md",
      ].join("\n"),
    );
    // promtool tests name the alert `alertname:`.
    const test = "      - eval_time: 5m\n        alertname: B\n              runbook_url: x";
    assert.match(withRunbookUrls(test, LINKS), /runbook_url: https:\/\/wiki\.example\/runbooks\/B\.md$/);
    assert.throws(() => withRunbookUrls("runbook_url: x", LINKS), /before any alert/);
  });

  await t.step("a base that is not an absolute http(s) URL stops the generator", async () => {
    for (const bad of ["docs/runbooks", "", "ftp://x/y", "https://"]) {
      const yaml = `runbook_base_url: "${bad}"\ngrafana_url: http://g\nprometheus_url: http://p\n`;
      await assert.rejects(
        readLinks(() => Promise.resolve(yaml)),
        /runbook_base_url must be an http\(s\) URL/,
      );
    }
    const ok = "runbook_base_url: https://x/y/\ngrafana_url: http://g/\nprometheus_url: http://p\n";
    const links = await readLinks(() => Promise.resolve(ok));
    assert.equal(runbookUrl(links, "A"), "https://x/y/A.md", "one slash between base and file");
    assert.equal(panelUrl(links, { dashboard: "d", panel: 1 }), "http://g/d/d?viewPanel=1");
  });

  await t.step("a panel links to the runbooks that start from it; other links stay", () => {
    const dashboard = {
      uid: "d1",
      panels: [
        { id: 2, links: [{ title: "Docs", url: "https://docs" }, { title: "Runbook: Gone", url: "x" }] },
        { id: 3 },
        { id: 4, links: [{ title: "Runbook: Moved", url: "x" }] },
      ],
    };
    const out = JSON.parse(withRunbookLinks(JSON.stringify(dashboard), LINKS));
    assert.deepEqual(out.panels[0].links, [
      { title: "Docs", url: "https://docs" },
      { title: "Runbook: A", url: "https://wiki.example/runbooks/A.md", targetBlank: true },
    ]);
    assert.deepEqual(out.panels[1].links.map((l: Any) => l.title), ["Runbook: B"]);
    assert.equal(out.panels[2].links, undefined, "a stale runbook link is removed");
    const again = withRunbookLinks(JSON.stringify(out, null, 2) + "\n", LINKS);
    assert.equal(again, JSON.stringify(out, null, 2) + "\n", "idempotent");
  });

  await t.step("a runbook's start-here section is inserted once, then replaced", () => {
    const dashboards = [{
      uid: "d1",
      title: "Dash",
      panels: [{ id: 2, title: "Panel two", targets: [{ expr: 'rate(x{a="b"}[5m])' }, { expr: "y" }] }],
    }];
    const runbook = "# A\n\nSeverity: **page**.\n\n## What it means\n\nText.\n";
    const once = withStartHere(runbook, "A", LINKS, dashboards);
    assert.ok(once.startsWith("# A\n\nSeverity: **page**.\n\n<!-- start-here"), once);
    assert.ok(once.endsWith("<!-- /start-here -->\n\n## What it means\n\nText.\n"), once);
    assert.match(once, /\[panel\]: https:\/\/grafana\.example\/d\/d1\?viewPanel=2$/m);
    assert.match(once, /```promql\nrate\(x\{a="b"\}\[5m\]\)\ny\n```/);
    const query = /^\[query\]: (.*)$/m.exec(once)![1];
    assert.equal(new URL(query).searchParams.get("g0.expr"), 'rate(x{a="b"}[5m])');
    assert.equal(withStartHere(once, "A", LINKS, dashboards), once, "idempotent");
    assert.throws(() => withStartHere(runbook, "B", LINKS, dashboards), /panel d1\/3 does not exist/);
    assert.throws(() => withStartHere(runbook, "C", LINKS, dashboards), /no panel for C/);
  });

  await t.step("the shipped files: every alert has a panel, a runbook and a real link", async () => {
    const links = await readLinks(read);
    const rules: Any = parse(await read(`${RULES_DIR}inference-gateway.rules.yml`));
    const alerts = rules.groups.flatMap((g: Any) => g.rules).filter((r: Any) => r.alert);
    assert.deepEqual(alerts.map((a: Any) => a.alert).sort(), Object.keys(links.panels).sort());
    for (const a of alerts) {
      assert.equal(a.annotations.runbook_url, runbookUrl(links, a.alert));
      assert.match(a.annotations.runbook_url, /^https:\/\//);
      const runbook = await read(`docs/runbooks/${a.alert}.md`);
      assert.ok(runbook.includes(panelUrl(links, links.panels[a.alert])), a.alert);
    }
  });
});
