import { capFor } from "../../carbon/accounting.ts";
import type { CarbonBudget, HeldReplicas } from "../../crds/carbonbudget.ts";
import type { ReconcileContext } from "../../runtime/controller.ts";
import { DeploymentKind, HorizontalPodAutoscalerKind, type KindRef, StatefulSetKind } from "../../runtime/kinds.ts";
import { matchesSelector } from "../../runtime/labels.ts";
import type { KubeObject } from "../../runtime/objects.ts";
import {
  BOUND_BY_ANNOTATION,
  MAX_REPLICAS_ANNOTATION,
  REPLICAS_BEFORE_ANNOTATION,
  setReplicas,
} from "../shared/replicas.ts";
import { scaledObjectOwning } from "../shared/keda.ts";
import { holdThroughScaledObject, releaseScaledObject } from "./keda.ts";

const WORKLOAD_KINDS: Record<string, KindRef> = { Deployment: DeploymentKind, StatefulSet: StatefulSetKind };

type Workload = KubeObject & {
  spec: { replicas?: number; template?: { metadata?: { labels?: Record<string, string> } } };
};

/**
 * Replica counts this process set and the cache may not show yet, by "namespace/Kind/name" (as the ReplicaSet
 * controller's expectations): until the cache catches up, the count set is the count, so a reconcile in between does
 * not take it for someone else's change.
 */
const expected = new Map<string, { replicas: number; until: number }>();
const EXPECTATION_MS = 30_000;

/** The workload's replicas as far as this process knows: what it set, until the cache shows that. */
function replicasOf(w: Workload, target: string, now: number): number {
  const key = `${w.metadata.namespace}/${target}`;
  const cached = w.spec.replicas ?? 1;
  const e = expected.get(key);
  if (!e || e.until < now || e.replicas === cached) {
    expected.delete(key);
    return cached;
  }
  return e.replicas;
}

async function scaleTo(ctx: ReconcileContext, ref: KindRef, w: Workload, target: string, replicas: number) {
  await setReplicas(ctx.client, ref, w, replicas);
  expected.set(`${w.metadata.namespace}/${target}`, { replicas, until: ctx.now.getTime() + EXPECTATION_MS });
}

type Hpa = KubeObject & {
  spec: { scaleTargetRef: { kind: string; name: string }; minReplicas?: number; maxReplicas: number };
};

/** On an HPA the budget caps: "<minReplicas>/<maxReplicas>" before, written before the HPA is changed. */
export const HPA_BEFORE_ANNOTATION = "carbon.nextgen.itechsmart.io/hpa-before";

/** The HorizontalPodAutoscaler driving the workload, if any. */
function hpaOf(ctx: ReconcileContext, w: Workload, target: string): Hpa | undefined {
  return ctx.cache
    .list<Hpa>(HorizontalPodAutoscalerKind, { namespace: w.metadata.namespace })
    .find((h) => `${h.spec.scaleTargetRef.kind}/${h.spec.scaleTargetRef.name}` === target);
}

/**
 * A cap on a workload an HPA drives goes on the HPA: its maxReplicas (and minReplicas, kept at or below it). Set on
 * the workload, the HPA would scale it back at its next sync and the budget would cap it again, a loop; lowered on
 * the HPA, the HPA controller itself brings the workload down and keeps it there. The HPA's bounds before are kept
 * on the HPA (HPA_BEFORE_ANNOTATION, written first, so a restart mid-way knows them) and given back exactly.
 */
