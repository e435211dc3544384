import type { ActionType, RemediationPolicy, ScaledRecord } from "../../crds/remediationpolicy.ts";
import type { ReconcileContext } from "../../runtime/controller.ts";
import {
  HorizontalPodAutoscalerKind,
  NetworkPolicyKind,
  NodeKind,
  PodKind,
  ReplicaSetKind,
  ScaledObjectKind,
} from "../../runtime/kinds.ts";
import type { KubeObject } from "../../runtime/objects.ts";
import { parseDuration } from "../../crds/duration.ts";
import { KEDA_DEFAULT_MAX_REPLICAS, type ScaledObject, scaledObjectOwning } from "../shared/keda.ts";
import { replicaBound, setReplicas } from "../shared/replicas.ts";
import type { Pod, Workload } from "./workloads.ts";

/** Marks a quarantined pod (value: the policy), and is what the deny-all NetworkPolicy selects. */
export const QUARANTINE_LABEL = "nextgen.itechsmart.io/quarantined";
/** On a Node the operator cordoned: "<namespace>/<policy>:<Kind/workload>", the incident it was cordoned for. */
export const CORDONED_BY_ANNOTATION = "nextgen.itechsmart.io/cordoned-by";
const RESTARTED_AT = "kubectl.kubernetes.io/restartedAt";
const REVISION = "deployment.kubernetes.io/revision";

/** What an action did, for history and events; pods: the pods it acted on (they count as in flight). */
export interface ActionOutcome {
  message: string;
  pods?: string[];
  /** For scale: the value before and after, to restore exactly. */
  scaled?: Pick<ScaledRecord, "field" | "hpa" | "scaledObject"> & { from: number; to: number };
  /** The action found nothing to do now (e.g. a rollout in progress, no previous revision): try again later. */
  skipped?: boolean;
}

/**
 * Whether the workload is in the middle of a rollout, so that it is not restarted again: its controller has not
 * seen the latest spec, or pods of an older template are still being replaced (as `kubectl rollout status` waits
 * for). Pods that crash and flap under one template are not a rollout, whatever Progressing says of them.
 */
function rolloutInProgress(w: Workload): boolean {
  const s = w.obj.status ?? {};
  if ((s.observedGeneration ?? 0) < (w.obj.metadata.generation ?? 0)) return true;
  const updated = s.updatedReplicas ?? 0;
  if (w.kind === "StatefulSet") return updated < w.desired || s.currentRevision !== s.updateRevision;
  return updated < w.desired || (s.replicas ?? 0) > updated;
}

/**
 * Carries out one action of the ladder on a workload. dryRun: nothing is touched; the outcome says what would
 * have been. Writes go only to what the action is about, with the operator's field manager.
 */
export async function runAction(
  ctx: ReconcileContext,
  policy: RemediationPolicy,
  type: ActionType,
  spec: { by?: number; max?: number; maxRevisionAge?: string },
  w: Workload,
  pods: Pod[],
  dryRun: boolean,
): Promise<ActionOutcome> {
  const ns = w.obj.metadata.namespace as string;
  const names = pods.map((p) => p.metadata.name);
  switch (type) {
    case "restartPod": {
      if (!dryRun) for (const p of pods) await ctx.client.delete(PodKind, ns, p.metadata.name, { uid: p.metadata.uid });
      return { message: `deleted pod${names.length > 1 ? "s" : ""} ${names.join(", ")}`, pods: names };
    }
    case "rolloutRestart": {
      if (rolloutInProgress(w)) return { message: "a rollout is already in progress", skipped: true };
      const at = ctx.now.toISOString();
      if (!dryRun)
        await ctx.client.apply(w.ref, {
          apiVersion: "apps/v1",
          kind: w.kind,
          metadata: { name: w.obj.metadata.name, namespace: ns },
          spec: { template: { metadata: { annotations: { [RESTARTED_AT]: at } } } },
        } as KubeObject);
      return { message: `restarted the rollout (${RESTARTED_AT}=${at})` };
    }
    case "scale":
      return scaleUp(ctx, w, spec.by ?? 1, spec.max ?? w.desired, dryRun);
    case "rollback":
      // Defaulted by the schema, also on reading a policy stored before the field existed (`rollback: {}`).
      return rollback(ctx, w, parseDuration(spec.maxRevisionAge as string), dryRun);
    case "quarantine": {
      if (!dryRun) {
        await ensureQuarantinePolicy(ctx, policy);
        for (const p of pods) {
          // Labels the workload selects by are removed: the pod leaves its Service's endpoints and its owner
          // (which replaces it), and stays for a human to inspect.
          const drop = Object.fromEntries(Object.keys(w.obj.spec.selector.matchLabels ?? {}).map((k) => [k, null]));
          await ctx.client.patch(PodKind, ns, p.metadata.name, "merge", {
            metadata: { labels: { ...drop, [QUARANTINE_LABEL]: policy.metadata.name } },
          });
        }
      }
      return { message: `quarantined ${names.join(", ")}`, pods: names };
    }
    case "drainNode":
      return drainNodes(ctx, pods, cordonedBy(policy, w.key), dryRun);
  }
}

