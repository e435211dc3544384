import type { CarbonBudget, HeldReplicas } from "../../crds/carbonbudget.ts";
import { isNotFound } from "../../runtime/client.ts";
import type { ReconcileContext } from "../../runtime/controller.ts";
import { ScaledObjectKind } from "../../runtime/kinds.ts";
import { KEDA_DEFAULT_MAX_REPLICAS, type ScaledObject } from "../shared/keda.ts";
import { BOUND_BY_ANNOTATION } from "../shared/replicas.ts";

/*
 * Holds on a workload a KEDA ScaledObject drives. A cap written on KEDA's HPA is undone (shared/keda.ts), and KEDA
 * scales a target at zero back to its minReplicaCount. So the budget holds through the ScaledObject, as KEDA's own fields mean (KEDA v2.21,
 * apis/keda/v1alpha1/scaledobject_types.go, controllers/keda/scaledobject_controller.go):
 * - a cap lowers spec.maxReplicaCount (default 100), which KEDA copies to its HPA's maxReplicas, and the HPA
 *   controller brings the workload down; minReplicaCount (default 0) is lowered only if it would be above the cap;
 * - a suspension sets the annotation autoscaling.keda.sh/paused-replicas to "0": KEDA scales the target to zero,
 *   deletes its HPA and stops its scale loop until the annotation goes.
 * What the ScaledObject had is written on it first (KEDA_BEFORE_ANNOTATION, so that a restart mid-way knows it) and
 * kept in status; a field absent before is absent again after. On release each field the budget set is given back
 * only if it still holds what the budget set: one someone changed meanwhile is theirs.
 */

/** KEDA's annotation that pauses a ScaledObject at a replica count (apis/keda/v1alpha1: PausedReplicasAnnotation). */
export const KEDA_PAUSED_REPLICAS_ANNOTATION = "autoscaling.keda.sh/paused-replicas";
/** On a ScaledObject the budget holds: what it had before, as JSON of ScaledObjectBefore. */
export const KEDA_BEFORE_ANNOTATION = "carbon.nextgen.itechsmart.io/scaledobject-before";
type ScaledObjectBefore = NonNullable<HeldReplicas["scaledObject"]>;

/** What the ScaledObject has now, in the shape the budget records. */
function fieldsOf(so: ScaledObject): Omit<ScaledObjectBefore, "name"> {
  const paused = so.metadata.annotations?.[KEDA_PAUSED_REPLICAS_ANNOTATION];
  return {
    ...(so.spec.minReplicaCount !== undefined && { minReplicaCount: so.spec.minReplicaCount }),
    ...(so.spec.maxReplicaCount !== undefined && { maxReplicaCount: so.spec.maxReplicaCount }),
    ...(paused !== undefined && { pausedReplicas: paused }),
  };
}

type Fields = { minReplicaCount: number | null; maxReplicaCount: number | null; pausedReplicas: string | null };

/**
 * What the budget wants on a ScaledObject that had `before` and has `now`, to hold its workload at `max`. The cap's
 * maxReplicaCount and the pause are the budget's while it holds; minReplicaCount is whoever sets it, lowered only
 * when above the cap (KEDA rejects min above max).
 */
function heldFields(before: ScaledObjectBefore, max: number, now: Omit<ScaledObjectBefore, "name">): Fields {
  const minNow = now.minReplicaCount ?? null;
  // Suspended: paused at zero, with a cap taken earlier in the hold given back (it means nothing while paused).
  if (max === 0)
    return { minReplicaCount: minNow, maxReplicaCount: before.maxReplicaCount ?? null, pausedReplicas: "0" };
  const maxReplicaCount = Math.min(before.maxReplicaCount ?? KEDA_DEFAULT_MAX_REPLICAS, max);
  return {
    maxReplicaCount,
    minReplicaCount: (minNow ?? 0) > maxReplicaCount ? maxReplicaCount : minNow,
    // Paused by its owner at a count above the cap: paused at the cap instead.
    pausedReplicas:
      before.pausedReplicas !== undefined && Number(before.pausedReplicas) > maxReplicaCount
        ? String(maxReplicaCount)
        : (before.pausedReplicas ?? null),
  };
}

function readBefore(so: ScaledObject): ScaledObjectBefore | undefined {
  const marked = so.metadata.annotations?.[KEDA_BEFORE_ANNOTATION];
  if (!marked) return undefined;
  try {
    return { ...(JSON.parse(marked) as Omit<ScaledObjectBefore, "name">), name: so.metadata.name as string };
  } catch {
    return undefined;
  }
}

