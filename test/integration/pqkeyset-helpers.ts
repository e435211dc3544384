import type { KubeClient } from "../../src/runtime/client.ts";
import { type PQKeySet, type PQKeySetSpec, PQKeySetKind } from "../../src/crds/pqkeyset.ts";
import { ConfigMapKind, SecretKind } from "../../src/runtime/kinds.ts";
import type { KubeObject } from "../../src/runtime/objects.ts";
import { waitUntil } from "../../src/runtime/wait.ts";

export type Secret = KubeObject & { data?: Record<string, string> };
export type ConfigMap = KubeObject & { data?: Record<string, string> };

/** On every key set the tests make, so that a file can delete its own (deleteAfterFile). */
export const TEST_KEY_SET = { "test.nextgen.itechsmart.io/file": "pqkeyset" };

export function pqKeySet(namespace: string, name: string, spec: Partial<PQKeySetSpec> = {}): PQKeySet {
  return {
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "PQKeySet",
    metadata: { name, namespace, labels: TEST_KEY_SET },
    spec: spec as PQKeySetSpec,
  };
}

export const readyCondition = (ks: PQKeySet | undefined) => ks?.status?.conditions?.find((c) => c.type === "Ready");
export const decode = (s: string | undefined) =>
  s === undefined ? undefined : Buffer.from(s, "base64").toString("utf8");

/** A key-set reader bound to one namespace. */
export function keySets(admin: KubeClient, namespace: string) {
  const get = (name: string) => admin.get<PQKeySet>(PQKeySetKind, namespace, name);
  return {
    get,
    secret: (name: string) => admin.get<Secret>(SecretKind, namespace, name),
    configMap: (name: string) => admin.get<ConfigMap>(ConfigMapKind, namespace, name),
    /** Waits until the key set satisfies pred, answering it. */
    waitFor: (name: string, what: string, pred: (ks: PQKeySet) => boolean, timeoutMs = 60_000) =>
      waitUntil(
        `PQKeySet ${namespace}/${name}: ${what}`,
        async () => {
          const ks = await get(name);
          return ks && pred(ks) ? ks : undefined;
        },
        { timeoutMs, intervalMs: 200 },
      ),
  };
}

/** Ready=True for the resource's current generation. */
export const isReady = (ks: PQKeySet) =>
  readyCondition(ks)?.status === "True" && ks.status?.observedGeneration === ks.metadata.generation;
