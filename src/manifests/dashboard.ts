/**
 * The operator's Grafana dashboard: a row for the runtime and one per kind, on the metrics the operator registers
 * (src/runtime/metrics.ts, src/controllers/<kind>/metrics.ts) and the SLO recording rules of ./monitoring.ts.
 * config/monitoring/grafana-dashboard.json is generated from here and shipped as a ConfigMap Grafana's sidecar loads.
 *
 * Template variables: `datasource` (any Prometheus); `job`, the operator's scrape job (default JOB, the one the
 * rules select); `namespace`, the namespaces of the per-object metrics; and one variable per kind whose metrics
 * name objects, as its label is spelled differently on each: `pqkeyset` (label `name`), `carbonbudget` (`budget`),
 * `remediationpolicy` (`policy`) and `quantumbackend` (`backend`, cluster-scoped: not filtered by namespace). A single `resource` variable could not tell one kind's objects from another's.
 * Every variable is filtered by the ones before it; namespace and the kinds' variables are multi-valued with All.
 *
 * Every target selects `job="$job"`, and `namespace=~"$namespace"` where the operator itself exports a namespace
 * label (the object's); metrics without one get the scrape target's namespace, which the variable does not list.
 */
import { JOB, ruleGroups, SLOS } from "./monitoring.ts";

const DATASOURCE = { type: "prometheus", uid: "${datasource}" };
const job = `job="$job"`;
const ns = `namespace=~"$namespace"`;
const rate = (selector: string, range = "$__rate_interval") => `rate(${selector}[${range}])`;
const quantile = (q: number, histogram: string, selector: string, by: string[]) =>
  `histogram_quantile(${q}, sum by (${["le", ...by].join(", ")}) (${rate(`${histogram}_bucket{${selector}}`)}))`;

interface Target {
  expr: string;
  legendFormat: string;
}
interface PanelSpec {
  title: string;
  description: string;
  type: "timeseries" | "stat";
  unit: string;
  targets: Target[];
  /** Out of 24 columns. */
  width: number;
  min?: number;
  /** Threshold steps above the base (green unless base says otherwise), e.g. [{ value: 1, color: "red" }]. */
  thresholds?: { value: number; color: string }[];
  base?: string;
  /** Draw the thresholds as lines (timeseries). */
  thresholdLines?: boolean;
  stacked?: boolean;
}
interface RowSpec {
  title: string;
  panels: PanelSpec[];
}

const t = (expr: string, legendFormat: string): Target => ({ expr, legendFormat });

