import { parseDuration } from "../../crds/duration.ts";
import {
  ACTION_NAMES,
  ACTION_TYPES,
  type Action,
  type ActionType,
  type HistoryEntry,
  type HistoryResult,
  type Incident,
  type ResolvedIncident,
  MAX_HISTORY,
  MAX_INCIDENTS,
  PAUSED_ANNOTATION,
  type RemediationPolicy,
  RemediationPolicyKind,
  type RemediationPolicyStatus,
  type ScaledRecord,
  type WorkloadKind,
} from "../../crds/remediationpolicy.ts";
import { AlertStore, activeAlerts } from "../../remediation/alerts.ts";
import {
  type Brakes,
  checkBrakes,
  choosePods,
  concurrencyLeft,
  type Hold,
  decideIncident,
  startingStep,
  minAvailableCount,
} from "../../remediation/ladder.ts";
import { PodHistory, Sustained } from "../../remediation/pod-history.ts";
import { instantQuery, rangeQuery } from "../../prometheus/query.ts";
import type { Cache } from "../../runtime/cache.ts";
import { type ReconcileContext, defineController } from "../../runtime/controller.ts";
import {
  ConfigMapKind,
  DeploymentKind,
  HorizontalPodAutoscalerKind,
  NamespaceKind,
  NetworkPolicyKind,
  NodeKind,
  PodKind,
  ReplicaSetKind,
  ScaledObjectKind,
  StatefulSetKind,
} from "../../runtime/kinds.ts";
import { type KubeObject, objectKey } from "../../runtime/objects.ts";
import { endpointProblem } from "../shared/endpoints.ts";
import type { ScaledObject } from "../shared/keda.ts";
import { setReplicas } from "../shared/replicas.ts";
import { type ActionOutcome, cordonedBy, runAction, setHpaMin, setScaledObjectMin, uncordon } from "./actions.ts";
import { NODE_ACTIONS_LABEL, type NodeGateLimits, checkNodeGate } from "../../remediation/node-gate.ts";
import { scorePods } from "./anomaly.ts";
import { remediationMetrics } from "./metrics.ts";
import { type Signal, type SignalSources, evaluate } from "./signals.ts";
import { type Hpa, type Pod, type Workload, covers, isReady, policiesInNamespace, workloadsOf } from "./workloads.ts";

const FINALIZER = "nextgen.itechsmart.io/restore-replicas";
/** The longest window a crashLoop or oomKilled trigger may count over; longer ones are cut to it. */
const HISTORY_KEEP_MS = 24 * 3_600_000;
const FORGET_UNSEEN_MS = 3_600_000;
/**
 * How often a policy with open incidents or anomaly triggers looks again with no event: restart counts age out
 * of their windows, and scores move with time not Ready.
 */
const WINDOW_RECHECK_MS = 30_000;
/** An incident whose last action failed (its message says how) is held by this until the retry works. */
const ACTION_FAILED = "ActionFailed";
const ACTION_RETRY_MS = 30_000;
const POD_ACTIONS: ReadonlySet<ActionType> = new Set(["restartPod", "quarantine", "drainNode"]);

/** Alerts from Alertmanager's webhook, served by the manager (see cli/run.ts) on every replica. */
export const alertStore = new AlertStore();

type Node = KubeObject & {
  spec?: { unschedulable?: boolean };
  status?: { conditions?: Array<{ type: string; status: string }> };
};

/** Brakes a Node's change can release: policies held by them look again when a Node changes. */
const NODE_BRAKES = new Set(["MaxUnschedulableNodes", "NodeStorm"]);

/** The operator's bounds on node actions (flags of `run`; see src/remediation/node-gate.ts), the same in every replica. */
export const nodeGateLimits: NodeGateLimits = { maxUnschedulable: "10%", stormThreshold: "30%" };
const podHistory = new PodHistory(HISTORY_KEEP_MS);
const sustained = new Sustained();

const actionType = (a: Action): ActionType => ACTION_TYPES.find((t) => a[t] !== undefined) as ActionType;

/** Whether a pod has run: Ready now, or its containers ran and terminated (a crash loop's later rounds). */
function hasComeUp(pod: Pod): boolean {
  return (
    isReady(pod) ||
    (pod.status?.containerStatuses ?? []).some((c) => (c.restartCount ?? 0) > 0 || c.lastState?.terminated)
  );
}

