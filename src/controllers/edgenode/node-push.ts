import type { Taint } from "../../crds/edgenode.ts";
import type { ReconcileContext } from "../../runtime/controller.ts";
import { NodeKind } from "../../runtime/kinds.ts";
import type { KubeObject } from "../../runtime/objects.ts";

export type Node = KubeObject & {
  spec?: { taints?: Taint[] };
  status?: {
    allocatable?: Record<string, string>;
    conditions?: Array<{ type: string; status: string; reason?: string; lastHeartbeatTime?: string }>;
  };
};

/** The taint keys this operator put on a Node, so that it removes exactly those and no one else's. */
export const MANAGED_TAINTS_ANNOTATION = "nextgen.itechsmart.io/managed-taints";

/**
 * Makes a Node carry labels and taints for its site, and only those of this operator's: labels by server-side
 * apply under the operator's field manager (a label it stops applying goes, others' stay), taints by a merge
 * patch guarded by resourceVersion that touches only the keys recorded as ours (the taint list is atomic, so
 * applying it would take the node-lifecycle controller's taints over). Empty labels and taints release the Node.
 */
export async function pushToNode(
  ctx: ReconcileContext,
  node: Node,
  labels: Record<string, string>,
  taints: Taint[],
): Promise<void> {
  const current = node.spec?.taints ?? [];
  const recorded = (node.metadata.annotations?.[MANAGED_TAINTS_ANNOTATION] ?? "").split(",").filter(Boolean);
  const desiredKeys = new Set(taints.map((t) => t.key));
  // Recorded before the taints change and trimmed after, so a crash in between never forgets a taint of ours.
  const managed = [...new Set([...desiredKeys, ...recorded.filter((k) => current.some((t) => t.key === k))])].sort();
  const applied = await ctx.apply<Node>(NodeKind, {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: node.metadata.name,
      labels,
      annotations: managed.length ? { [MANAGED_TAINTS_ANNOTATION]: managed.join(",") } : undefined,
    },
  });
  const next = [...current.filter((t) => !managed.includes(t.key)), ...taints];
  if (sameTaints(current, next)) return;
  await ctx.client.patch(NodeKind, undefined, node.metadata.name, "merge", {
    metadata: { resourceVersion: applied.metadata.resourceVersion },
    spec: { taints: next },
  });
}

function sameTaints(a: Taint[], b: Taint[]): boolean {
  const key = (t: Taint) => `${t.key}=${t.value ?? ""}:${t.effect}`;
  return a.length === b.length && a.map(key).sort().join() === b.map(key).sort().join();
}
