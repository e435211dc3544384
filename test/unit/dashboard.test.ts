import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { controllers } from "../../src/controllers/index.ts";
import { dashboard, dashboardQueries } from "../../src/manifests/dashboard.ts";
import { ruleGroups } from "../../src/manifests/monitoring.ts";
import { RuntimeMetrics } from "../../src/runtime/metrics.ts";

type Target = { expr: string; datasource?: unknown };
type Panel = { id: number; type: string; title?: string; datasource?: unknown; targets?: Target[]; panels?: Panel[] };

const model = dashboard() as { panels: Panel[] };
const panels = model.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const graphs = panels.filter((p) => p.type !== "row");
const targets = graphs.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** Every series name the operator can expose: its registry as the manager builds it, and the recording rules. */
async function exportedNames(): Promise<Set<string>> {
  // The manager's registry (RuntimeMetrics calls collectDefaultMetrics), where each controller registers its own,
  // as the manager has them do when it is built.
  const { registry } = new RuntimeMetrics();
  for (const c of controllers) c.metrics?.(registry);
  const names = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(m.name + s);
  }
  for (const g of ruleGroups()) for (const rule of g.rules) if ("record" in rule) names.add(rule.record);
  return names;
}

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "inf", "nan"]);

/** The series names a PromQL expression selects (good enough for the dashboard's own queries). */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings
    .replace(/\{[^}]*\}/g, "") // label matchers
    .replace(/\[[^\]]*\]/g, "") // ranges
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ""); // label lists
  return [...bare.matchAll(/(?<![\w:$.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()/g)]
    .map((m) => m[1]!)
    .filter((name) => !KEYWORDS.has(name.toLowerCase()));
}

describe("Grafana dashboard", () => {
  test("the committed JSON is generated from dashboard()", () => {
    const committed = readFileSync(new URL("../../config/monitoring/grafana-dashboard.json", import.meta.url), "utf8");
    expect(JSON.parse(committed)).toEqual(JSON.parse(JSON.stringify(dashboard())));
  });

  test("panels have unique ids, a title, a data source and targets on $job", () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of graphs) {
      expect(p.title, `panel ${p.id}`).toBeTruthy();
      expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: "${datasource}" });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.expr, p.title).toContain("$job");
    }
  });

  test("dashboardQueries() lists every target", () => {
    const listed = dashboardQueries();
    expect(listed.map((q) => q.expr).sort()).toEqual(targets.map((t) => t.expr).sort());
  });

  test("every query selects only series the operator exports", async () => {
    const names = await exportedNames();
    // The checker itself: a misspelt metric is caught.
    expect(metricNames('sum(rate(nextgen_bogus_total{job="$job"}[$__rate_interval])) / on (a) up')).toEqual([
      "nextgen_bogus_total",
      "up",
    ]);
    for (const { panel, expr } of targets) {
      const used = metricNames(expr);
      expect(used.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of used) expect(names.has(name), `${panel}: ${name} is not exported`).toBe(true);
    }
  });

  test("the namespace and per-kind variables query exported series", async () => {
    const names = await exportedNames();
    type Variable = { name: string; type: string; definition?: string };
    const list = (dashboard() as { templating: { list: Variable[] } }).templating.list;
    const queries = list.filter((v) => v.type === "query" && v.name !== "job").map((v) => v.definition!);
    expect(queries.length).toBe(5);
    for (const q of queries) {
      const selected = [...q.matchAll(/nextgen_\w+/g)].map((m) => m[0]);
      expect(selected.length, q).toBeGreaterThan(0);
      for (const name of selected) expect(names.has(name), `${q}: ${name}`).toBe(true);
    }
  });
});
