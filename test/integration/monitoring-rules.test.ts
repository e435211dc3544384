import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { ensureTool } from "../../src/controlplane/assets.ts";
import { KwokNodes } from "../../src/controlplane/kwok.ts";
import { Prometheus } from "../../src/controlplane/monitoring.ts";
import { CarbonBudgetKind } from "../../src/crds/carbonbudget.ts";
import { EdgeNodeKind } from "../../src/crds/edgenode.ts";
import { PQKeySetKind } from "../../src/crds/pqkeyset.ts";
import { QuantumBackendKind } from "../../src/crds/quantumbackend.ts";
import { type QuantumJob, QuantumJobKind } from "../../src/crds/quantumjob.ts";
import { dashboardQueries, expandVariables } from "../../src/manifests/dashboard.ts";
import { BELL } from "../fixtures/circuits.ts";
import { JOB, ruleGroups } from "../../src/manifests/monitoring.ts";
import { DeploymentKind, NodeKind, PodKind } from "../../src/runtime/kinds.ts";
import {
  type KubeObject,
  cluster,
  createNamespace,
  deleteAfterFile,
  kwokDeployment,
  startOperator,
  waitUntil,
} from "./harness.ts";

// The shipped rules and dashboard against a real Prometheus scraping a real operator that has one object of each
// kind to work on: every expression parses, every metric named is one the operator exports, and what the objects
// exercise returns data. Then the metrics' hygiene: help text, and object-naming labels only where documented.

const { admin, operatorKubeconfig } = cluster();
const FILE = { "test.nextgen.itechsmart.io/file": "monitoring-rules" };
const POOL = "test.nextgen.itechsmart.io/pool";
const suffix = Math.random().toString(36).slice(2, 7);
const nodes = new KwokNodes(admin, FILE);
const RULES = readFileSync(join(import.meta.dirname, "../../config/monitoring/nextgen-operator.rules.yaml"), "utf8");

let operator: Awaited<ReturnType<typeof startOperator>>;
let prometheus: Prometheus;
let ns: string;

/** Labels that name one object; allowed only on the per-object series the README lists, one per object. */
const OBJECT_LABELS = ["name", "budget", "policy", "site", "backend", "pod", "uid", "key"];
const PER_OBJECT: Record<string, string[]> = {
  nextgen_pqkeyset_next_rotation_timestamp_seconds: ["name"],
  nextgen_edgenode_probe_duration_seconds: ["site"],
  nextgen_remediation_actions_total: ["policy"],
  nextgen_carbon_consumed_grams: ["budget"],
  nextgen_carbon_projected_grams: ["budget"],
  nextgen_carbon_budget_grams: ["budget"],
  nextgen_carbon_energy_kwh: ["budget"],
  nextgen_carbon_intensity_stale: ["budget"],
  nextgen_quantumbackend_queued_jobs: ["backend"],
  nextgen_quantumbackend_running_jobs: ["backend"],
  nextgen_quantumbackend_capacity_jobs: ["backend"],
  nextgen_quantumbackend_ready: ["backend"],
  // These `name` labels are controllers' and the Lease's names: as many as the operator has controllers.
  workqueue_depth: ["name"],
  workqueue_adds_total: ["name"],
  workqueue_queue_duration_seconds: ["name"],
  workqueue_work_duration_seconds: ["name"],
  workqueue_retries_total: ["name"],
  leader_election_master_status: ["name"],
};

