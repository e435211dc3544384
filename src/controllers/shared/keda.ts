import type { KubeObject } from "../../runtime/objects.ts";

/*
 * Where a KEDA ScaledObject drives a workload, KEDA owns the workload's HPA (keda-hpa-<name>) and rewrites it from the
 * ScaledObject's spec (KEDA v2.21, apis/keda/v1alpha1/scaledobject_types.go GetHPAMinReplicas/GetHPAMaxReplicas, controllers/keda/hpa.go): a change written on that HPA is undone, so the operator's
 * controllers change the ScaledObject instead.
 */

/** The ScaledObject whose HPA this is (KEDA sets itself as the HPA's controller owner), if any. */
export function scaledObjectOwning(hpa: KubeObject): string | undefined {
  return hpa.metadata.ownerReferences?.find((o) => o.kind === "ScaledObject" && o.apiVersion.startsWith("keda.sh/"))
    ?.name;
}

export type ScaledObject = KubeObject & { spec: { minReplicaCount?: number; maxReplicaCount?: number } };

/** KEDA's defaults for absent counts (apis/keda/v1alpha1/scaledobject_types.go): maxReplicaCount 100, min 0. */
export const KEDA_DEFAULT_MAX_REPLICAS = 100;