function runtimeRow(): RowSpec {
  const byController = (metric: string) => `sum by (controller) (${rate(`${metric}{${job}}`)})`;
  return {
    title: "Runtime",
    panels: [
      {
        title: "Reconciles",
        description: "Reconciles per second by controller and result (success, error, requeue, requeue_after).",
        type: "timeseries",
        unit: "ops",
        width: 8,
        targets: [
          t(
            `sum by (controller, result) (${rate(`controller_runtime_reconcile_total{${job}}`)})`,
            "{{controller}} {{result}}",
          ),
        ],
      },
      {
        title: "Reconcile error ratio",
        description: "Share of each controller's reconciles that failed (they are retried with backoff).",
        type: "timeseries",
        unit: "percentunit",
        width: 8,
        min: 0,
        thresholds: [{ value: 0.1, color: "red" }],
        thresholdLines: true,
        targets: [
          t(
            `${byController("controller_runtime_reconcile_errors_total")} / ${byController("controller_runtime_reconcile_total")}`,
            "{{controller}}",
          ),
        ],
      },
      {
        title: "Reconcile errors",
        description: "Errors per second by controller; terminal errors are not retried.",
        type: "timeseries",
        unit: "ops",
        width: 8,
        targets: [
          t(byController("controller_runtime_reconcile_errors_total"), "{{controller}}"),
          t(byController("controller_runtime_terminal_reconcile_errors_total"), "{{controller}} terminal"),
        ],
      },
      {
        title: "Reconcile duration (p50, p99)",
        description: "Time per reconcile by controller.",
        type: "timeseries",
        unit: "s",
        width: 8,
        targets: [
          t(quantile(0.5, "controller_runtime_reconcile_time_seconds", job, ["controller"]), "{{controller}} p50"),
          t(quantile(0.99, "controller_runtime_reconcile_time_seconds", job, ["controller"]), "{{controller}} p99"),
        ],
      },
      {
        title: "Workers",
        description: "Workers reconciling now, against each controller's maximum.",
        type: "timeseries",
        unit: "short",
        width: 8,
        min: 0,
        targets: [
          t(`sum by (controller) (controller_runtime_active_workers{${job}})`, "{{controller}} active"),
          t(`max by (controller) (controller_runtime_max_concurrent_reconciles{${job}})`, "{{controller}} max"),
        ],
      },
      {
        title: "Work queue depth",
        description: "Keys waiting in each controller's work queue.",
        type: "timeseries",
        unit: "short",
        width: 8,
        min: 0,
        targets: [t(`sum by (controller) (workqueue_depth{${job}})`, "{{controller}}")],
      },
      {
        title: "Work queue adds and retries",
        description: "Keys added to each work queue per second, and those re-added after a failure.",
        type: "timeseries",
        unit: "ops",
        width: 8,
        targets: [
          t(byController("workqueue_adds_total"), "{{controller}} adds"),
          t(byController("workqueue_retries_total"), "{{controller}} retries"),
        ],
      },
      {
        title: "Work queue latency (p99)",
        description: "How long a key waits in the queue before a worker takes it, and how long the worker takes.",
        type: "timeseries",
        unit: "s",
        width: 8,
        targets: [
          t(quantile(0.99, "workqueue_queue_duration_seconds", job, ["controller"]), "{{controller}} queued"),
          t(quantile(0.99, "workqueue_work_duration_seconds", job, ["controller"]), "{{controller}} working"),
        ],
      },
      {
        title: "API server requests",
        description: "Requests to the Kubernetes API server per second by method and status code.",
        type: "timeseries",
        unit: "ops",
        width: 8,
        targets: [t(`sum by (method, code) (${rate(`rest_client_requests_total{${job}}`)})`, "{{method}} {{code}}")],
      },
      {
        title: "Leading replicas",
        description: "Replicas holding the leader Lease: 1 when healthy, 0 when nothing is reconciled.",
        type: "stat",
        unit: "short",
        width: 4,
        base: "red",
        thresholds: [{ value: 1, color: "green" }],
        targets: [t(`sum(leader_election_master_status{${job}})`, "leading")],
      },
      {
        title: "CPU",
        description: "CPU time per second of each replica (1 = a whole core).",
        type: "timeseries",
        unit: "suffix: cores",
        width: 10,
        min: 0,
        targets: [t(`sum by (instance) (${rate(`process_cpu_seconds_total{${job}}`)})`, "{{instance}}")],
      },
      {
        title: "Resident memory",
        description: "Resident set size of each replica.",
        type: "timeseries",
        unit: "bytes",
        width: 10,
        min: 0,
        targets: [t(`sum by (instance) (process_resident_memory_bytes{${job}})`, "{{instance}}")],
      },
    ],
  };
}

function pqKeySetRow(): RowSpec {
  const h = "nextgen_pqkeyset_key_generation_seconds";
  return {
    title: "PQKeySet",
    panels: [
      {
        title: "Time until next rotation",
        description: "Until each key set's next scheduled rotation; negative when overdue (alert after an hour).",
        type: "stat",
        unit: "s",
        width: 8,
        base: "red",
        thresholds: [{ value: 0, color: "green" }],
        targets: [
          t(
            `max by (namespace, name) (nextgen_pqkeyset_next_rotation_timestamp_seconds{${job}, ${ns}, name=~"$pqkeyset"}) - time()`,
            "{{namespace}}/{{name}}",
          ),
        ],
      },
      {
        title: "Rotations per hour",
        description: "Keys generated and stored in the last hour, by algorithm and reason.",
        type: "timeseries",
        unit: "short",
        width: 8,
        min: 0,
        targets: [
          t(
            `sum by (algorithm, reason) (increase(nextgen_pqkeyset_rotations_total{${job}}[1h]))`,
            "{{algorithm}} {{reason}}",
          ),
        ],
      },
      {
        title: "Key generation time (p50, p99)",
        description: "Time to generate and self-test one key pair, by algorithm (SLO: 99% within 10 s).",
        type: "timeseries",
        unit: "s",
        width: 8,
        targets: [
          t(quantile(0.5, h, job, ["algorithm"]), "{{algorithm}} p50"),
          t(quantile(0.99, h, job, ["algorithm"]), "{{algorithm}} p99"),
        ],
      },
    ],
  };
}