async function capThroughHpa(
  ctx: ReconcileContext,
  budget: CarbonBudget,
  hpa: Hpa,
  target: string,
  bound: Bound,
  by: string,
  heldAt: number | undefined,
): Promise<HeldReplicas> {
  const marked = /^(\d+)\/(\d+)$/.exec(hpa.metadata.annotations?.[HPA_BEFORE_ANNOTATION] ?? "");
  const before = marked
    ? { minReplicas: Number(marked[1]), maxReplicas: Number(marked[2]) }
    : { minReplicas: hpa.spec.minReplicas ?? 1, maxReplicas: hpa.spec.maxReplicas };
  const maxReplicas = Math.min(before.maxReplicas, bound.max);
  // minReplicas is lowered only when above the cap (the API rejects min above max). At the cap set before, it is
  // the budget's and follows the cap; otherwise it is a floor someone set while the cap held: theirs, kept then and
  // after (a floor set to exactly the cap cannot be told from the budget's).
  const minNow = hpa.spec.minReplicas ?? 1;
  const lowered = heldAt !== undefined && before.minReplicas > heldAt && minNow === heldAt;
  const minReplicas = Math.min(lowered ? before.minReplicas : minNow, maxReplicas);
  const ns = hpa.metadata.namespace;
  if (!marked)
    await ctx.client.patch(HorizontalPodAutoscalerKind, ns, hpa.metadata.name, "merge", {
      metadata: {
        annotations: {
          [HPA_BEFORE_ANNOTATION]: `${before.minReplicas}/${before.maxReplicas}`,
          [BOUND_BY_ANNOTATION]: by,
        },
      },
    });
  if (hpa.spec.maxReplicas !== maxReplicas || (hpa.spec.minReplicas ?? 1) !== minReplicas) {
    await ctx.client.patch(HorizontalPodAutoscalerKind, ns, hpa.metadata.name, "merge", {
      spec: { minReplicas, maxReplicas },
    });
    ctx.events.normal(
      budget,
      bound.reason,
      `Capped ${target} through HorizontalPodAutoscaler ${hpa.metadata.name}: maxReplicas ${maxReplicas} (was ${before.maxReplicas}).`,
    );
  }
  return {
    target,
    replicas: before.maxReplicas,
    setTo: maxReplicas,
    reason: bound.reason,
    hpa: { name: hpa.metadata.name, ...before },
  };
}

/**
 * Gives an HPA back the bounds it had before the cap, each only if it still holds what the budget set: maxReplicas
 * unless someone changed it meanwhile, minReplicas only if the budget lowered it and nobody set it since (a floor a
 * user set during the hold is what they asked for, so it stays).
 */
async function releaseHpa(ctx: ReconcileContext, budget: CarbonBudget, w: Workload, record: HeldReplicas) {
  const held = record.hpa as NonNullable<HeldReplicas["hpa"]>;
  const hpa = ctx.cache.get<Hpa>(HorizontalPodAutoscalerKind, w.metadata.namespace, held.name);
  if (!hpa) return;
  const maxOurs = hpa.spec.maxReplicas === record.setTo;
  const minOurs = held.minReplicas > record.setTo && (hpa.spec.minReplicas ?? 1) === record.setTo;
  const spec = {
    ...(maxOurs && { maxReplicas: held.maxReplicas }),
    ...(minOurs && { minReplicas: held.minReplicas }),
  };
  await ctx.client.patch(HorizontalPodAutoscalerKind, hpa.metadata.namespace, held.name, "merge", {
    metadata: { annotations: { [HPA_BEFORE_ANNOTATION]: null, [BOUND_BY_ANNOTATION]: null } },
    ...(Object.keys(spec).length > 0 && { spec }),
  });
  const minNow = minOurs ? held.minReplicas : (hpa.spec.minReplicas ?? 1);
  ctx.events.normal(
    budget,
    maxOurs ? "Restored" : "Released",
    maxOurs
      ? `Restored HorizontalPodAutoscaler ${held.name} to maxReplicas ${held.maxReplicas}, minReplicas ${minNow}` +
          (minNow === held.minReplicas ? "." : ` (set to ${minNow} during the hold; kept).`)
      : `HorizontalPodAutoscaler ${held.name} was changed meanwhile; left alone.`,
  );
}

/** A bound the budget wants on a workload now. */
interface Bound {
  max: number;
  reason: HeldReplicas["reason"];
}

/**
 * The bounds in force: in Enforce mode, a spent budget with onExhausted Suspend holds every selected workload at
 * zero; otherwise each capReplicas target is held to the band the intensity is in. Advisory holds nothing.
 */