/** The merge patch that brings the ScaledObject's fields to `want` (null removes), or undefined when already so. */
function patchFor(so: ScaledObject, want: Partial<Fields>) {
  const now = fieldsOf(so);
  const changed = (Object.keys(want) as (keyof Fields)[]).filter((k) => (now[k] ?? null) !== want[k]);
  if (changed.length === 0) return undefined;
  const spec: Record<string, unknown> = {};
  const annotations: Record<string, unknown> = {};
  for (const k of changed)
    if (k === "pausedReplicas") annotations[KEDA_PAUSED_REPLICAS_ANNOTATION] = want[k];
    else spec[k] = want[k];
  return { changed, patch: { metadata: { annotations }, spec } };
}

/**
 * Holds the workload `target` at `bound.max` through the ScaledObject `name` that drives it; answers the record to
 * keep, or undefined when the ScaledObject is gone (the workload is then held as one nothing drives).
 */
export async function holdThroughScaledObject(
  ctx: ReconcileContext,
  budget: CarbonBudget,
  name: string,
  target: string,
  bound: { max: number; reason: HeldReplicas["reason"] },
  by: string,
): Promise<HeldReplicas | undefined> {
  const ns = budget.metadata.namespace as string;
  const so = await ctx.client.get<ScaledObject>(ScaledObjectKind, ns, name);
  if (!so) return undefined;
  let before = readBefore(so);
  if (!before) {
    before = { name, ...fieldsOf(so) };
    const { name: _, ...recorded } = before;
    await ctx.client.patch(ScaledObjectKind, ns, name, "merge", {
      metadata: { annotations: { [KEDA_BEFORE_ANNOTATION]: JSON.stringify(recorded), [BOUND_BY_ANNOTATION]: by } },
    });
  }
  const want = heldFields(before, bound.max, fieldsOf(so));
  const change = patchFor(so, want);
  if (change) {
    await ctx.client.patch(ScaledObjectKind, ns, name, "merge", change.patch);
    ctx.events.normal(
      budget,
      bound.reason,
      bound.max === 0
        ? `Suspended ${target} through ScaledObject ${name}: ${KEDA_PAUSED_REPLICAS_ANNOTATION} 0.`
        : `Capped ${target} through ScaledObject ${name}: maxReplicaCount ${want.maxReplicaCount}.`,
    );
  }
  return {
    target,
    replicas: before.maxReplicaCount ?? KEDA_DEFAULT_MAX_REPLICAS,
    setTo: bound.max === 0 ? 0 : (want.maxReplicaCount as number),
    reason: bound.reason,
    scaledObject: before,
  };
}

/**
 * Gives a ScaledObject back what it had before the hold: each field the budget set that still holds what it set (a
 * minReplicaCount only if the budget lowered it); a field someone changed meanwhile (a new floor, their own pause) is
 * left as they set it.
 */
export async function releaseScaledObject(ctx: ReconcileContext, budget: CarbonBudget, record: HeldReplicas) {
  const before = record.scaledObject as ScaledObjectBefore;
  const ns = budget.metadata.namespace as string;
  const so = await ctx.client.get<ScaledObject>(ScaledObjectKind, ns, before.name);
  if (!so) return;
  const now = fieldsOf(so);
  const set = heldFields(before, record.setTo, before);
  const restore: Partial<Fields> = {};
  const theirs: string[] = [];
  for (const k of Object.keys(set) as (keyof Fields)[]) {
    const was = before[k] ?? null;
    if (set[k] === was) continue; // not a field the budget changed
    if ((now[k] ?? null) === set[k]) (restore as Record<string, unknown>)[k] = was;
    else theirs.push(k);
  }
  const change = patchFor(so, restore);
  try {
    await ctx.client.patch(ScaledObjectKind, ns, before.name, "merge", {
      metadata: {
        annotations: {
          ...change?.patch.metadata.annotations,
          [KEDA_BEFORE_ANNOTATION]: null,
          [BOUND_BY_ANNOTATION]: null,
        },
      },
      ...(change && Object.keys(change.patch.spec).length > 0 && { spec: change.patch.spec }),
    });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return;
  }
  const restored = Object.entries(restore).map(([k, v]) => `${k} ${v ?? "unset"}`);
  ctx.events.normal(
    budget,
    restored.length ? "Restored" : "Released",
    `ScaledObject ${before.name}: ` +
      [
        restored.length ? `restored ${restored.join(", ")}` : "",
        theirs.length ? `${theirs.join(", ")} set during the hold, kept` : "",
      ]
        .filter(Boolean)
        .join("; ") +
      ".",
  );
}