async function scaleUp(
  ctx: ReconcileContext,
  w: Workload,
  by: number,
  max: number,
  dryRun: boolean,
): Promise<ActionOutcome> {
  const ns = w.obj.metadata.namespace as string;
  // A CarbonBudget's cap bounds every scale-up (see shared/replicas.ts): the policy scales up to it, never past it.
  const bound = replicaBound(w.obj);
  const boundNote = (wanted: number) =>
    bound && bound.max < wanted ? ` (bounded by CarbonBudget ${bound.by}'s cap of ${bound.max})` : "";
  const scaledObject = w.hpa && scaledObjectOwning(w.hpa);
  if (w.hpa && scaledObject) {
    // KEDA owns the HPA and rewrites it from the ScaledObject: the floor is raised there (its HPA's minReplicas is
    // minReplicaCount, at least 1), and given back there.
    const so = await ctx.client.get<ScaledObject>(ScaledObjectKind, ns, scaledObject);
    if (!so) return { message: `ScaledObject ${scaledObject} is gone`, skipped: true };
    const from = so.spec.minReplicaCount ?? 0;
    const soMax = so.spec.maxReplicaCount ?? KEDA_DEFAULT_MAX_REPLICAS;
    const to = Math.min(Math.max(from, 1) + by, max, soMax, bound?.max ?? Infinity);
    if (to <= from)
      return {
        message:
          bound && bound.max <= from
            ? `held at ${from} by CarbonBudget ${bound.by}'s cap of ${bound.max} replicas`
            : `ScaledObject ${scaledObject}'s minReplicaCount is ${from}, at its maximum`,
        skipped: true,
      };
    if (!dryRun) await setScaledObjectMin(ctx, ns, scaledObject, to);
    return {
      message: `raised ScaledObject ${scaledObject}'s minReplicaCount from ${from} to ${to}${boundNote(Math.min(Math.max(from, 1) + by, max, soMax))}`,
      scaled: { field: "scaledObjectMinReplicaCount", scaledObject, from, to },
    };
  }
  if (w.hpa) {
    // The HPA owns replicas: raising its floor scales without a fight, and lowering it back restores its say.
    const from = w.hpa.spec.minReplicas ?? 1;
    const to = Math.min(from + by, max, w.hpa.spec.maxReplicas, bound?.max ?? Infinity);
    if (to <= from)
      return {
        message:
          bound && bound.max <= from
            ? `held at ${from} by CarbonBudget ${bound.by}'s cap of ${bound.max} replicas`
            : `the HPA's minReplicas is ${from}, at its maximum`,
        skipped: true,
      };
    if (!dryRun) await setHpaMin(ctx, ns, w.hpa.metadata.name, to);
    return {
      message: `raised HorizontalPodAutoscaler ${w.hpa.metadata.name}'s minReplicas from ${from} to ${to}${boundNote(Math.min(from + by, max, w.hpa.spec.maxReplicas))}`,
      scaled: { field: "hpaMinReplicas", hpa: w.hpa.metadata.name, from, to },
    };
  }
  const from = w.desired;
  const to = Math.min(from + by, max, bound?.max ?? Infinity);
  if (to <= from)
    return {
      message:
        bound && bound.max <= from
          ? `${w.key} held at ${from} replicas by CarbonBudget ${bound.by}'s cap of ${bound.max}`
          : `${w.key} has ${from} replicas, at the maximum of ${max}`,
      skipped: true,
    };
  if (!dryRun) await setReplicas(ctx.client, w.ref, w.obj, to);
  return {
    message: `scaled ${w.key} from ${from} to ${to} replicas${boundNote(Math.min(from + by, max))}`,
    scaled: { field: "replicas", from, to },
  };
}

export async function setScaledObjectMin(ctx: ReconcileContext, namespace: string, name: string, min: number) {
  await ctx.client.patch(ScaledObjectKind, namespace, name, "merge", { spec: { minReplicaCount: min } });
}

export async function setHpaMin(ctx: ReconcileContext, namespace: string, hpa: string, minReplicas: number) {
  await ctx.client.patch(HorizontalPodAutoscalerKind, namespace, hpa, "merge", { spec: { minReplicas } });
}

type ReplicaSet = KubeObject & { spec: { template: { metadata?: { labels?: Record<string, string> } } } };

/**
 * As `kubectl rollout undo`: the Deployment's template becomes its previous revision's, if that revision served
 * within maxAgeMs. It served until the current revision's ReplicaSet was made; a ReplicaSet reused by an earlier
 * rollback keeps its old creation time and so reads older than it is, which errs towards not rolling back.
 */