export function wantedBounds(
  budget: CarbonBudget,
  workloads: Map<string, Workload>,
  gramsPerKWh: number | undefined,
  exhausted: boolean,
): Map<string, Bound> {
  const bounds = new Map<string, Bound>();
  const { mode, actions } = budget.spec;
  if (mode !== "Enforce") return bounds;
  for (const cap of actions?.capReplicas ?? []) {
    const max = gramsPerKWh === undefined ? undefined : capFor(cap.bands, gramsPerKWh);
    const target = `${cap.targetRef.kind}/${cap.targetRef.name}`;
    if (max !== undefined && workloads.has(target)) bounds.set(target, { max, reason: "Capped" });
  }
  if (exhausted && actions?.onExhausted === "Suspend")
    for (const target of workloads.keys()) bounds.set(target, { max: 0, reason: "Suspended" });
  return bounds;
}

/** The namespace's Deployments and StatefulSets, by "Kind/name"; with a selector, those whose pods it selects. */
export function budgetWorkloads(ctx: ReconcileContext, budget: CarbonBudget): Map<string, Workload> {
  const out = new Map<string, Workload>();
  const selector = budget.spec.selector;
  for (const [kind, ref] of Object.entries(WORKLOAD_KINDS))
    for (const w of ctx.cache.list<Workload>(ref, { namespace: budget.metadata.namespace }))
      if (!selector || matchesSelector(w.spec.template?.metadata?.labels, selector))
        out.set(`${kind}/${w.metadata.name}`, w);
  // capReplicas may name a workload the selector leaves out.
  for (const cap of budget.spec.actions?.capReplicas ?? []) {
    const ref = WORKLOAD_KINDS[cap.targetRef.kind] as KindRef;
    const w = ctx.cache.get<Workload>(ref, budget.metadata.namespace, cap.targetRef.name);
    if (w) out.set(`${cap.targetRef.kind}/${cap.targetRef.name}`, w);
  }
  return out;
}

/**
 * Brings the workloads' replica counts to the bounds, and gives back exactly what a lifted bound had taken.
 * A count someone else changed while held is theirs: above the bound it is held again (and remembered as the
 * count to give back), at or below it the budget lets go. Answers the records to keep in status.held.
 */
export async function enforceBounds(
  ctx: ReconcileContext,
  budget: CarbonBudget,
  workloads: Map<string, Workload>,
  bounds: Map<string, Bound>,
): Promise<HeldReplicas[]> {
  const ns = budget.metadata.namespace as string;
  const by = `${ns}/${budget.metadata.name}`;
  const held: HeldReplicas[] = [];
  const records = new Map((budget.status?.held ?? []).map((r) => [r.target, r]));
  // A hold the status does not show yet (the operator stopped before writing it) is read back from the workload.
  for (const [target, w] of workloads) {
    const before = w.metadata.annotations?.[REPLICAS_BEFORE_ANNOTATION];
    if (records.has(target) || w.metadata.annotations?.[BOUND_BY_ANNOTATION] !== by || !before) continue;
    const max = Number(w.metadata.annotations?.[MAX_REPLICAS_ANNOTATION]);
    records.set(target, { target, replicas: Number(before), setTo: Math.min(Number(before), max), reason: "Capped" });
  }
  for (const [target, bound] of bounds) {
    const w = workloads.get(target) as Workload;
    const ref = WORKLOAD_KINDS[target.split("/")[0] as string] as KindRef;
    const current = replicasOf(w, target, ctx.now.getTime());
    const record = records.get(target);
    records.delete(target);
    // Where KEDA drives the workload it owns the HPA: the hold goes on the ScaledObject (keda.ts). Suspended, KEDA
    // has deleted that HPA, and the record names the ScaledObject.
    const driver = hpaOf(ctx, w, target);
    const scaledObject = (driver && scaledObjectOwning(driver)) ?? record?.scaledObject?.name;
    if (scaledObject) {
      const kept = await holdThroughScaledObject(ctx, budget, scaledObject, target, bound, by);
      if (kept) {
        await annotate(ctx, ref, w, { max: bound.max, by });
        held.push(kept);
        continue;
      }
    }
    // A suspension (0) stays on the workload: an HPA does not scale a target at zero replicas.
    const hpa = bound.max > 0 && !scaledObject ? driver : undefined;
    if (hpa) {
      await annotate(ctx, ref, w, { max: bound.max, by });
      held.push(await capThroughHpa(ctx, budget, hpa, target, bound, by, record?.hpa && record.setTo));
      continue;
    }
    // What to give back when the bound lifts: the count before the budget first held it, or a newer one someone
    // set above the bound since.
    const original = !record || current > record.setTo ? current : record.replicas;
    if (record && current < record.setTo && current <= bound.max) {
      // Lowered by someone else while held: theirs now.
      await annotate(ctx, ref, w, undefined);
      ctx.events.normal(budget, "Released", `${target} was set to ${current} replicas by someone else; left alone.`);
      continue;
    }
    const setTo = Math.min(original, bound.max);
    await annotate(ctx, ref, w, { max: bound.max, by, before: original });
    if (current !== setTo) {
      await scaleTo(ctx, ref, w, target, setTo);
      ctx.events.normal(
        budget,
        bound.reason,
        `${bound.reason === "Suspended" ? "Suspended" : "Capped"} ${target} at ${setTo} replicas (was ${current}).`,
      );
    }
    held.push({ target, replicas: original, setTo, reason: bound.reason });
  }
  for (const record of records.values()) await release(ctx, budget, workloads.get(record.target), record);
  return held;
}

