import { parseDuration } from "../../crds/duration.ts";
import type { ModelRef, RemediationPolicy, Trigger, TriggerState } from "../../crds/remediationpolicy.ts";
import type { AlertStore } from "../../remediation/alerts.ts";
import type { PodHistory, Sustained } from "../../remediation/pod-history.ts";
import type { QueryResult, RangeResult } from "../../prometheus/query.ts";
import { forecastCrossing } from "../../anomaly/forecast.ts";
import type { ScoreResult } from "./anomaly.ts";
import { objectKey } from "../../runtime/objects.ts";
import { type Pod, type Workload, isReady } from "./workloads.ts";

/** A trigger's verdict on one workload. pods: the pods it points at (for pod-level actions); empty: the workload. */
export interface Signal {
  state: TriggerState;
  reason: string;
  message: string;
  pods: Pod[];
  /** When a `for` still running would make it fire, ms from now; for the requeue. */
  pendingMs?: number;
}

/** Scores pods with a model, one score per pod in order, or says why it cannot. */
export type AnomalyScorer = (
  policy: RemediationPolicy,
  model: ModelRef,
  pods: Pod[],
  now: number,
) => Promise<ScoreResult>;

export interface SignalSources {
  history: PodHistory;
  alerts: AlertStore;
  sustained: Sustained;
  scoreAnomaly: AnomalyScorer;
  query: (url: string, promql: string) => Promise<QueryResult>;
  queryRange: (
    url: string,
    promql: string,
    end: number,
    rangeSeconds: number,
    stepSeconds: number,
  ) => Promise<RangeResult>;
}

const clear = (message: string): Signal => ({ state: "Clear", reason: "Healthy", message, pods: [] });
const firing = (reason: string, message: string, pods: Pod[] = []): Signal => ({
  state: "Firing",
  reason,
  message,
  pods,
});
const unknown = (reason: string, message: string): Signal => ({ state: "Unknown", reason, message, pods: [] });

/** `for`: holds is true now; answers Firing once it has held for forMs, else Clear with the time left. */
function sustain(src: SignalSources, key: string, holds: boolean, forMs: number, now: number) {
  const since = src.sustained.update(key, holds, now);
  if (since === undefined) return { fires: false };
  const left = since + forMs - now;
  return left <= 0 ? { fires: true } : { fires: false, pendingMs: left };
}

/** Evaluates one trigger on one workload. Missing data is Unknown, never Firing. */
export async function evaluate(
  src: SignalSources,
  policy: RemediationPolicy,
  trigger: Trigger,
  w: Workload,
  now: number,
): Promise<Signal> {
  const key = `${objectKey(policy)}/${trigger.name}/${w.key}`;
  if (trigger.crashLoop) {
    const windowMs = parseDuration(trigger.crashLoop.window);
    const hit = w.pods.filter((p) => src.history.restartsWithin(p, windowMs, now) >= trigger.crashLoop!.restarts);
    return hit.length
      ? firing(
          "CrashLoop",
          `${hit.length} pod(s) restarted ${trigger.crashLoop.restarts}+ times in ${trigger.crashLoop.window}: ${names(hit)}`,
          hit,
        )
      : clear(`no pod restarted ${trigger.crashLoop.restarts} times in ${trigger.crashLoop.window}`);
  }
  if (trigger.oomKilled) {
    const windowMs = parseDuration(trigger.oomKilled.window);
    const hit = w.pods.filter((p) => src.history.oomKillsWithin(p, windowMs, now) >= trigger.oomKilled!.count);
    return hit.length
      ? firing("OOMKilled", `${hit.length} pod(s) OOMKilled in ${trigger.oomKilled.window}: ${names(hit)}`, hit)
      : clear(`no OOM kill in ${trigger.oomKilled.window}`);
  }
  if (trigger.unavailable) {
    const unavailable = Math.max(0, w.desired - w.available);
    const ratio = w.desired ? unavailable / w.desired : 0;
    const bound = Number(trigger.unavailable.ratio);
    const s = sustain(src, key, w.desired > 0 && ratio >= bound, parseDuration(trigger.unavailable.for), now);
    const what = `${unavailable} of ${w.desired} replicas unavailable`;
    if (s.fires)
      return firing(
        "Unavailable",
        `${what} for ${trigger.unavailable.for}`,
        w.pods.filter((p) => !isReady(p)),
      );
    return { ...clear(what), pendingMs: s.pendingMs };
  }
  if (trigger.prometheus) return evaluateQuery(src, policy, trigger.prometheus, w, key, now);
  if (trigger.alert) {
    const alerts = src.alerts
      .matching(trigger.alert.alertname, trigger.alert.matchLabels)
      .filter((a) => !a.labels.namespace || a.labels.namespace === w.obj.metadata.namespace);
    if (!alerts.length) return clear(`${trigger.alert.alertname} is not firing`);
    const pods = w.pods.filter((p) => alerts.some((a) => a.labels.pod === p.metadata.name));
    // An alert naming pods of other workloads is not this workload's; one naming no pod is the workload's.
    if (!pods.length && alerts.every((a) => a.labels.pod))
      return clear(`${trigger.alert.alertname} fires for other pods`);
    return firing("AlertFiring", `${trigger.alert.alertname} is firing (${alerts.length} alert(s))`, pods);
  }
  if (trigger.anomaly) {
    const a = trigger.anomaly;
    if (!w.pods.length) return clear("no pods to score");
    const result = await src.scoreAnomaly(policy, a.model, w.pods, now);
    if (!result.ok) {
      src.sustained.update(key, false, now);
      return unknown(result.reason, result.message);
    }
    const threshold = Number(a.threshold);
    const forMs = parseDuration(a.for);
    const hit: Pod[] = [];
    let pendingMs: number | undefined;
    const kept = new Set<string>();
    w.pods.forEach((p, i) => {
      const podKey = `${key}/${p.metadata.name}`;
      kept.add(podKey);
      const s = sustain(src, podKey, (result.scores[i] ?? 0) > threshold, forMs, now);
      if (s.fires) hit.push(p);
      else if (s.pendingMs !== undefined) pendingMs = Math.min(pendingMs ?? s.pendingMs, s.pendingMs);
    });
    src.sustained.retain(`${key}/`, kept);
    return hit.length
      ? firing("Anomalous", `${hit.length} pod(s) scored above ${a.threshold} for ${a.for}: ${names(hit)}`, hit)
      : { ...clear(`no pod scored above ${a.threshold} for ${a.for}`), pendingMs };
  }
  return unknown("InvalidTrigger", `trigger ${trigger.name} sets no symptom`);
}