function edgeNodeRow(): RowSpec {
  const sites = `nextgen_edgenode_sites{${job}}`;
  return {
    title: "EdgeNode",
    panels: [
      {
        title: "Sites by phase",
        description: "Edge sites in each phase, every tier together.",
        type: "stat",
        unit: "short",
        width: 8,
        targets: [t(`sum by (phase) (${sites})`, "{{phase}}")],
      },
      {
        title: "Sites by tier and phase",
        description: "Edge sites by tier and phase.",
        type: "timeseries",
        unit: "short",
        width: 8,
        min: 0,
        stacked: true,
        targets: [t(`sum by (tier, phase) (${sites})`, "{{tier}} {{phase}}")],
      },
      {
        title: "Probe round trip (p99)",
        description: "Round-trip time of the probes of each site.",
        type: "timeseries",
        unit: "s",
        width: 8,
        targets: [t(quantile(0.99, "nextgen_edgenode_probe_duration_seconds", job, ["site"]), "{{site}}")],
      },
    ],
  };
}

function quantumRow(): RowSpec {
  const backends = `backend=~"$quantumbackend"`;
  const finished = (extra = "") => `sum(${rate(`nextgen_quantumjob_finished_total{${job}${extra}}`, "1h")})`;
  return {
    title: "Quantum",
    panels: [
      {
        title: "QuantumJobs finished per hour",
        description: "QuantumJobs that ended in the last hour, by phase and reason.",
        type: "timeseries",
        unit: "short",
        width: 8,
        min: 0,
        targets: [
          t(`sum by (phase, reason) (increase(nextgen_quantumjob_finished_total{${job}}[1h]))`, "{{phase}} {{reason}}"),
        ],
      },
      {
        title: "QuantumJob failure ratio (1h)",
        description: "Share of the QuantumJobs that ended in the last hour which failed (alert above 20%).",
        type: "stat",
        unit: "percentunit",
        width: 4,
        thresholds: [{ value: 0.2, color: "red" }],
        targets: [t(`${finished(`, phase="Failed"`)} / ${finished()}`, "failed")],
      },
      {
        title: "Queue wait (p50, p90)",
        description: "From a QuantumJob's creation to its first run starting (placement, deferral, queueing).",
        type: "timeseries",
        unit: "s",
        width: 6,
        targets: [
          t(quantile(0.5, "nextgen_quantumjob_queue_wait_seconds", job, ["backend_type"]), "{{backend_type}} p50"),
          t(quantile(0.9, "nextgen_quantumjob_queue_wait_seconds", job, ["backend_type"]), "{{backend_type}} p90"),
        ],
      },
      {
        title: "Placement decision time (p50, p99)",
        description: "Time to score every backend and choose one (SLO: 99% within 100 ms).",
        type: "timeseries",
        unit: "s",
        width: 6,
        targets: [
          t(quantile(0.5, "nextgen_quantum_placement_decision_seconds", job, []), "p50"),
          t(quantile(0.99, "nextgen_quantum_placement_decision_seconds", job, []), "p99"),
        ],
      },
      {
        title: "Backends: queued and running jobs",
        description: "QuantumJobs queued for and running on each backend, against the jobs it runs at once.",
        type: "timeseries",
        unit: "short",
        width: 12,
        min: 0,
        targets: [
          t(`max by (backend) (nextgen_quantumbackend_queued_jobs{${job}, ${backends}})`, "{{backend}} queued"),
          t(`max by (backend) (nextgen_quantumbackend_running_jobs{${job}, ${backends}})`, "{{backend}} running"),
          t(`max by (backend) (nextgen_quantumbackend_capacity_jobs{${job}, ${backends}})`, "{{backend}} capacity"),
        ],
      },
      {
        title: "Backends not Ready",
        description: "QuantumBackends that are Unavailable (placement sends them no work; alert when jobs wait).",
        type: "stat",
        unit: "short",
        width: 12,
        thresholds: [{ value: 1, color: "red" }],
        targets: [
          t(
            `count(max by (backend) (nextgen_quantumbackend_ready{${job}, ${backends}}) == 0) or vector(0)`,
            "not Ready",
          ),
        ],
      },
    ],
  };
}

