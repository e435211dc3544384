import type { KubeClient } from "../../runtime/client.ts";
import type { KindRef } from "../../runtime/kinds.ts";
import type { KubeObject } from "../../runtime/objects.ts";

/**
 * The contract between the operator's controllers that change replica counts: a CarbonBudget that caps or
 * suspends a workload writes the bound here, and every other writer (RemediationPolicy's scale) stays at or below
 * it. The cap wins: it is the one limit a budget can hold work to, and a scale-up it bounds is reported on the
 * policy as well as on the budget.
 */
export const MAX_REPLICAS_ANNOTATION = "carbon.nextgen.itechsmart.io/max-replicas";
/** "namespace/name" of the CarbonBudget that set MAX_REPLICAS_ANNOTATION. */
export const BOUND_BY_ANNOTATION = "carbon.nextgen.itechsmart.io/bound-by";
/**
 * The count the budget gives back when the bound lifts, kept on the workload itself (written before it is scaled):
 * a budget killed between scaling and recording it in status still knows the count to restore.
 */
export const REPLICAS_BEFORE_ANNOTATION = "carbon.nextgen.itechsmart.io/replicas-before";

/** The bound a CarbonBudget holds the workload to, if any. */
export function replicaBound(obj: KubeObject): { max: number; by: string } | undefined {
  const value = obj.metadata.annotations?.[MAX_REPLICAS_ANNOTATION];
  if (value === undefined || !/^[0-9]+$/.test(value)) return undefined;
  return { max: Number(value), by: obj.metadata.annotations?.[BOUND_BY_ANNOTATION] ?? "a CarbonBudget" };
}

/** Sets a workload's replicas through its scale subresource (as HPAs and `kubectl scale` do). */
export async function setReplicas(client: KubeClient, ref: KindRef, obj: KubeObject, replicas: number): Promise<void> {
  await client.patch(
    ref,
    obj.metadata.namespace,
    obj.metadata.name,
    "merge",
    { spec: { replicas } },
    {
      subresource: "scale",
    },
  );
}
