/**
 * Whether a RemediationPolicy may cordon and drain Nodes now. Nodes are shared by every namespace, so a namespaced
 * policy acts on them only with cluster authority, and never so much at once that the cluster loses its capacity or
 * a cluster-wide failure is made worse by draining. Pure: the controller gathers the facts.
 *
 * - Authority: the policy's Namespace carries NODE_ACTIONS_LABEL=allowed. Namespaces are cluster-scoped: labelling
 *   one takes cluster rights a namespace's own admins do not have (Pod Security Admission's labels are the
 *   precedent), so a policy's author cannot grant it to themselves.
 * - Bound: Nodes unschedulable at once, whoever cordoned them, stay within maxUnschedulable (a count or a
 *   percentage of the cluster's Nodes, rounded up), as NodeHealthCheck's minHealthy keeps capacity.
 * - Storm gate: when stormThreshold or more of the Nodes are not Ready, the fault is the cluster's, not a Node's
 *   (a partition, a control-plane outage), and draining would only move pods onto what is left: nothing acts.
 */
import { type Hold, minAvailableCount } from "./ladder.ts";

export const NODE_ACTIONS_LABEL = "nextgen.itechsmart.io/node-actions";

export interface NodeGateLimits {
  maxUnschedulable: string | number;
  stormThreshold: string;
}

export interface NodeFacts {
  name: string;
  ready: boolean;
  unschedulable: boolean;
}

export function checkNodeGate(
  limits: NodeGateLimits,
  f: { namespace: string; allowed: boolean; nodes: NodeFacts[]; toCordon: string[] },
): Hold | undefined {
  if (!f.allowed)
    return {
      brake: "NodeActionsNotAllowed",
      message: `Namespace ${f.namespace} is not labelled ${NODE_ACTIONS_LABEL}=allowed: a namespaced policy cannot cordon or drain shared Nodes without that cluster-level grant.`,
    };
  const total = f.nodes.length;
  const notReady = f.nodes.filter((n) => !n.ready).length;
  const storm = minAvailableCount(limits.stormThreshold, total);
  if (total && notReady >= Math.max(1, storm))
    return {
      brake: "NodeStorm",
      message: `${notReady} of ${total} Nodes are not Ready (the storm gate is ${limits.stormThreshold}): a cluster-wide fault is not drained.`,
    };
  const unschedulable = f.nodes.filter((n) => n.unschedulable).length;
  const max = minAvailableCount(limits.maxUnschedulable, total);
  const adding = f.toCordon.filter((name) => !f.nodes.find((n) => n.name === name)?.unschedulable).length;
  if (adding && unschedulable + adding > max)
    return {
      brake: "MaxUnschedulableNodes",
      message: `${unschedulable} of ${total} Nodes are unschedulable already; cordoning ${f.toCordon.join(", ")} would pass the operator's bound of ${max} (--max-unschedulable-nodes ${limits.maxUnschedulable}).`,
    };
  return undefined;
}