function remediationRow(): RowSpec {
  const actions = (extra = "") =>
    `nextgen_remediation_actions_total{${job}, ${ns}, policy=~"$remediationpolicy"${extra}}`;
  return {
    title: "RemediationPolicy",
    panels: [
      {
        title: "Actions per hour",
        description:
          "Remediation actions in the last hour by policy, action and result " +
          "(Succeeded, Failed, DryRun, Held, Reverted, Restored).",
        type: "timeseries",
        unit: "short",
        width: 12,
        min: 0,
        targets: [
          t(
            `sum by (namespace, policy, action, result) (increase(${actions()}[1h]))`,
            "{{namespace}}/{{policy}} {{action}} {{result}}",
          ),
        ],
      },
      {
        title: "Actions held back (1h)",
        description: "Actions a policy's brakes held back in the last hour: more is failing than it may heal.",
        type: "stat",
        unit: "short",
        width: 4,
        thresholds: [{ value: 1, color: "orange" }],
        targets: [t(`sum(increase(${actions(`, result="Held"`)}[1h])) or vector(0)`, "held")],
      },
      {
        title: "Alert webhook requests",
        description: "Requests to the Alertmanager webhook receiver per second by outcome.",
        type: "timeseries",
        unit: "ops",
        width: 8,
        targets: [
          t(`sum by (outcome) (${rate(`nextgen_remediation_alert_webhook_requests_total{${job}}`)})`, "{{outcome}}"),
        ],
      },
      {
        title: "Detection to action (p50, p95)",
        description: "From an incident opening to its first action, by action (SLO: 95% within 30 s).",
        type: "timeseries",
        unit: "s",
        width: 12,
        targets: [
          t(quantile(0.5, "nextgen_remediation_detection_to_action_seconds", job, ["action"]), "{{action}} p50"),
          t(quantile(0.95, "nextgen_remediation_detection_to_action_seconds", job, ["action"]), "{{action}} p95"),
        ],
      },
      {
        title: "Model scoring time (p99)",
        description: "Time to score one workload's pods with an ONNX model.",
        type: "timeseries",
        unit: "s",
        width: 12,
        targets: [t(quantile(0.99, "nextgen_remediation_model_scoring_seconds", job, ["model"]), "{{model}}")],
      },
    ],
  };
}

function carbonRow(): RowSpec {
  const sel = `{${job}, ${ns}, budget=~"$carbonbudget"}`;
  const per = (metric: string) => `max by (namespace, budget) (${metric}${sel})`;
  const grams = "suffix: g";
  return {
    title: "CarbonBudget",
    panels: [
      {
        title: "Budget used",
        description: "Emissions of each budget's current window as a share of what it allows.",
        type: "stat",
        unit: "percentunit",
        width: 8,
        thresholds: [
          { value: 0.8, color: "orange" },
          { value: 1, color: "red" },
        ],
        targets: [
          t(
            `${per("nextgen_carbon_consumed_grams")} / ${per("nextgen_carbon_budget_grams")}`,
            "{{namespace}}/{{budget}}",
          ),
        ],
      },
      {
        title: "Projected at window end",
        description: "Emissions by the window's end at the latest rate, as a share of the budget (alert above 100%).",
        type: "stat",
        unit: "percentunit",
        width: 8,
        thresholds: [
          { value: 0.8, color: "orange" },
          { value: 1, color: "red" },
        ],
        targets: [
          t(
            `${per("nextgen_carbon_projected_grams")} / ${per("nextgen_carbon_budget_grams")}`,
            "{{namespace}}/{{budget}}",
          ),
        ],
      },
      {
        title: "Budgets with stale intensity",
        description: "Budgets whose intensity source fails or serves old data (IntensityDataStale=True).",
        type: "stat",
        unit: "short",
        width: 8,
        thresholds: [{ value: 1, color: "orange" }],
        targets: [t(`count(${per("nextgen_carbon_intensity_stale")} == 1) or vector(0)`, "stale")],
      },
      {
        title: "Emissions against budget",
        description: "gCO2e emitted in the current window, projected by its end, and allowed.",
        type: "timeseries",
        unit: grams,
        width: 12,
        min: 0,
        targets: [
          t(per("nextgen_carbon_consumed_grams"), "{{namespace}}/{{budget}} consumed"),
          t(per("nextgen_carbon_projected_grams"), "{{namespace}}/{{budget}} projected"),
          t(per("nextgen_carbon_budget_grams"), "{{namespace}}/{{budget}} budget"),
        ],
      },
      {
        title: "Energy",
        description: "kWh each budget's pods drew in the current window (before PUE).",
        type: "timeseries",
        unit: "kwatth",
        width: 6,
        min: 0,
        targets: [t(per("nextgen_carbon_energy_kwh"), "{{namespace}}/{{budget}}")],
      },
      {
        title: "Grid carbon intensity",
        description: "Intensity in force by region and source (default: no usable data).",
        type: "timeseries",
        unit: "suffix: g/kWh",
        width: 6,
        min: 0,
        targets: [
          t(`max by (region, source) (nextgen_carbon_intensity_grams_per_kwh{${job}})`, "{{region}} {{source}}"),
        ],
      },
    ],
  };
}