/** The workload a pod belongs to: a StatefulSet, or the Deployment of its ReplicaSet. */
function workloadOfPod(pod: KubeObject, cache: Cache): { kind: WorkloadKind; obj: KubeObject } | undefined {
  const owner = pod.metadata.ownerReferences?.find((o) => o.controller);
  const ns = pod.metadata.namespace;
  if (owner?.kind === "StatefulSet") {
    const obj = cache.get(StatefulSetKind, ns, owner.name);
    return obj ? { kind: "StatefulSet", obj } : undefined;
  }
  if (owner?.kind !== "ReplicaSet") return undefined;
  const rs = cache.get(ReplicaSetKind, ns, owner.name);
  const dep = rs?.metadata.ownerReferences?.find((o) => o.controller && o.kind === "Deployment");
  const obj = dep ? cache.get(DeploymentKind, ns, dep.name) : undefined;
  return obj ? { kind: "Deployment", obj } : undefined;
}

function policiesCovering(kind: WorkloadKind, obj: KubeObject, cache: Cache): string[] {
  return policiesInNamespace(cache, obj.metadata.namespace)
    .filter((p) => covers(p, kind, obj))
    .map(objectKey);
}

/**
 * Heals the workloads a RemediationPolicy covers: evaluates its triggers on each, opens an incident per workload
 * and firing trigger, walks the escalation ladder within the brakes, verifies each step over its timeout,
 * undoes scale-ups that did not help and restores replica counts once healthy; reports all of it in status.
 */
export const remediationPolicyController = defineController<RemediationPolicy>({
  name: "remediationpolicy",
  for: RemediationPolicyKind,
  owns: [NetworkPolicyKind],
  watches: [
    {
      kind: PodKind,
      map: (pod, cache) => {
        const w = workloadOfPod(pod, cache);
        return w ? policiesCovering(w.kind, w.obj, cache) : [];
      },
    },
    { kind: DeploymentKind, map: (obj, cache) => policiesCovering("Deployment", obj, cache) },
    { kind: StatefulSetKind, map: (obj, cache) => policiesCovering("StatefulSet", obj, cache) },
    // Read for rollbacks and to find a pod's Deployment; their own changes show in the Deployment's status.
    { kind: ReplicaSetKind, map: () => [] },
    // Read for node actions: the bound and the storm gate count Nodes; a Namespace's label grants node actions.
    {
      kind: NodeKind,
      map: (_node, cache) =>
        cache
          .list<RemediationPolicy>(RemediationPolicyKind)
          .filter((p) => p.status?.incidents?.some((i) => i.heldBy && NODE_BRAKES.has(i.heldBy)))
          .map(objectKey),
    },
    { kind: NamespaceKind, map: (ns, cache) => policiesInNamespace(cache, ns.metadata.name).map(objectKey) },
    {
      kind: HorizontalPodAutoscalerKind,
      map: (obj, cache) => {
        const ref = (obj as Hpa).spec.scaleTargetRef;
        if (ref.kind !== "Deployment" && ref.kind !== "StatefulSet") return [];
        const target = cache.get(
          ref.kind === "Deployment" ? DeploymentKind : StatefulSetKind,
          obj.metadata.namespace,
          ref.name,
        );
        return target ? policiesCovering(ref.kind, target, cache) : [];
      },
    },
    {
      kind: ConfigMapKind,
      map: (cm, cache) =>
        policiesInNamespace(cache, cm.metadata.namespace)
          .filter((p) => p.spec.triggers.some((t) => t.anomaly?.model.configMapRef?.name === cm.metadata.name))
          .map(objectKey),
    },
  ],
  rbac: [
    { apiGroups: [""], resources: ["pods"], verbs: ["delete", "patch"] },
    { apiGroups: [""], resources: ["pods/eviction"], verbs: ["create"] },
    { apiGroups: [""], resources: ["nodes"], verbs: ["patch"] },
    { apiGroups: ["apps"], resources: ["deployments", "statefulsets"], verbs: ["patch"] },
    { apiGroups: ["apps"], resources: ["deployments/scale", "statefulsets/scale"], verbs: ["patch"] },
    { apiGroups: ["autoscaling"], resources: ["horizontalpodautoscalers"], verbs: ["patch"] },
    // ... or on the KEDA ScaledObject that owns it (read directly: KEDA need not be installed).
    { apiGroups: ["keda.sh"], resources: ["scaledobjects"], verbs: ["get", "patch"] },
    // Server-side apply creates the quarantine NetworkPolicy the first time.
    { apiGroups: ["networking.k8s.io"], resources: ["networkpolicies"], verbs: ["create", "patch"] },
  ],
  maxConcurrentReconciles: 4,
  start(enqueue, cache) {
    // An alert reaches the policies with an alert trigger of its name, in its namespace (or everywhere).
    return alertStore.onChange((alerts) => {
      const names = new Set(alerts.map((a) => a.labels.alertname));
      const ns = alerts.map((a) => a.labels.namespace);
      for (const p of cache.list<RemediationPolicy>(RemediationPolicyKind)) {
        if (!p.spec.triggers.some((t) => t.alert && names.has(t.alert.alertname))) continue;
        if (ns.every((n) => n && n !== p.metadata.namespace)) continue;
        enqueue(objectKey(p));
      }
    });
  },

  metrics: remediationMetrics,
  async reconcile(ctx, policy) {
    if (policy.metadata.deletionTimestamp) {
      await restoreAll(ctx, policy);
      await ctx.removeFinalizer(policy, FINALIZER);
      return;
    }
    policy = await ctx.addFinalizer(policy, FINALIZER);
    const status = ctx.status<RemediationPolicyStatus>(policy);
    const problem = specProblem(policy);
    if (problem) {
      status.condition("Ready", "False", "InvalidSpec", problem);
      return;
    }
    const denied = endpointProblem(policyEndpoints(policy));
    if (denied) {
      status.condition("Ready", "False", denied.reason, denied.message);
      return;
    }
    const now = ctx.now.getTime();
    const workloads = workloadsOf(policy, ctx.cache);
    for (const w of workloads) for (const p of w.pods) podHistory.observe(p, now);
    // Every pod is seen at least at each informer resync (10 min): one unseen for longer is gone.
    podHistory.forgetUnseen(now - FORGET_UNSEEN_MS);

    const signals = await evaluateTriggers(ctx, policy, workloads, now);
    const run = new PolicyRun(ctx, policy, workloads, signals, now);
    await run.incidents();
    await run.restoreHealthy();
    run.report(status);

    const requeue = [run.nextLookMs, ...[...signals.values()].flatMap((m) => [...m.values()].map((s) => s.pendingMs))];
    if (policy.spec.prometheus && policy.spec.triggers.some((t) => t.prometheus || t.anomaly))
      requeue.push(parseDuration(policy.spec.prometheus.interval ?? "15s"));
    if (policy.spec.alertmanager && policy.spec.triggers.some((t) => t.alert))
      requeue.push(parseDuration(policy.spec.alertmanager.interval ?? "15s"));
    if (run.incidentsOut.length || policy.spec.triggers.some((t) => t.anomaly)) requeue.push(WINDOW_RECHECK_MS);
    const next = requeue.filter((x): x is number => x !== undefined && x >= 0);
    return next.length ? { requeueAfterMs: Math.max(100, Math.min(...next)) } : undefined;
  },
});

