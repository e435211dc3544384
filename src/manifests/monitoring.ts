/**
 * The operator's Prometheus rules: alerts a cluster admin can act on, each with a runbook section in the README,
 * and SLOs as recording rules with multi-window burn-rate alerts. config/monitoring is generated from here, as a
 * PrometheusRule for kube-prometheus-stack and as a plain rule file for promtool and a Prometheus of one's own.
 */

/** The job label Prometheus gives the operator's targets: the metrics Service's name (ServiceMonitor's default). */
export const JOB = "nextgen-operator-metrics";
const RUNBOOK = "https://github.com/itechsmart/nextgen-operator/blob/main/README.md#runbook-";

export interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: "critical" | "warning" | "info" };
  annotations: { summary: string; description: string; runbook_url: string };
}
export interface RecordingRule {
  record: string;
  expr: string;
}
export interface RuleGroup {
  name: string;
  rules: (AlertRule | RecordingRule)[];
}

const alert = (
  name: string,
  severity: AlertRule["labels"]["severity"],
  expr: string,
  forDuration: string,
  summary: string,
  description: string,
): AlertRule => ({
  alert: name,
  expr,
  for: forDuration,
  labels: { severity },
  annotations: { summary, description, runbook_url: `${RUNBOOK}${name.toLowerCase()}` },
});

/**
 * An SLO the operator meets on its own: the share of events faster than a latency bound, from a histogram whose
 * buckets include the bound.
 */
export interface Slo {
  name: string;
  /** The histogram, without _bucket. */
  histogram: string;
  /**
   * The bucket bound (le) that counts as good, as Prometheus 3 stores it: it normalizes le on ingestion to a float's
   * OpenMetrics form, so a bound the operator exposes as le="10" is selected by le="10.0" only.
   */
  le: string;
  /** The share of events that must be good, e.g. 0.99. */
  objective: number;
  what: string;
}

/** The platform's targets the operator itself meets; the figures are the README's SLO table. */
export const SLOS: Slo[] = [
  {
    name: "placement",
    histogram: "nextgen_quantum_placement_decision_seconds",
    le: "0.1",
    objective: 0.99,
    what: "QuantumJob placement decisions within 100 ms",
  },
  {
    name: "keygen",
    histogram: "nextgen_pqkeyset_key_generation_seconds",
    le: "10.0",
    objective: 0.99,
    what: "post-quantum key generations (with self-test) within 10 s",
  },
  {
    name: "remediation",
    histogram: "nextgen_remediation_detection_to_action_seconds",
    le: "30.0",
    objective: 0.95,
    what: "RemediationPolicy incidents acted on within 30 s of detection",
  },
];

/** The windows of the multi-window, multi-burn-rate alerts (Google SRE workbook, chapter 5). */
const BURN_WINDOWS = [
  { long: "1h", short: "5m", factor: 14.4, severity: "critical" as const, for: "2m" },
  { long: "6h", short: "30m", factor: 6, severity: "warning" as const, for: "15m" },
];
const SLI_WINDOWS = [...new Set(BURN_WINDOWS.flatMap((w) => [w.short, w.long]))];

const errorRatio = (slo: Slo, window: string) =>
  `1 - (sum(rate(${slo.histogram}_bucket{le="${slo.le}"}[${window}])) / sum(rate(${slo.histogram}_count[${window}])))`;
const recorded = (slo: Slo, window: string) => `nextgen:slo_${slo.name}_errors:ratio_rate${window}`;

function sloGroup(slo: Slo): RuleGroup {
  const budget = Number((1 - slo.objective).toFixed(6));
  const percent = `${Number((slo.objective * 100).toFixed(2))}%`;
  return {
    name: `nextgen-operator-slo-${slo.name}`,
    rules: [
      ...SLI_WINDOWS.map((w) => ({ record: recorded(slo, w), expr: errorRatio(slo, w) })),
      ...BURN_WINDOWS.map((w) =>
        alert(
          `NextgenSLOBurn${slo.name[0]?.toUpperCase()}${slo.name.slice(1)}${w.severity === "critical" ? "Fast" : "Slow"}`,
          w.severity,
          `${recorded(slo, w.long)} > (${w.factor} * ${budget}) and ${recorded(slo, w.short)} > (${w.factor} * ${budget})`,
          w.for,
          `The ${slo.name} SLO's error budget is burning ${w.factor}x too fast.`,
          `Over the last ${w.long} (and ${w.short}), more than ${w.factor}x the allowed share of ${slo.what} ` +
            `missed the objective (${percent}): at this rate the month's budget is gone in ` +
            `${Math.round((30 * 24) / w.factor)} hours.`,
        ),
      ),
    ],
  };
}