beforeAll(async () => {
  ns = await createNamespace(admin, "mon");
  operator = await startOperator(operatorKubeconfig);
  deleteAfterFile(admin, FILE, [
    CarbonBudgetKind,
    QuantumJobKind,
    QuantumBackendKind,
    PQKeySetKind,
    EdgeNodeKind,
    DeploymentKind,
    PodKind,
    NodeKind,
  ]);
  prometheus = await Prometheus.start(
    { scrapeJobs: { [JOB]: [operator.addresses.metrics as string] }, ruleFiles: [RULES] },
    (line) => process.stderr.write(`[monitoring] ${line}\n`),
  );

  // One object of each kind that has metrics of its own to show.
  const site = `mon-site-${suffix}`;
  await nodes.register(`mon-${suffix}`, { labels: { [POOL]: "monitoring", "test.nextgen.itechsmart.io/site": site } });
  const create = (kind: Parameters<typeof admin.create>[0], obj: Record<string, unknown>) =>
    admin.create(kind, { apiVersion: "nextgen.itechsmart.io/v1alpha1", ...obj } as KubeObject);
  await create(EdgeNodeKind, {
    kind: "EdgeNode",
    metadata: { name: site, labels: FILE },
    spec: { tier: "ContinentalHub", nodeSelector: { matchLabels: { "test.nextgen.itechsmart.io/site": site } } },
  });
  await create(PQKeySetKind, {
    kind: "PQKeySet",
    metadata: { name: "keys", namespace: ns, labels: FILE },
    spec: { algorithm: "ML-KEM-768" },
  });
  await create(QuantumBackendKind, {
    kind: "QuantumBackend",
    metadata: { name: `mon-sim-${suffix}`, labels: FILE },
    spec: { type: "Simulator", execution: { mode: "Embedded" } },
  });
  await create(QuantumJobKind, {
    kind: "QuantumJob",
    metadata: { name: "bell", namespace: ns, labels: FILE },
    spec: {
      circuit: { openqasm: BELL },
      shots: 100,
      backend: { name: `mon-sim-${suffix}`, fallbackToSimulator: false },
    },
  });
  const d = kwokDeployment({
    namespace: ns,
    name: "app",
    replicas: 1,
    nodeSelector: { [POOL]: "monitoring" },
    labels: FILE,
  });
  (d.spec.template.spec.containers[0] as Record<string, unknown>).resources = { requests: { cpu: "100m" } };
  await admin.create(DeploymentKind, d);
  // A budget bound to run out: 1 kW at 1000 g/kWh against 1 g.
  await create(CarbonBudgetKind, {
    kind: "CarbonBudget",
    metadata: { name: "small", namespace: ns, labels: FILE },
    spec: {
      budgetGrams: 1,
      period: { type: "Daily" },
      energy: { estimate: { wattsPerCore: "10000", utilization: "1" } },
      intensity: { static: { gramsPerKWh: 1000 }, refreshInterval: "5s" },
    },
  });
  await waitUntil(
    "the job to succeed",
    async () => (await admin.get<QuantumJob>(QuantumJobKind, ns, "bell"))?.status?.phase === "Succeeded",
    { timeoutMs: 60_000 },
  );
});
afterAll(async () => {
  await prometheus?.stop();
});