/** What CEL cannot check (stored objects predating a rule are checked again here). */
function specProblem(policy: RemediationPolicy): string | undefined {
  try {
    minAvailableCount(policy.spec.safety.minAvailable, 1);
  } catch (e) {
    return `spec.safety.minAvailable: ${(e as Error).message}`;
  }
  if (!policy.spec.targetRef === !policy.spec.selector) return "set exactly one of spec.targetRef or spec.selector.";
  return undefined;
}

/** The URLs the policy has the operator send requests to, by field. */
function policyEndpoints(policy: RemediationPolicy): Array<{ field: string; url: string }> {
  const { prometheus, alertmanager } = policy.spec;
  return [
    ...(prometheus ? [{ field: "spec.prometheus.url", url: prometheus.url }] : []),
    ...(alertmanager ? [{ field: "spec.alertmanager.url", url: alertmanager.url }] : []),
  ];
}

async function evaluateTriggers(
  ctx: ReconcileContext,
  policy: RemediationPolicy,
  workloads: Workload[],
  now: number,
): Promise<Map<string, Map<string, Signal>>> {
  const scoring = remediationMetrics(ctx.registry).scoring;
  const askedAlertmanager = new Map<string, ReturnType<typeof activeAlerts>>();
  const sources: SignalSources = {
    history: podHistory,
    alerts: alertStore,
    activeAlerts: (url) => {
      let answer = askedAlertmanager.get(url);
      if (!answer) askedAlertmanager.set(url, (answer = activeAlerts(url)));
      return answer;
    },
    sustained,
    query: instantQuery,
    queryRange: rangeQuery,
    scoreAnomaly: (p, anomaly, pods, at) =>
      scorePods(p, anomaly, pods, podHistory, ctx.cache, at, (name, seconds) =>
        scoring.observe({ model: name }, seconds),
      ),
  };
  const out = new Map<string, Map<string, Signal>>();
  for (const t of policy.spec.triggers) {
    const byWorkload = new Map<string, Signal>();
    for (const w of workloads) {
      try {
        byWorkload.set(w.key, await evaluate(sources, policy, t, w, now));
      } catch (e) {
        ctx.log.warn("trigger evaluation failed", { trigger: t.name, target: w.key, error: (e as Error).message });
        byWorkload.set(w.key, {
          state: "Unknown",
          reason: "EvaluationFailed",
          message: (e as Error).message,
          pods: [],
        });
      }
    }
    out.set(t.name, byWorkload);
  }
  return out;
}

