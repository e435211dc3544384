import {
  type HistoryEntry,
  type RemediationPolicy,
  RemediationPolicyKind,
  type RemediationPolicySpec,
} from "../../src/crds/remediationpolicy.ts";
import type { KubeClient } from "../../src/runtime/client.ts";
import { waitUntil } from "./harness.ts";

/**
 * A policy on the Deployment of its own name, with brakes opened up (tests close the one they are about):
 * spec's fields win, and spec.safety's over these.
 */
export function remediationPolicy(
  namespace: string,
  name: string,
  labels: Record<string, string>,
  spec: Partial<RemediationPolicySpec>,
): RemediationPolicy {
  return {
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "RemediationPolicy",
    metadata: { name, namespace, labels },
    spec: {
      targetRef: { apiVersion: "apps/v1", kind: "Deployment", name },
      actions: [{ restartPod: {}, timeout: "8s" }],
      ...spec,
      safety: { maxConcurrent: 5, cooldown: "0s", maxActionsPerHour: 50, minAvailable: 0, ...spec.safety },
    } as RemediationPolicySpec,
  };
}

/** Waits for the policy to satisfy pred; on timeout, the error shows the status it had last. */
export async function waitForPolicy(
  admin: KubeClient,
  namespace: string,
  name: string,
  what: string,
  pred: (p: RemediationPolicy) => boolean,
  timeoutMs = 60_000,
): Promise<RemediationPolicy> {
  let last: RemediationPolicy | undefined;
  try {
    return await waitUntil(
      `RemediationPolicy ${name}: ${what}`,
      async () => {
        last = await admin.get<RemediationPolicy>(RemediationPolicyKind, namespace, name);
        return last && pred(last) ? last : undefined;
      },
      { timeoutMs, intervalMs: 250 },
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; its status was ${JSON.stringify(last?.status, null, 1)}`);
  }
}

/** Whether the policy's history holds an entry of this action and result. */
export function hasHistory(p: RemediationPolicy, action: string, result: HistoryEntry["result"]): boolean {
  return (p.status?.history ?? []).some((h) => h.action === action && h.result === result);
}