/** Gives back every count the budget holds (its deletion, or Advisory). */
export async function releaseAll(ctx: ReconcileContext, budget: CarbonBudget): Promise<void> {
  const workloads = budgetWorkloads(ctx, budget);
  for (const record of budget.status?.held ?? []) await release(ctx, budget, workloads.get(record.target), record);
}

async function release(
  ctx: ReconcileContext,
  budget: CarbonBudget,
  w: Workload | undefined,
  record: HeldReplicas,
): Promise<void> {
  if (!w) return;
  const ref = WORKLOAD_KINDS[record.target.split("/")[0] as string] as KindRef;
  await annotate(ctx, ref, w, undefined);
  if (record.hpa) return releaseHpa(ctx, budget, w, record);
  if (record.scaledObject) return releaseScaledObject(ctx, budget, record);
  const current = replicasOf(w, record.target, ctx.now.getTime());
  if (current !== record.setTo && current !== record.replicas) {
    ctx.events.normal(budget, "Released", `${record.target} was changed to ${current} replicas meanwhile; left alone.`);
    return;
  }
  // Already at the count to give back: a scale-up made before, whose status write was lost, is the restore.
  if (current !== record.replicas) await scaleTo(ctx, ref, w, record.target, record.replicas);
  ctx.events.normal(budget, "Restored", `Restored ${record.target} to ${record.replicas} replicas.`);
}

/** Writes (or removes) the bound other controllers respect and the count to give back; nothing when already so. */
async function annotate(
  ctx: ReconcileContext,
  ref: KindRef,
  w: Workload,
  bound: { max: number; by: string; before?: number } | undefined,
): Promise<void> {
  // Without `before` (a cap through an HPA), the count to give back is the HPA's, not the workload's.
  const want = {
    [MAX_REPLICAS_ANNOTATION]: bound ? String(bound.max) : null,
    [BOUND_BY_ANNOTATION]: bound?.by ?? null,
    [REPLICAS_BEFORE_ANNOTATION]: bound?.before !== undefined ? String(bound.before) : null,
  };
  const annotations = w.metadata.annotations ?? {};
  if (Object.entries(want).every(([k, v]) => (annotations[k] ?? null) === v)) return;
  await ctx.client.patch(ref, w.metadata.namespace, w.metadata.name, "merge", { metadata: { annotations: want } });
}