/** Every rule group the operator ships. */
export function ruleGroups(): RuleGroup[] {
  const job = `job="${JOB}"`;
  return [
    {
      name: "nextgen-operator-runtime",
      rules: [
        alert(
          "NextgenOperatorDown",
          "critical",
          `absent(up{${job}} == 1)`,
          "5m",
          "No nextgen-operator replica is up.",
          "Prometheus has scraped no running nextgen-operator for 5 minutes: no custom resource is reconciled.",
        ),
        alert(
          "NextgenOperatorNotLeading",
          "critical",
          `max(leader_election_master_status{${job}}) < 1`,
          "5m",
          "No nextgen-operator replica leads.",
          "Replicas are up but none has held the leader Lease for 5 minutes: nothing is reconciled.",
        ),
        alert(
          "NextgenReconcileErrors",
          "warning",
          `sum by (controller) (rate(controller_runtime_reconcile_errors_total{${job}}[5m])) / ` +
            `sum by (controller) (rate(controller_runtime_reconcile_total{${job}}[5m])) > 0.1`,
          "15m",
          "The {{ $labels.controller }} controller fails more than 10% of its reconciles.",
          "{{ $value | humanizePercentage }} of the {{ $labels.controller }} controller's reconciles failed over " +
            "15 minutes; they are retried with backoff.",
        ),
        alert(
          "NextgenReconcilePanics",
          "warning",
          `sum by (controller) (increase(controller_runtime_terminal_reconcile_errors_total{${job}}[10m])) > 0`,
          "0m",
          "The {{ $labels.controller }} controller hit an error it will not retry.",
          "{{ $value }} reconciles of the {{ $labels.controller }} controller ended in a terminal error (an " +
            "exception it cannot retry) in 10 minutes.",
        ),
        alert(
          "NextgenWorkQueueGrowing",
          "warning",
          `sum by (controller) (workqueue_depth{${job}}) > 100 and ` +
            `sum by (controller) (delta(workqueue_depth{${job}}[15m])) > 0`,
          "15m",
          "The {{ $labels.controller }} work queue keeps growing.",
          "{{ $value }} keys wait in the {{ $labels.controller }} work queue and the queue has grown for 15 " +
            "minutes: the controller cannot keep up.",
        ),
      ],
    },
    {
      name: "nextgen-operator-kinds",
      rules: [
        alert(
          "NextgenPQKeySetRotationOverdue",
          "warning",
          `time() - nextgen_pqkeyset_next_rotation_timestamp_seconds{${job}} > 3600`,
          "10m",
          "PQKeySet {{ $labels.namespace }}/{{ $labels.name }} is more than an hour past its rotation.",
          "PQKeySet {{ $labels.namespace }}/{{ $labels.name }} was due to rotate {{ $value | humanizeDuration }} " +
            "ago and has not.",
        ),
        alert(
          "NextgenPQKeySetRotationFailing",
          "warning",
          `sum(rate(controller_runtime_reconcile_errors_total{${job},controller="pqkeyset"}[15m])) > 0`,
          "30m",
          "PQKeySet reconciles have been failing for 30 minutes.",
          "The pqkeyset controller has failed reconciles for 30 minutes: rotations may not be happening.",
        ),
        alert(
          "NextgenEdgeSitesPartitioned",
          "warning",
          `sum by (tier) (nextgen_edgenode_sites{${job},phase="Partitioned"}) > 0`,
          "5m",
          "{{ $value }} {{ $labels.tier }} site(s) are Partitioned.",
          "{{ $value }} EdgeNode(s) of tier {{ $labels.tier }} have been Partitioned for 5 minutes: their members " +
            "answer their parent's probes no more.",
        ),
        alert(
          "NextgenEdgeSitesOffline",
          "critical",
          `sum by (tier) (nextgen_edgenode_sites{${job},phase="Offline"}) > 0`,
          "10m",
          "{{ $value }} {{ $labels.tier }} site(s) are Offline.",
          "{{ $value }} EdgeNode(s) of tier {{ $labels.tier }} have had no Ready member for 10 minutes.",
        ),
        alert(
          "NextgenQuantumJobFailureRate",
          "warning",
          `sum(rate(nextgen_quantumjob_finished_total{${job},phase="Failed"}[30m])) / ` +
            `sum(rate(nextgen_quantumjob_finished_total{${job}}[30m])) > 0.2`,
          "15m",
          "More than 20% of QuantumJobs fail.",
          "{{ $value | humanizePercentage }} of the QuantumJobs that ended in the last 30 minutes failed.",
        ),
        alert(
          "NextgenQuantumJobQueueWaitHigh",
          "warning",
          `histogram_quantile(0.9, sum by (le, backend_type) ` +
            `(rate(nextgen_quantumjob_queue_wait_seconds_bucket{${job}}[30m]))) > 900`,
          "30m",
          "QuantumJobs on {{ $labels.backend_type }} backends wait more than 15 minutes to start.",
          "The 90th percentile wait from creation to start on {{ $labels.backend_type }} backends is " +
            "{{ $value | humanizeDuration }} (deferral by a CarbonBudget counts too).",
        ),
        alert(
          "NextgenQuantumBackendUnavailableWithQueue",
          "warning",
          `max by (backend) (nextgen_quantumbackend_queued_jobs{${job}}) > 0 and ` +
            `max by (backend) (nextgen_quantumbackend_ready{${job}}) == 0`,
          "15m",
          "QuantumBackend {{ $labels.backend }} is not Ready and has jobs queued.",
          "QuantumBackend {{ $labels.backend }} has been Unavailable for 15 minutes with {{ $value }} QuantumJob(s) " +
            "queued for it: they wait until it is Ready again.",
        ),
        alert(
          "NextgenRemediationStorm",
          "warning",
          `sum by (namespace, policy) (increase(nextgen_remediation_actions_total{${job},result="Held"}[15m])) > 0`,
          "15m",
          "RemediationPolicy {{ $labels.namespace }}/{{ $labels.policy }} is in a storm.",
          "Brakes of RemediationPolicy {{ $labels.namespace }}/{{ $labels.policy }} have held actions back for " +
            "15 minutes ({{ $value }} in the last 15): more is failing than it may heal.",
        ),
        alert(
          "NextgenRemediationActingRepeatedly",
          "warning",
          `sum by (namespace, policy) (increase(nextgen_remediation_actions_total{${job},result="Succeeded"}[1h])) > 10`,
          "0m",
          "RemediationPolicy {{ $labels.namespace }}/{{ $labels.policy }} acted more than 10 times in an hour.",
          "RemediationPolicy {{ $labels.namespace }}/{{ $labels.policy }} took {{ $value }} actions in an hour: " +
            "it heals a symptom whose cause persists.",
        ),
        alert(
          "NextgenCarbonBudgetProjectedToRunOut",
          "warning",
          `nextgen_carbon_projected_grams{${job}} > on (namespace, budget) nextgen_carbon_budget_grams{${job}}`,
          "30m",
          "CarbonBudget {{ $labels.namespace }}/{{ $labels.budget }} will run out before its window ends.",
          "At its latest rate CarbonBudget {{ $labels.namespace }}/{{ $labels.budget }} ends the window at " +
            "{{ $value | humanize }} g, over its budget.",
        ),
        alert(
          "NextgenCarbonIntensityStale",
          "warning",
          `nextgen_carbon_intensity_stale{${job}} == 1`,
          "15m",
          "CarbonBudget {{ $labels.namespace }}/{{ $labels.budget }} has no fresh grid intensity.",
          "The intensity source of CarbonBudget {{ $labels.namespace }}/{{ $labels.budget }} has failed or " +
            "served old data for 15 minutes: it accounts with the last value or 400 g/kWh.",
        ),
      ],
    },
    ...SLOS.map(sloGroup),
  ];
}