/**
 * A PromQL trigger. Samples naming a pod of the workload are that pod's; samples naming no pod are the workload's.
 * With forecast, each series' trend over the lookback is extended over the horizon, and reaching the bound there
 * counts as crossing it now.
 */
async function evaluateQuery(
  src: SignalSources,
  policy: RemediationPolicy,
  p: NonNullable<Trigger["prometheus"]>,
  w: Workload,
  key: string,
  now: number,
): Promise<Signal> {
  const url = policy.spec.prometheus?.url;
  if (!url) return unknown("NoPrometheus", "spec.prometheus.url is not set");
  const podNames = new Set(w.pods.map((x) => x.metadata.name));
  const mine = (labels: Record<string, string>) => (labels.pod ? podNames.has(labels.pod) : true);
  let bad: Array<Record<string, string>>;
  let seen: number;
  let bound = p.above !== undefined ? `above ${p.above}` : `below ${p.below}`;
  if (p.forecast) {
    const lookbackS = parseDuration(p.forecast.lookback) / 1000;
    const horizonS = parseDuration(p.forecast.horizon) / 1000;
    const result = await src.queryRange(url, p.query, now, lookbackS, Math.max(1, Math.round(lookbackS / 60)));
    if (!result.ok) return fail(src, key, now, result);
    const series = result.series.filter((s) => mine(s.labels));
    seen = series.length;
    bad = series
      .filter((s) => forecastCrossing(s.points, Number(p.above), horizonS)?.crossesWithinHorizon)
      .map((s) => s.labels);
    bound = `trending ${bound} within ${p.forecast.horizon}`;
  } else {
    const result = await src.query(url, p.query);
    if (!result.ok) return fail(src, key, now, result);
    const samples = result.samples.filter((s) => mine(s.labels));
    seen = samples.length;
    bad = samples
      .filter((s) => (p.above !== undefined ? s.value > Number(p.above) : s.value < Number(p.below)))
      .map((s) => s.labels);
  }
  if (!seen) {
    src.sustained.update(key, false, now);
    return unknown("NoData", `no sample of the query names a pod of ${w.key}`);
  }
  const s = sustain(src, key, bad.length > 0, parseDuration(p.for), now);
  // Messages leave out the values: they move with every scrape, and status is written only when it changes.
  if (s.fires) {
    const pods = w.pods.filter((x) => bad.some((labels) => labels.pod === x.metadata.name));
    return firing("Threshold", `${bad.length} series ${bound} for ${p.for}`, pods);
  }
  return { ...clear(`no series ${bound} for ${p.for}`), pendingMs: s.pendingMs };
}

function fail(src: SignalSources, key: string, now: number, f: { reason: string; message: string }): Signal {
  src.sustained.update(key, false, now);
  return unknown(f.reason, f.message);
}

function names(pods: Pod[]): string {
  const shown = pods.slice(0, 5).map((p) => p.metadata.name);
  return pods.length > 5 ? `${shown.join(", ")} and ${pods.length - 5} more` : shown.join(", ");
}