/** The windows monitoring.ts records each SLO's error ratio over, read from its rules, shortest first. */
function sloWindows(name: string): { window: string; record: string }[] {
  const prefix = `nextgen:slo_${name}_errors:ratio_rate`;
  const seconds = (w: string) => Number(w.slice(0, -1)) * { s: 1, m: 60, h: 3600, d: 86_400 }[w.slice(-1)]!;
  return ruleGroups()
    .flatMap((g) => g.rules)
    .flatMap((r) => ("record" in r && r.record.startsWith(prefix) ? [r.record] : []))
    .map((record) => ({ window: record.slice(prefix.length), record }))
    .sort((a, b) => seconds(a.window) - seconds(b.window));
}

function sloRow(): RowSpec {
  return {
    title: "SLOs",
    panels: SLOS.map((slo) => {
      const budget = Number((1 - slo.objective).toFixed(6));
      return {
        title: `SLO ${slo.name}: error ratio`,
        description:
          `Share of ${slo.what} that missed, per recording-rule window; the line is the error budget ` +
          `(${Number((budget * 100).toFixed(4))}%, objective ${Number((slo.objective * 100).toFixed(2))}%).`,
        type: "timeseries" as const,
        unit: "percentunit",
        width: 8,
        min: 0,
        thresholds: [{ value: budget, color: "red" }],
        thresholdLines: true,
        // The rules sum the job label away: `$job|` matches their series now, and still should they keep it.
        targets: sloWindows(slo.name).map(({ window, record }) => t(`${record}{job=~"$job|"}`, window)),
      };
    }),
  };
}

function panel(spec: PanelSpec, id: number, gridPos: { x: number; y: number; w: number; h: number }): object {
  const steps = [{ color: spec.base ?? "green", value: null }, ...(spec.thresholds ?? [])];
  const defaults = {
    unit: spec.unit,
    ...(spec.min === undefined ? {} : { min: spec.min }),
    thresholds: { mode: "absolute", steps },
    color: spec.type === "stat" ? { mode: "thresholds" } : { mode: "palette-classic" },
    mappings: [],
    ...(spec.type === "timeseries"
      ? {
          custom: {
            drawStyle: "line",
            lineWidth: 1,
            fillOpacity: spec.stacked ? 30 : 10,
            showPoints: "never",
            spanNulls: false,
            stacking: { mode: spec.stacked ? "normal" : "none", group: "A" },
            thresholdsStyle: { mode: spec.thresholdLines ? "line" : "off" },
          },
        }
      : {}),
  };
  const options =
    spec.type === "stat"
      ? {
          reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
          colorMode: "value",
          graphMode: "none",
          justifyMode: "auto",
          orientation: "auto",
          textMode: "auto",
        }
      : {
          legend: { displayMode: "list", placement: "bottom", showLegend: true },
          tooltip: { mode: "multi", sort: "desc" },
        };
  return {
    id,
    type: spec.type,
    title: spec.title,
    description: spec.description,
    datasource: DATASOURCE,
    gridPos,
    fieldConfig: { defaults, overrides: [] },
    options,
    targets: spec.targets.map((target, i) => ({
      datasource: DATASOURCE,
      editorMode: "code",
      expr: target.expr,
      legendFormat: target.legendFormat,
      range: true,
      refId: String.fromCharCode(65 + i),
    })),
  };
}

function rows(): RowSpec[] {
  return [runtimeRow(), pqKeySetRow(), edgeNodeRow(), quantumRow(), remediationRow(), carbonRow(), sloRow()];
}