/** One reconcile's pass over a policy's incidents, scaled records and brakes, collecting status as it goes. */
class PolicyRun {
  readonly incidentsOut: Incident[];
  readonly history: HistoryEntry[];
  readonly scaled: ScaledRecord[];
  readonly recent: Array<{ time: string; target: string }>;
  readonly resolved: ResolvedIncident[];
  nextLookMs: number | undefined;
  private readonly brakes: Brakes;
  private readonly dryRun: boolean;
  private readonly paused: boolean;
  private readonly ctx: ReconcileContext;
  private readonly policy: RemediationPolicy;
  private readonly workloads: Map<string, Workload>;
  private readonly signals: Map<string, Map<string, Signal>>;
  private readonly now: number;
  private readonly recurrenceWindowMs: number;

  constructor(
    ctx: ReconcileContext,
    policy: RemediationPolicy,
    workloads: Workload[],
    signals: Map<string, Map<string, Signal>>,
    now: number,
  ) {
    this.ctx = ctx;
    this.policy = policy;
    this.workloads = new Map(workloads.map((w) => [w.key, w]));
    this.signals = signals;
    this.now = now;
    const s = policy.spec.safety;
    this.brakes = {
      maxConcurrent: s.maxConcurrent,
      cooldownMs: parseDuration(s.cooldown),
      maxActionsPerHour: s.maxActionsPerHour,
      minAvailable: s.minAvailable,
    };
    this.dryRun = policy.spec.mode === "DryRun";
    this.paused = policy.metadata.annotations?.[PAUSED_ANNOTATION] === "true";
    const st = policy.status ?? {};
    this.incidentsOut = structuredClone(st.incidents ?? []);
    this.history = structuredClone(st.history ?? []);
    this.scaled = structuredClone(st.scaled ?? []);
    this.recent = structuredClone(st.recentActions ?? []);
    this.recurrenceWindowMs = parseDuration(policy.spec.recurrenceWindow);
    // What resolved longer ago than the window is forgotten.
    this.resolved = structuredClone(st.resolved ?? []).filter(
      (r) => now - Date.parse(r.resolvedAt) <= this.recurrenceWindowMs,
    );
  }

  private lookAgainIn(ms: number): void {
    const at = Math.max(0, ms); // what is already due is looked at again at once
    this.nextLookMs = Math.min(this.nextLookMs ?? at, at);
  }

  private record(target: string, trigger: string, action: string, result: HistoryResult, message: string): void {
    this.history.push({ time: new Date(this.now).toISOString(), target, trigger, action, result, message });
    if (this.history.length > MAX_HISTORY) this.history.splice(0, this.history.length - MAX_HISTORY);
    const m = remediationMetrics(this.ctx.registry);
    m.actions.inc({ namespace: this.policy.metadata.namespace, policy: this.policy.metadata.name, action, result });
    const note = `${target} (${trigger}): ${message}`;
    if (result === "Failed" || result === "Held" || result === "Exhausted" || result === "Reverted")
      this.ctx.events.warning(this.policy, result === "Held" ? "ActionHeld" : `${action}${result}`, note);
    else this.ctx.events.normal(this.policy, result === "DryRun" ? `DryRun${action}` : `${action}${result}`, note);
  }

  /** Pods or objects acted on and not yet verified, across the policy's incidents. */
  private inFlight(): number {
    let n = 0;
    for (const inc of this.incidentsOut) n += this.inFlightOf(inc);
    return n;
  }

  /**
   * A pod-level step's acted pods are in flight until as many of the workload's pods created since the step began
   * have come up (Ready, or run and crashed since): each acted pod (deleted, quarantined or evicted) is then
   * replaced, and whether the replacement is healthy is the step's verification, not the brake's. A
   * workload-level step is one in flight while it is verified.
   */
  private inFlightOf(inc: Incident): number {
    if (!inc.stepStartTime) return 0;
    const action = this.policy.spec.actions[inc.step];
    if (!action) return 0;
    const started = Date.parse(inc.stepStartTime);
    if (this.now - started >= parseDuration(action.timeout)) return 0;
    if (!POD_ACTIONS.has(actionType(action))) return 1;
    const w = this.workloads.get(inc.target);
    if (!w) return 0;
    // Creation times are whole seconds: a replacement made within the step's first second counts.
    const replaced = w.pods.filter(
      (p) => Date.parse(p.metadata.creationTimestamp ?? "") >= started - 1000 && hasComeUp(p),
    ).length;
    return Math.max(0, (inc.pods?.length ?? 0) - replaced);
  }

