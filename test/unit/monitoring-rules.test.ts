import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";
import { beforeAll, describe, expect, test } from "vitest";
import { ensureTool } from "../../src/controlplane/assets.ts";
import { ruleGroups, type AlertRule, type RuleGroup } from "../../src/manifests/monitoring.ts";

// The operator's Prometheus rules (src/manifests/monitoring.ts, generated into config/monitoring) checked and
// unit-tested by promtool, built from the Prometheus module in hack/monitoring/prometheus.
const ROOT = join(import.meta.dirname, "../..");
const RULES = "config/monitoring/nextgen-operator.rules.yaml";
const PROMETHEUS_RULE = "config/monitoring/prometheus-rule.yaml";
const RULE_TESTS = "test/monitoring/nextgen-operator.rules.test.yaml";

let promtool: string;
beforeAll(async () => {
  promtool = await ensureTool("promtool", (line) => process.stderr.write(`[tools] ${line}\n`));
}, 30 * 60_000); // a fresh machine builds promtool first (hack/monitoring/prometheus), minutes

function runPromtool(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync(promtool, args, { cwd: ROOT, encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const readYaml = (path: string): unknown => load(readFileSync(join(ROOT, path), "utf8"));
const alerts = (): AlertRule[] => ruleGroups().flatMap((g) => g.rules.filter((r): r is AlertRule => "alert" in r));

/** The parts of promtool's unit-test file looked at here. */
interface RuleTestFile {
  tests: { name?: string; alert_rule_test?: { eval_time: string; alertname: string; exp_alerts?: unknown[] }[] }[];
}

/**
 * The anchor GitHub gives a Markdown heading: its text lowercased, without punctuation (hyphens, underscores and
 * spaces stay), spaces turned into hyphens; a repeated anchor gets -1, -2, … The heading's level plays no part.
 */
function githubAnchors(markdown: string): string[] {
  const seen = new Map<string, number>();
  const anchors: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split("\n")) {
    const f = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (f) {
      if (fence === undefined) fence = f[1]?.[0];
      else if (f[1]?.[0] === fence) fence = undefined;
      continue;
    }
    if (fence !== undefined) continue;
    const h = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line);
    if (!h) continue;
    const text = (h[1] ?? "")
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // links and images: their text
      .replace(/<[^>]+>/g, "") // inline HTML
      .replace(/[`*]/g, ""); // code spans, emphasis
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
      .replace(/ /g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.push(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

describe("Prometheus rules (promtool)", () => {
  test("promtool check rules accepts the rule file and finds every rule", () => {
    const expected = ruleGroups().reduce((n, g) => n + g.rules.length, 0);
    const r = runPromtool("check", "rules", RULES);
    expect(r.status, r.output).toBe(0);
    expect(r.output).toContain(`SUCCESS: ${expected} rules found`);
  });

  test("promtool test rules passes the rules' unit tests", () => {
    const r = runPromtool("test", "rules", RULE_TESTS);
    if (r.status !== 0) console.error(r.output);
    expect(r.status, r.output).toBe(0);
    expect(r.output).toMatch(/SUCCESS/);
  });

  test("every alert has a case where it fires and one where it does not", () => {
    const file = readYaml(RULE_TESTS) as RuleTestFile;
    const cases = file.tests.flatMap((t) => t.alert_rule_test ?? []);
    const missing = alerts().flatMap((a) => {
      const mine = cases.filter((c) => c.alertname === a.alert);
      return [
        ...(mine.some((c) => (c.exp_alerts ?? []).length > 0) ? [] : [`${a.alert}: no case where it fires`]),
        ...(mine.some((c) => (c.exp_alerts ?? []).length === 0) ? [] : [`${a.alert}: no case where it does not`]),
      ];
    });
    expect(missing).toEqual([]);
    // And no case tests an alert that does not exist (promtool would just expect it not to fire).
    const names = new Set(alerts().map((a) => a.alert));
    expect(cases.map((c) => c.alertname).filter((n) => !names.has(n))).toEqual([]);
  });

  test("every alert's runbook_url leads to a section of the README", () => {
    const anchors = new Set(githubAnchors(readFileSync(join(ROOT, "README.md"), "utf8")));
    const missing = alerts()
      .map((a) => ({ alert: a.alert, fragment: new URL(a.annotations.runbook_url).hash.slice(1) }))
      .filter(({ alert, fragment }) => fragment !== `runbook-${alert.toLowerCase()}` || !anchors.has(fragment))
      .map(({ alert, fragment }) => `${alert}: no README heading with the anchor #${fragment}`);
    expect(missing).toEqual([]);
  });

  test("the generated files are in sync: the PrometheusRule holds the plain rule file's groups", () => {
    const plain = readYaml(RULES) as { groups: RuleGroup[] };
    const resource = readYaml(PROMETHEUS_RULE) as { kind: string; spec: { groups: RuleGroup[] } };
    expect(resource.kind).toBe("PrometheusRule");
    expect(resource.spec.groups).toEqual(plain.groups);
    // And both are what src/manifests/monitoring.ts generates now (`npm run manifests`).
    expect(plain.groups).toEqual(JSON.parse(JSON.stringify(ruleGroups())));
  });
});

describe("GitHub heading anchors", () => {
  test("punctuation goes, hyphens stay, the level does not matter, repeats are numbered", () => {
    const md = [
      "#### Runbook: NextgenOperatorDown",
      "### Runbook: NextgenOperatorDown",
      "## `promtool` & the rules (v3.x)",
      "```sh",
      "# not a heading",
      "```",
      "# Multi-window, multi-burn-rate",
    ].join("\n");
    expect(githubAnchors(md)).toEqual([
      "runbook-nextgenoperatordown",
      "runbook-nextgenoperatordown-1",
      "promtool--the-rules-v3x",
      "multi-window-multi-burn-rate",
    ]);
  });
});
