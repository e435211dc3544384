import type { ManagedFieldsEntry } from "./apply.ts";
import type { KindRef } from "./kinds.ts";

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: ManagedFieldsEntry[];
}

/** metav1.Condition. */
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
}

/** A custom resource as the runtime sees it: spec and status are the kind's own. */
export interface Resource<Spec = unknown, Status = unknown> extends KubeObject {
  spec: Spec;
  status?: Status;
}

/** The queue key of an object: "namespace/name", or "name" when cluster-scoped (as client-go's MetaNamespaceKeyFunc). */
export function objectKey(o: { metadata: { namespace?: string; name: string } }): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf("/");
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

export function controllerOwnerRef(kind: KindRef, owner: KubeObject): OwnerReference {
  if (!owner.metadata.uid) throw new Error(`owner ${objectKey(owner)} has no uid`);
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind ?? kind.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function isControlledBy(obj: KubeObject, owner: KubeObject): boolean {
  return (obj.metadata.ownerReferences ?? []).some((r) => r.controller && r.uid === owner.metadata.uid);
}

/**
 * Orders two resourceVersions of objects of one resource: negative, zero or positive as a is older, the same or
 * newer; undefined when either is not the positive integer without leading zeros that Kubernetes 1.35 made
 * comparable (KEP-5504). Integers of any length: compared by length first, then digit by digit.
 */
export function compareResourceVersions(a: string | undefined, b: string | undefined): number | undefined {
  const valid = /^[1-9][0-9]*$/;
  if (!a || !b || !valid.test(a) || !valid.test(b)) return undefined;
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