  async incidents(): Promise<void> {
    // Open: one incident per workload and firing trigger.
    for (const [trigger, byWorkload] of this.signals)
      for (const [target, s] of byWorkload) {
        if (s.state !== "Firing") continue;
        if (this.incidentsOut.some((i) => i.target === target && i.trigger === trigger)) continue;
        if (this.incidentsOut.length >= MAX_INCIDENTS) break;
        this.open(target, trigger, s);
      }
    // Progress each, oldest first, so that brakes favour what has waited longest.
    for (const inc of [...this.incidentsOut]) await this.progress(inc);
  }

  /** A new incident, resuming its ladder when it recurs within spec.recurrenceWindow of the last one resolving. */
  private open(target: string, trigger: string, signal: Signal): void {
    const i = this.resolved.findIndex((r) => r.target === target && r.trigger === trigger);
    const last = this.resolved[i];
    if (last) this.resolved.splice(i, 1);
    const { step, recurrences } = startingStep(
      last && { ...last, resolvedAt: Date.parse(last.resolvedAt) },
      this.now,
      this.recurrenceWindowMs,
    );
    const actions = this.policy.spec.actions;
    // Past the last step, the step stays there (nothing acts) and the action named is the last one's.
    const inc: Incident = {
      target,
      trigger,
      since: new Date(this.now).toISOString(),
      step,
      attempts: 0,
      action: ACTION_NAMES[actionType(actions[Math.min(step, actions.length - 1)] as Action)],
      message: signal.message,
      ...(recurrences && { recurrences }),
    };
    this.incidentsOut.push(inc);
    if (step >= actions.length) {
      inc.heldBy = "Exhausted";
      inc.message = `came back within ${this.policy.spec.recurrenceWindow} of resolving after the last step (recurrence ${recurrences}): ${signal.message}`;
      this.record(target, trigger, inc.action ?? "None", "Exhausted", inc.message);
    }
  }

  private close(inc: Incident): void {
    this.incidentsOut.splice(this.incidentsOut.indexOf(inc), 1);
  }

  private async progress(inc: Incident): Promise<void> {
    const w = this.workloads.get(inc.target);
    const signal = this.signals.get(inc.trigger)?.get(inc.target);
    if (!w || !signal) {
      // The workload or the trigger is gone.
      await this.releaseNodes(inc);
      return this.close(inc);
    }
    const actions = this.policy.spec.actions;
    const action = actions[inc.step];
    const decision = decideIncident(
      {
        state: signal.state,
        step: inc.step,
        steps: actions.length,
        stepActedAt: inc.stepStartTime ? Date.parse(inc.stepStartTime) : undefined,
        stepTimeoutMs: action ? parseDuration(action.timeout) : 0,
      },
      this.now,
    );
    if (inc.stepStartTime && action)
      this.lookAgainIn(Date.parse(inc.stepStartTime) + parseDuration(action.timeout) - this.now);
    const actionName = inc.action ?? "None";
    switch (decision) {
      case "wait":
        return;
      case "resolve":
        if (inc.attempts > 0 || inc.heldBy === "Exhausted") {
          if (inc.attempts > 0)
            this.record(inc.target, inc.trigger, actionName, "Resolved", `cleared: ${signal.message}`);
          this.resolved.push({
            target: inc.target,
            trigger: inc.trigger,
            step: inc.heldBy === "Exhausted" ? actions.length - 1 : inc.step,
            resolvedAt: new Date(this.now).toISOString(),
            ...(inc.recurrences && { recurrences: inc.recurrences }),
          });
          if (this.resolved.length > MAX_INCIDENTS) this.resolved.shift();
        }
        await this.releaseNodes(inc);
        return this.close(inc);
      case "exhausted":
        if (inc.heldBy !== "Exhausted") {
          if (action && actionType(action) === "scale") await this.revertScale(w, inc);
          inc.heldBy = "Exhausted";
          inc.message = `no step cleared it: ${signal.message}`;
          this.record(inc.target, inc.trigger, actionName, "Exhausted", inc.message);
        }
        return;
      case "escalate": {
        if (action && actionType(action) === "scale") await this.revertScale(w, inc);
        inc.step++;
        inc.action = ACTION_NAMES[actionType(actions[inc.step] as Action)];
        inc.stepStartTime = undefined;
        inc.pods = undefined;
        inc.heldBy = undefined;
        return this.act(inc, w, signal);
      }
      case "act":
        return this.act(inc, w, signal);
    }
  }