async function rollback(ctx: ReconcileContext, w: Workload, maxAgeMs: number, dryRun: boolean): Promise<ActionOutcome> {
  // A stuck rollout is what a rollback is for: unlike a restart, it does not wait for the rollout to finish.
  if (w.kind !== "Deployment") return { message: "rollback applies to Deployments only", skipped: true };
  const revisions = ctx.cache
    .ownedBy<ReplicaSet>(ReplicaSetKind, w.obj)
    .map((rs) => ({ rs, revision: Number(rs.metadata.annotations?.[REVISION] ?? 0) }))
    .sort((a, b) => b.revision - a.revision);
  const [current, previous] = revisions;
  if (!current || !previous) return { message: `${w.key} has no previous revision to roll back to`, skipped: true };
  const servedUntil = Date.parse(current.rs.metadata.creationTimestamp ?? "");
  if (ctx.now.getTime() - servedUntil > maxAgeMs)
    return {
      message:
        `${w.key}'s previous revision ${previous.revision} last served at ${new Date(servedUntil).toISOString()}, ` +
        `longer ago than rollback.maxRevisionAge (${maxAgeMs / 1000}s): not rolled back`,
      skipped: true,
    };
  const template = structuredClone(previous.rs.spec.template);
  delete template.metadata?.labels?.["pod-template-hash"];
  if (!dryRun)
    // As kubectl does, with no resourceVersion precondition: the Deployment controller writes its status all along.
    await ctx.client.patch(w.ref, w.obj.metadata.namespace, w.obj.metadata.name, "json", [
      { op: "replace", path: "/spec/template", value: template },
    ]);
  return { message: `rolled ${w.key} back to revision ${previous.revision}` };
}

/** One deny-all NetworkPolicy per policy, selecting the pods it quarantined; owned by the policy. */
async function ensureQuarantinePolicy(ctx: ReconcileContext, policy: RemediationPolicy): Promise<void> {
  await ctx.apply(
    NetworkPolicyKind,
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: `quarantine-${policy.metadata.name}`, namespace: policy.metadata.namespace },
      spec: {
        podSelector: { matchLabels: { [QUARANTINE_LABEL]: policy.metadata.name } },
        policyTypes: ["Ingress", "Egress"],
      },
    } as KubeObject,
    { owner: policy },
  );
}

/** What CORDONED_BY_ANNOTATION says for an incident of this policy on this workload. */
export function cordonedBy(policy: RemediationPolicy, target: string): string {
  return `${policy.metadata.namespace}/${policy.metadata.name}:${target}`;
}

type Node = KubeObject & { spec?: { unschedulable?: boolean } };

/**
 * Uncordons the Nodes cordoned for `by` (an incident, or with a trailing ":" every incident of a policy) and drops
 * the mark; a Node someone else has uncordoned meanwhile only loses the mark.
 */
export async function uncordon(ctx: ReconcileContext, by: string): Promise<string[]> {
  const ours = ctx.cache.list<Node>(NodeKind).filter((n) => {
    const mark = n.metadata.annotations?.[CORDONED_BY_ANNOTATION];
    return mark !== undefined && (by.endsWith(":") ? mark.startsWith(by) : mark === by);
  });
  for (const n of ours)
    await ctx.client.patch(NodeKind, undefined, n.metadata.name, "merge", {
      metadata: { annotations: { [CORDONED_BY_ANNOTATION]: null } },
      ...(n.spec?.unschedulable && { spec: { unschedulable: false } }),
    });
  return ours.map((n) => n.metadata.name);
}

/**
 * Cordons the pods' Nodes, marking those it cordoned (not one already cordoned by someone else: it is theirs to
 * uncordon), and evicts what runs there (not DaemonSet or mirror pods) through the Eviction API.
 */
async function drainNodes(ctx: ReconcileContext, pods: Pod[], by: string, dryRun: boolean): Promise<ActionOutcome> {
  const nodes = [...new Set(pods.map((p) => p.spec?.nodeName).filter((n): n is string => !!n))];
  if (!nodes.length) return { message: "the affected pods are not on any Node", skipped: true };
  const evicted: string[] = [];
  const refused: string[] = [];
  for (const node of nodes) {
    const onNode = ctx.cache
      .list<Pod>(PodKind)
      .filter(
        (p) =>
          p.spec?.nodeName === node &&
          !p.metadata.deletionTimestamp &&
          !p.metadata.annotations?.["kubernetes.io/config.mirror"] &&
          !p.metadata.ownerReferences?.some((o) => o.kind === "DaemonSet"),
      );
    if (dryRun) {
      evicted.push(...onNode.map((p) => p.metadata.name));
      continue;
    }
    if (!ctx.cache.get<Node>(NodeKind, undefined, node)?.spec?.unschedulable)
      await ctx.client.patch(NodeKind, undefined, node, "merge", {
        metadata: { annotations: { [CORDONED_BY_ANNOTATION]: by } },
        spec: { unschedulable: true },
      });
    for (const p of onNode) {
      if (await ctx.client.evict(p.metadata.namespace as string, p.metadata.name)) evicted.push(p.metadata.name);
      else refused.push(p.metadata.name);
    }
  }
  const held = refused.length ? `; ${refused.length} held by PodDisruptionBudgets (retried)` : "";
  return { message: `cordoned ${nodes.join(", ")} and evicted ${evicted.length} pods${held}`, pods: evicted };
}