/** Prometheus' answer to an instant query, whatever its type; a parse error is status "error". */
async function evaluate(expr: string) {
  const res = await fetch(`${prometheus.url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
  return (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
}

/** How Prometheus' last scrape of the operator went. */
async function scrapeHealth(): Promise<string> {
  const body = (await (await fetch(`${prometheus.url}/api/v1/targets`)).json()) as {
    data: { activeTargets: { health: string; lastError: string }[] };
  };
  return JSON.stringify(body.data.activeTargets.map((t) => ({ health: t.health, lastError: t.lastError })));
}

const METRIC =
  /\b(nextgen_[a-z0-9_]+|controller_runtime_[a-z_]+|workqueue_[a-z_]+|rest_client_[a-z_]+|leader_election_[a-z_]+|process_[a-z_]+|nodejs_[a-z_]+|nextgen:[a-z0-9_:]+)/g;
const family = (metric: string) => metric.replace(/_(bucket|count|sum)$/, "");

const allExprs = () => [
  ...ruleGroups().flatMap((g) => g.rules.map((r) => ({ where: "alert" in r ? r.alert : r.record, expr: r.expr }))),
  ...dashboardQueries().map((q) => ({ where: `panel ${q.panel}`, expr: expandVariables(q.expr) })),
];

test("every expression of the rules and the dashboard parses, and names only metrics the operator exports", async () => {
  // Scraped, and the rules evaluated, at least once with the objects' metrics in.
  await waitUntil(
    "Prometheus to have the objects' metrics",
    async () => (await prometheus.query("nextgen_quantumjob_finished_total")).length > 0,
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  const metadata = (await (await fetch(`${prometheus.url}/api/v1/metadata`)).json()) as {
    data: Record<string, unknown>;
  };
  const recorded = new Set(ruleGroups().flatMap((g) => g.rules.flatMap((r) => ("record" in r ? [r.record] : []))));
  const unknown: string[] = [];
  for (const { where, expr } of allExprs()) {
    const answer = await evaluate(expr);
    expect(answer.status, `${where}: ${expr}: ${answer.error}`).toBe("success");
    for (const m of expr.match(METRIC) ?? [])
      if (!recorded.has(m) && !(family(m) in metadata.data) && !(m in metadata.data)) unknown.push(`${where}: ${m}`);
  }
  expect(unknown).toEqual([]);
});

test("what the objects exercise returns data, and the rules see the budget running out", async () => {
  const mustHaveData = [
    `up{job="${JOB}"} == 1`,
    "controller_runtime_reconcile_total",
    "workqueue_depth",
    "rest_client_requests_total",
    "nextgen_pqkeyset_rotations_total",
    "nextgen_pqkeyset_key_generation_seconds_count",
    "nextgen_pqkeyset_next_rotation_timestamp_seconds",
    "nextgen_edgenode_sites",
    "nextgen_quantum_placement_decision_seconds_count",
    "nextgen_quantumjob_queue_wait_seconds_count",
    'nextgen_quantumjob_finished_total{phase="Succeeded"}',
    `nextgen_quantumbackend_ready{backend="mon-sim-${suffix}"} == 1`,
    `nextgen_quantumbackend_capacity_jobs{backend="mon-sim-${suffix}"}`,
    `nextgen_quantumbackend_queued_jobs{backend="mon-sim-${suffix}"}`,
    `nextgen_quantumbackend_running_jobs{backend="mon-sim-${suffix}"}`,
    "nextgen_carbon_consumed_grams",
    "nextgen_carbon_projected_grams",
    "nextgen_carbon_budget_grams",
    "nextgen_carbon_intensity_grams_per_kwh",
    "nextgen_carbon_intensity_stale",
  ];
  for (const expr of mustHaveData)
    await waitUntil(`data for ${expr}`, async () => (await prometheus.query(expr)).length > 0, {
      timeoutMs: 60_000,
      intervalMs: 500,
    }).catch(async (e) => {
      const name = expr.replace(/[{ ].*$/, "");
      const exported = (await (await fetch(operator.metricsUrl)).text()).split("\n").filter((l) => l.includes(name));
      throw new Error(
        `${(e as Error).message}; the operator's scrape: ${await scrapeHealth()}; it exports:\n${exported.join("\n")}`,
      );
    });
  // The budget's projection passes its 1 g: the alert is pending (its `for` is 30 minutes), naming the budget.
  const pending = await waitUntil(
    "NextgenCarbonBudgetProjectedToRunOut pending",
    async () => {
      const alerts = await prometheus.query('ALERTS{alertname="NextgenCarbonBudgetProjectedToRunOut"}');
      return alerts.find((a) => a.labels.namespace === ns && a.labels.budget === "small");
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  expect(pending.labels.alertstate).toBe("pending");
  // The operator is up and leads (without leader election it always does): those alerts' conditions are false.
  const rules = ruleGroups().flatMap((g) => g.rules);
  for (const name of ["NextgenOperatorDown", "NextgenOperatorNotLeading"]) {
    const rule = rules.find((r) => "alert" in r && r.alert === name);
    expect(await prometheus.query(rule?.expr as string), name).toEqual([]);
  }
  // The placement SLI is recorded.
  await waitUntil(
    "the placement SLI",
    async () => (await prometheus.query("nextgen:slo_placement_errors:ratio_rate5m")).length > 0,
    { timeoutMs: 30_000, intervalMs: 500 },
  );
});

test("every metric has help text, and labels naming objects appear only on the documented per-object series", async () => {
  const text = await (await fetch(operator.metricsUrl)).text();
  const help = new Map<string, string>();
  const labels = new Map<string, Set<string>>();
  for (const line of text.split("\n")) {
    const h = /^# HELP (\S+) (.*)$/.exec(line);
    if (h) help.set(h[1] as string, h[2] as string);
    const t = /^# TYPE (\S+) /.exec(line);
    if (t && !labels.has(t[1] as string)) labels.set(t[1] as string, new Set());
    const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/.exec(line);
    if (s) {
      const set = labels.get(family(s[1] as string)) ?? labels.get(s[1] as string);
      for (const m of (s[2] as string).matchAll(/(\w+)="/g)) set?.add(m[1] as string);
    }
  }
  expect(labels.size).toBeGreaterThan(20);
  // Prometheus' own linter of the exposition: naming, units, help text.
  const promtool = await ensureTool("promtool", (line) => process.stderr.write(`[monitoring] ${line}\n`));
  const lint = spawnSync(promtool, ["check", "metrics"], { input: text, encoding: "utf8" });
  // prom-client's own Node.js gauges end in _total; their names are its, not ours to change.
  const findings = `${lint.stdout}${lint.stderr}`
    .split("\n")
    .filter(
      (l) => l.trim() && !/^nodejs_active_\w+_total non-counter metrics should not have "_total" suffix$/.test(l),
    );
  expect(findings).toEqual([]);
  const problems: string[] = [];
  for (const [name, names] of labels) {
    if (!help.get(name)?.trim()) problems.push(`${name}: no help text`);
    for (const l of names)
      if (OBJECT_LABELS.includes(l) && !PER_OBJECT[name]?.includes(l)) problems.push(`${name}: per-object label ${l}`);
  }
  expect(problems).toEqual([]);
});