  private async act(inc: Incident, w: Workload, signal: Signal): Promise<void> {
    const action = this.policy.spec.actions[inc.step] as Action;
    const type = actionType(action);
    const name = ACTION_NAMES[type];
    // A workload-level step acts once and is then verified; a pod-level one takes on more pods as others settle.
    if (inc.stepStartTime && !POD_ACTIONS.has(type)) return;
    if (this.paused) return this.hold(inc, "Paused", "the policy is paused (annotation nextgen.itechsmart.io/paused).");

    // Pods acted on count as unavailable even where the cache still shows them Ready: it lags the deletions this
    // very policy just made (as the ReplicaSet controller's expectations account for its own).
    const actedOn = new Set(this.incidentsOut.filter((i) => i.target === w.key).flatMap((i) => i.pods ?? []));
    const available = w.pods.filter((p) => isReady(p) && !actedOn.has(p.metadata.name)).length;
    let pods: Pod[] = [];
    if (POD_ACTIONS.has(type)) {
      // Pods made since the step began are what it brought (replacements): whether they are sick too is the
      // step's verdict, not more work for it, so the ladder moves on if they are.
      const acted = new Set(inc.pods ?? []);
      const stepStart = inc.stepStartTime ? Date.parse(inc.stepStartTime) : Number.POSITIVE_INFINITY;
      const affected = (signal.pods.length ? signal.pods : w.pods.filter((p) => !isReady(p))).filter(
        (p) => !acted.has(p.metadata.name) && Date.parse(p.metadata.creationTimestamp ?? "") < stepStart - 1000,
      );
      if (!affected.length) {
        inc.heldBy = undefined;
        return;
      }
      const spare = available - minAvailableCount(this.brakes.minAvailable, w.desired);
      pods = choosePods(affected, isReady, concurrencyLeft(this.brakes, this.inFlight()), spare);
    }
    const target = this.recent.filter((r) => r.target === w.key).map((r) => Date.parse(r.time));
    const hold = checkBrakes(
      this.brakes,
      {
        inFlight: this.inFlight(),
        actionTimes: this.recent.map((r) => Date.parse(r.time)),
        lastActionOnTarget: target.length ? Math.max(...target) : undefined,
        available,
        desired: w.desired,
        removesAvailable: type === "restartPod" || type === "quarantine" ? pods.filter(isReady).length : 0,
      },
      this.now,
    );
    if (hold) {
      if (hold.brake === "Cooldown" || hold.brake === "MaxActionsPerHour")
        this.lookAgainIn(this.brakeEndsIn(hold.brake, w));
      return this.hold(inc, hold.brake, hold.message);
    }
    if (type === "drainNode") {
      const gate = this.nodeGate(pods);
      if (gate) return this.hold(inc, gate.brake, gate.message);
    }
    return this.carryOut(inc, w, type, name, action, pods);
  }

  private nodeGate(pods: Pod[]): Hold | undefined {
    const namespace = this.policy.metadata.namespace as string;
    const grant = this.ctx.cache.get(NamespaceKind, undefined, namespace)?.metadata.labels?.[NODE_ACTIONS_LABEL];
    const nodes = this.ctx.cache.list<Node>(NodeKind).map((n) => ({
      name: n.metadata.name,
      ready: n.status?.conditions?.find((c) => c.type === "Ready")?.status === "True",
      unschedulable: n.spec?.unschedulable === true,
    }));
    const toCordon = [...new Set(pods.flatMap((p) => p.spec?.nodeName ?? []))];
    return checkNodeGate(nodeGateLimits, { namespace, allowed: grant === "allowed", nodes, toCordon });
  }

  /** Uncordons the Nodes a drain cordoned for this incident, once it is over. */
  private async releaseNodes(inc: Incident): Promise<void> {
    if (this.dryRun) return;
    const released = await uncordon(this.ctx, cordonedBy(this.policy, inc.target));
    if (released.length)
      this.record(inc.target, inc.trigger, "DrainNode", "Restored", `uncordoned ${released.join(", ")}`);
  }

  private brakeEndsIn(brake: "Cooldown" | "MaxActionsPerHour", w: Workload): number {
    const times = this.recent
      .filter((r) => brake === "MaxActionsPerHour" || r.target === w.key)
      .map((r) => Date.parse(r.time));
    if (!times.length) return 1000;
    return brake === "Cooldown"
      ? Math.max(...times) + this.brakes.cooldownMs - this.now
      : Math.min(...times.filter((t) => t > this.now - 3_600_000)) + 3_600_000 - this.now;
  }

  private hold(inc: Incident, brake: string, message: string): void {
    if (inc.heldBy === brake) return;
    inc.heldBy = brake;
    inc.message = message;
    this.record(inc.target, inc.trigger, inc.action ?? "None", "Held", `${brake}: ${message}`);
  }