function layout(): object[] {
  const panels: object[] = [];
  let id = 1;
  let y = 0;
  for (const row of rows()) {
    panels.push({
      id: id++,
      type: "row",
      title: row.title,
      collapsed: false,
      gridPos: { x: 0, y, w: 24, h: 1 },
      panels: [],
    });
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const spec of row.panels) {
      const h = 8;
      if (x + spec.width > 24) {
        x = 0;
        y += rowHeight;
        rowHeight = 0;
      }
      panels.push(panel(spec, id++, { x, y, w: spec.width, h }));
      x += spec.width;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return panels;
}

function queryVariable(
  name: string,
  label: string,
  query: string,
  opts: { multi?: boolean; current?: string; description?: string } = {},
): object {
  const current = opts.current ?? (opts.multi ? "$__all" : undefined);
  return {
    name,
    label,
    type: "query",
    datasource: DATASOURCE,
    definition: query,
    query: { query, refId: "PrometheusVariableQueryEditor-VariableQuery" },
    ...(opts.description ? { description: opts.description } : {}),
    refresh: 2, // on time range change
    sort: 1,
    regex: "",
    multi: opts.multi ?? false,
    includeAll: opts.multi ?? false,
    ...(opts.multi ? { allValue: ".*" } : {}),
    current: current
      ? current === "$__all"
        ? { selected: true, text: ["All"], value: ["$__all"] }
        : { selected: true, text: current, value: current }
      : {},
    options: [],
    hide: 0,
    skipUrlSync: false,
  };
}

function variables(): object[] {
  const scoped = `${job}, ${ns}`;
  return [
    {
      name: "datasource",
      label: "Data source",
      type: "datasource",
      query: "prometheus",
      current: {},
      options: [],
      refresh: 1,
      regex: "",
      hide: 0,
      skipUrlSync: false,
    },
    queryVariable("job", "Job", `label_values({__name__=~"nextgen_.+"}, job)`, {
      current: JOB,
      description: "The operator's scrape job: the metrics Service's name under a ServiceMonitor.",
    }),
    queryVariable(
      "namespace",
      "Namespace",
      "label_values({__name__=~" +
        `"nextgen_pqkeyset_next_rotation_timestamp_seconds|nextgen_carbon_budget_grams|nextgen_remediation_actions_total", ` +
        `${job}}, namespace)`,
      { multi: true, description: "Namespaces of the PQKeySets, CarbonBudgets and RemediationPolicies." },
    ),
    queryVariable(
      "pqkeyset",
      "PQKeySet",
      `label_values(nextgen_pqkeyset_next_rotation_timestamp_seconds{${scoped}}, name)`,
      { multi: true },
    ),
    queryVariable("carbonbudget", "CarbonBudget", `label_values(nextgen_carbon_budget_grams{${scoped}}, budget)`, {
      multi: true,
    }),
    queryVariable("quantumbackend", "QuantumBackend", `label_values(nextgen_quantumbackend_ready{${job}}, backend)`, {
      multi: true,
    }),
    queryVariable(
      "remediationpolicy",
      "RemediationPolicy",
      `label_values(nextgen_remediation_actions_total{${scoped}}, policy)`,
      { multi: true },
    ),
  ];
}

/** The dashboard's JSON model (Grafana 10.4 and later). */
export function dashboard(): object {
  return {
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: "grafana", uid: "-- Grafana --" },
          enable: true,
          hide: true,
          iconColor: "rgba(0, 211, 255, 1)",
          name: "Annotations & Alerts",
          type: "dashboard",
        },
      ],
    },
    description: "The nextgen-operator's runtime, its kinds and its SLOs.",
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    links: [],
    panels: layout(),
    refresh: "30s",
    schemaVersion: 39,
    tags: ["nextgen-operator", "kubernetes", "operator"],
    templating: { list: variables() },
    time: { from: "now-6h", to: "now" },
    timepicker: {},
    timezone: "",
    title: "nextgen-operator",
    uid: "nextgen-operator",
    version: 1,
    weekStart: "",
  };
}

/** Every target's PromQL, by panel title, with Grafana's variables left in (`$job`, `$__rate_interval`, …). */
export function dashboardQueries(): { panel: string; expr: string }[] {
  return rows().flatMap((row) =>
    row.panels.flatMap((p) => p.targets.map((target) => ({ panel: `${row.title}: ${p.title}`, expr: target.expr }))),
  );
}

/** Values that stand in for the dashboard's variables, so that its queries can be parsed and run outside Grafana. */
export function expandVariables(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", "5m")
    .replace(/\$(\w+)/g, (_, name: string) => (name === "job" ? JOB : name === "datasource" ? "prometheus" : ".*"));
}
