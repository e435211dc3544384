import { type RemediationPolicy, RemediationPolicyKind, type WorkloadKind } from "../../crds/remediationpolicy.ts";
import type { Cache } from "../../runtime/cache.ts";
import {
  DeploymentKind,
  HorizontalPodAutoscalerKind,
  type KindRef,
  PodKind,
  StatefulSetKind,
} from "../../runtime/kinds.ts";
import { type LabelSelector, matchesSelector } from "../../runtime/labels.ts";
import type { KubeObject } from "../../runtime/objects.ts";
import type { PodLike } from "../../remediation/pod-history.ts";

export type Pod = KubeObject & PodLike;

export type WorkloadObject = KubeObject & {
  spec: {
    replicas?: number;
    selector: LabelSelector;
    template?: { metadata?: { annotations?: Record<string, string> } };
  };
  status?: {
    replicas?: number;
    updatedReplicas?: number;
    observedGeneration?: number;
    /** StatefulSets: the revision of pods before and after an update. */
    currentRevision?: string;
    updateRevision?: string;
  };
};

export type Hpa = KubeObject & {
  spec: { scaleTargetRef: { kind: string; name: string }; minReplicas?: number; maxReplicas: number };
};

/** A workload a policy covers, with what the policy reads of it. */
export interface Workload {
  kind: WorkloadKind;
  ref: KindRef;
  obj: WorkloadObject;
  /** "Kind/name", as incidents and history name it. */
  key: string;
  /** Its pods that are not terminating. */
  pods: Pod[];
  desired: number;
  /** Its Ready pods, counted from the pods themselves: the workload's status lags the pods it summarises. */
  available: number;
  /** The HorizontalPodAutoscaler that scales it, if any: scale acts on its minReplicas instead. */
  hpa?: Hpa;
}

export const WORKLOAD_REFS: Record<WorkloadKind, KindRef> = {
  Deployment: DeploymentKind,
  StatefulSet: StatefulSetKind,
};

export function isReady(pod: PodLike): boolean {
  return pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

function describe(kind: WorkloadKind, obj: WorkloadObject, cache: Cache): Workload {
  const ns = obj.metadata.namespace as string;
  const pods = cache
    .list<Pod>(PodKind, { namespace: ns, selector: obj.spec.selector })
    .filter((p) => !p.metadata.deletionTimestamp);
  const hpa = cache
    .list<Hpa>(HorizontalPodAutoscalerKind, { namespace: ns })
    .find((h) => h.spec.scaleTargetRef.kind === kind && h.spec.scaleTargetRef.name === obj.metadata.name);
  return {
    kind,
    ref: WORKLOAD_REFS[kind],
    obj,
    key: `${kind}/${obj.metadata.name}`,
    pods,
    desired: obj.spec.replicas ?? 1,
    available: pods.filter(isReady).length,
    hpa,
  };
}

/** The workloads a policy covers now: its targetRef (if it exists) or every Deployment and StatefulSet it selects. */
export function workloadsOf(policy: RemediationPolicy, cache: Cache): Workload[] {
  const ns = policy.metadata.namespace as string;
  const ref = policy.spec.targetRef;
  if (ref) {
    const obj = cache.get<WorkloadObject>(WORKLOAD_REFS[ref.kind], ns, ref.name);
    return obj ? [describe(ref.kind, obj, cache)] : [];
  }
  const selector = policy.spec.selector ?? {};
  return (["Deployment", "StatefulSet"] as const).flatMap((kind) =>
    cache
      .list<WorkloadObject>(WORKLOAD_REFS[kind], { namespace: ns, selector })
      .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))
      .map((obj) => describe(kind, obj, cache)),
  );
}

/** Whether the policy covers this workload (by reference or selector), from the workload alone. */
export function covers(policy: RemediationPolicy, kind: WorkloadKind, obj: KubeObject): boolean {
  if (policy.metadata.namespace !== obj.metadata.namespace) return false;
  const ref = policy.spec.targetRef;
  if (ref) return ref.kind === kind && ref.name === obj.metadata.name;
  return matchesSelector(obj.metadata.labels, policy.spec.selector ?? {});
}

/** The policies in a namespace: where the watch mappings start from. */
export function policiesInNamespace(cache: Cache, namespace: string | undefined): RemediationPolicy[] {
  return namespace ? cache.list<RemediationPolicy>(RemediationPolicyKind, { namespace }) : [];
}