  private async carryOut(
    inc: Incident,
    w: Workload,
    type: ActionType,
    name: string,
    action: Action,
    pods: Pod[],
  ): Promise<void> {
    let outcome: ActionOutcome;
    try {
      outcome = await runAction(
        this.ctx,
        this.policy,
        type,
        action[type] as { by?: number; max?: number; maxRevisionAge?: string },
        w,
        pods,
        this.dryRun,
      );
    } catch (e) {
      // Reported once per step, not on every retry; tried again a little later (a missing permission, a conflict).
      const message = `${name} failed: ${(e as Error).message}`;
      if (inc.heldBy !== ACTION_FAILED || inc.message !== message)
        this.record(inc.target, inc.trigger, name, "Failed", message);
      inc.heldBy = ACTION_FAILED;
      inc.message = message;
      this.lookAgainIn(ACTION_RETRY_MS);
      return;
    }
    const at = new Date(this.now).toISOString();
    inc.heldBy = undefined;
    if (outcome.skipped) {
      // Nothing to do now counts as this step's try: its timeout runs, and the ladder moves on if it must.
      inc.stepStartTime ??= at;
      if (inc.message !== outcome.message) {
        inc.message = outcome.message;
        this.ctx.events.normal(this.policy, `${name}Skipped`, `${inc.target} (${inc.trigger}): ${outcome.message}`);
      }
      return;
    }
    if (inc.attempts === 0)
      remediationMetrics(this.ctx.registry).detectionToAction.observe(
        { action: name },
        (this.now - Date.parse(inc.since)) / 1000,
      );
    inc.attempts++;
    inc.stepStartTime ??= at;
    inc.lastActionTime = at;
    inc.pods = outcome.pods ? [...(inc.pods ?? []), ...outcome.pods] : inc.pods;
    inc.message = outcome.message;
    this.recent.push({ time: at, target: w.key });
    const keepMs = Math.max(3_600_000, this.brakes.cooldownMs);
    while (this.recent.length && Date.parse((this.recent[0] as { time: string }).time) < this.now - keepMs)
      this.recent.shift();
    if (outcome.scaled) this.rememberScale(w, outcome.scaled);
    this.record(inc.target, inc.trigger, name, this.dryRun ? "DryRun" : "Succeeded", outcome.message);
  }

  private rememberScale(w: Workload, s: NonNullable<ActionOutcome["scaled"]>): void {
    const rec = this.scaled.find((r) => r.target === w.key);
    if (rec) {
      rec.current = s.to;
      rec.healthySince = undefined;
    } else
      this.scaled.push({
        target: w.key,
        field: s.field,
        hpa: s.hpa,
        scaledObject: s.scaledObject,
        original: s.from,
        current: s.to,
      });
  }

  private async revertScale(w: Workload, inc: Incident): Promise<void> {
    const rec = this.scaled.find((r) => r.target === w.key);
    if (!rec) return;
    const result = await giveBack(this.ctx, w, rec, this.dryRun);
    this.scaled.splice(this.scaled.indexOf(rec), 1);
    if (result === "restored")
      this.record(
        w.key,
        inc.trigger,
        "Scale",
        "Reverted",
        `the scale-up did not help: ${rec.field} back to ${rec.original}`,
      );
  }

  /** Restores replica counts of workloads healthy (no incident, every trigger clear) for the cooldown. */
  async restoreHealthy(): Promise<void> {
    if (this.paused) return;
    for (const rec of [...this.scaled]) {
      const w = this.workloads.get(rec.target);
      const healthy =
        !this.incidentsOut.some((i) => i.target === rec.target) &&
        [...this.signals.values()].every((m) => m.get(rec.target)?.state === "Clear");
      if (!healthy) {
        rec.healthySince = undefined;
        continue;
      }
      rec.healthySince ??= new Date(this.now).toISOString();
      const due = Date.parse(rec.healthySince) + this.brakes.cooldownMs - this.now;
      if (due > 0) {
        this.lookAgainIn(due);
        continue;
      }
      const result = await giveBack(this.ctx, w, rec, this.dryRun);
      this.scaled.splice(this.scaled.indexOf(rec), 1);
      if (result === "restored")
        this.record(
          rec.target,
          "-",
          "Scale",
          "Restored",
          `healthy for the cooldown: ${rec.field} back to ${rec.original}`,
        );
      else if (result === "changed")
        this.ctx.events.normal(
          this.policy,
          "RestoreSkipped",
          `${rec.target}: ${rec.field} was changed by someone else; left as it is`,
        );
    }
  }

