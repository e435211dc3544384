/** Identifies a resource type the runtime can read, watch and write. */
export interface KindRef {
  group: string; // "" for the core group
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

export function apiVersionOf(k: KindRef): string {
  return k.group ? `${k.group}/${k.version}` : k.version;
}

export function kindKey(k: KindRef): string {
  return `${k.plural}.${k.group || "core"}`;
}

/** The REST path of a collection (namespace undefined: across all namespaces) or of one object. */
export function resourcePath(k: KindRef, namespace?: string, name?: string, subresource?: string): string {
  const base = k.group ? `/apis/${k.group}/${k.version}` : `/api/${k.version}`;
  const ns = k.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  const obj = name ? `/${encodeURIComponent(name)}` : "";
  const sub = name && subresource ? `/${subresource}` : "";
  return `${base}${ns}/${k.plural}${obj}${sub}`;
}

const core = (kind: string, plural: string, namespaced = true): KindRef => ({
  group: "",
  version: "v1",
  kind,
  plural,
  namespaced,
});

export const SecretKind = core("Secret", "secrets");
export const ConfigMapKind = core("ConfigMap", "configmaps");
export const PodKind = core("Pod", "pods");
export const NodeKind = core("Node", "nodes", false);
export const NamespaceKind = core("Namespace", "namespaces", false);
export const JobKind: KindRef = { group: "batch", version: "v1", kind: "Job", plural: "jobs", namespaced: true };
export const DeploymentKind: KindRef = {
  group: "apps",
  version: "v1",
  kind: "Deployment",
  plural: "deployments",
  namespaced: true,
};
export const CustomResourceDefinitionKind: KindRef = {
  group: "apiextensions.k8s.io",
  version: "v1",
  kind: "CustomResourceDefinition",
  plural: "customresourcedefinitions",
  namespaced: false,
};
export const StatefulSetKind: KindRef = {
  group: "apps",
  version: "v1",
  kind: "StatefulSet",
  plural: "statefulsets",
  namespaced: true,
};
export const ReplicaSetKind: KindRef = {
  group: "apps",
  version: "v1",
  kind: "ReplicaSet",
  plural: "replicasets",
  namespaced: true,
};
export const HorizontalPodAutoscalerKind: KindRef = {
  group: "autoscaling",
  version: "v2",
  kind: "HorizontalPodAutoscaler",
  plural: "horizontalpodautoscalers",
  namespaced: true,
};
/** KEDA's ScaledObject: where one drives a workload, KEDA owns the workload's HPA (keda-hpa-<name>). */
export const ScaledObjectKind: KindRef = {
  group: "keda.sh",
  version: "v1alpha1",
  kind: "ScaledObject",
  plural: "scaledobjects",
  namespaced: true,
};
export const NetworkPolicyKind: KindRef = {
  group: "networking.k8s.io",
  version: "v1",
  kind: "NetworkPolicy",
  plural: "networkpolicies",
  namespaced: true,
};
export const LeaseKind: KindRef = {
  group: "coordination.k8s.io",
  version: "v1",
  kind: "Lease",
  plural: "leases",
  namespaced: true,
};
/** Where kubelets keep their heartbeat Leases, one per Node, named after it. */
export const NODE_LEASE_NAMESPACE = "kube-node-lease";

export const EventKind: KindRef = {
  group: "events.k8s.io",
  version: "v1",
  kind: "Event",
  plural: "events",
  namespaced: true,
};