  report(status: ReturnType<ReconcileContext["status"]>): void {
    const previous = new Map((this.policy.status?.triggers ?? []).map((t) => [t.name, t]));
    const triggers = this.policy.spec.triggers.map((t) => {
      const all = [...(this.signals.get(t.name)?.values() ?? [])];
      const pick = all.find((s) => s.state === "Firing") ??
        all.find((s) => s.state === "Unknown") ??
        all[0] ?? { state: "Clear" as const, reason: "NoTargets", message: "no workload to watch" };
      const before = previous.get(t.name);
      const since = before?.state === pick.state ? before.since : new Date(this.now).toISOString();
      const defaulted = [...new Set(all.flatMap((s) => s.defaulted ?? []))].sort();
      return {
        name: t.name,
        state: pick.state,
        reason: pick.reason,
        message: pick.message,
        since,
        ...(defaulted.length && { defaultedFeatures: defaulted }),
      };
    });
    const unknown = triggers.filter((t) => t.state === "Unknown");
    const brakes = ["MaxConcurrent", "Cooldown", "MaxActionsPerHour", "MinAvailable", ...NODE_BRAKES];
    const held = this.incidentsOut.filter((i) => i.heldBy && brakes.includes(i.heldBy));
    status.set({
      targets: this.workloads.size,
      triggers,
      incidents: this.incidentsOut,
      history: this.history,
      scaled: this.scaled,
      recentActions: this.recent,
      resolved: this.resolved,
      openIncidents: this.incidentsOut.length,
    } as Partial<RemediationPolicyStatus>);
    if (held.length)
      status.condition(
        "StormActive",
        "True",
        held[0]?.heldBy as string,
        `${held.length} incident(s) held back by brakes: ${held
          .slice(0, 3)
          .map((i) => `${i.target} (${i.heldBy}: ${i.message})`)
          .join("; ")}`,
      );
    else status.condition("StormActive", "False", "NoStorm", "No brake is holding an action back.");
    if (this.paused)
      status.condition(
        "Paused",
        "True",
        "PausedByAnnotation",
        `${PAUSED_ANNOTATION}=true: incidents are tracked, no action is taken.`,
      );
    else status.condition("Paused", "False", "Active", "Actions run as the ladder says.");
    if (unknown.length)
      status.condition(
        "SignalsAvailable",
        "False",
        unknown[0]?.reason as string,
        unknown.map((t) => `${t.name}: ${t.message}`).join("; "),
      );
    else status.condition("SignalsAvailable", "True", "AllSignals", "Every trigger has the data it needs.");
    const mode = this.dryRun ? "in DryRun: nothing is touched" : "enforcing";
    const failed = this.incidentsOut.find((i) => i.heldBy === ACTION_FAILED);
    if (failed) status.condition("Ready", "False", ACTION_FAILED, `${failed.target}: ${failed.message}`);
    else status.condition("Ready", "True", "Watching", `Watching ${this.workloads.size} workload(s), ${mode}.`);
  }
}

/** Gives a scaled workload (or its HPA) back its original count, unless someone else changed it since. */
async function giveBack(
  ctx: ReconcileContext,
  w: Workload | undefined,
  rec: ScaledRecord,
  dryRun: boolean,
): Promise<"restored" | "changed" | "gone"> {
  if (!w || (rec.field === "hpaMinReplicas" && w.hpa?.metadata.name !== rec.hpa)) return "gone";
  const ns = w.obj.metadata.namespace as string;
  let live: number;
  if (rec.field === "scaledObjectMinReplicaCount") {
    const so = await ctx.client.get<ScaledObject>(ScaledObjectKind, ns, rec.scaledObject as string);
    if (!so) return "gone";
    live = so.spec.minReplicaCount ?? 0;
  } else live = rec.field === "hpaMinReplicas" ? (w.hpa?.spec.minReplicas ?? 1) : w.desired;
  if (live !== rec.current) return "changed";
  if (!dryRun) {
    if (rec.field === "scaledObjectMinReplicaCount")
      await setScaledObjectMin(ctx, ns, rec.scaledObject as string, rec.original);
    else if (rec.field === "hpaMinReplicas") await setHpaMin(ctx, ns, rec.hpa as string, rec.original);
    else await setReplicas(ctx.client, w.ref, w.obj, rec.original);
  }
  return "restored";
}

/** On deletion: every replica count the policy changed goes back, so that deleting it undoes what it did. */
async function restoreAll(ctx: ReconcileContext, policy: RemediationPolicy): Promise<void> {
  const workloads = new Map(workloadsOf(policy, ctx.cache).map((w) => [w.key, w]));
  for (const rec of policy.status?.scaled ?? [])
    await giveBack(ctx, workloads.get(rec.target), rec, policy.spec.mode === "DryRun");
  await uncordon(ctx, cordonedBy(policy, ""));
}
