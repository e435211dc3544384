import { type EdgeNode, EdgeNodeKind, type Taint } from "../../crds/edgenode.ts";
import { parseDuration } from "../../crds/duration.ts";
import {
  DEFAULT_LATENCY_TARGET_MS,
  type SiteRecord,
  checkHierarchy,
  owningSite,
  rollup,
} from "../../edge/hierarchy.ts";
import { type MemberHealth, memberHealth, msUntilNextExpiry, percentile, sitePhase } from "../../edge/health.ts";
import { Prober } from "../../edge/prober.ts";
import { parseQuantity, sumResources } from "../../runtime/quantity.ts";
import type { Cache } from "../../runtime/cache.ts";
import { type ReconcileContext, defineController } from "../../runtime/controller.ts";
import { LeaseKind, NODE_LEASE_NAMESPACE, NodeKind } from "../../runtime/kinds.ts";
import { metaTime } from "../../runtime/time.ts";
import { matchesSelector } from "../../runtime/labels.ts";
import type { KubeObject } from "../../runtime/objects.ts";
import { edgeNodeMetrics } from "./metrics.ts";
import { type Node, pushToNode } from "./node-push.ts";

export const SITE_LABEL = "nextgen.itechsmart.io/edge-node";
export const TIER_LABEL = "nextgen.itechsmart.io/tier";
export const OFFLINE_TAINT = "nextgen.itechsmart.io/offline";
const REGION_LABEL = "topology.kubernetes.io/region";
const ZONE_LABEL = "topology.kubernetes.io/zone";
const FINALIZER = "nextgen.itechsmart.io/release-nodes";
const PARENT_INDEX = "edgenode-parent";
const CAPACITY = ["cpu", "memory", "pods", "nvidia.com/gpu", "amd.com/gpu"] as const;
const MAX_MEMBERS_LISTED = 50;
const LATENCY_REFRESH_MS = 60_000;
/** While the caches are behind (cut off from the API server), health is looked at again this often. */
const CATCH_UP_RECHECK_MS = 5_000;

type Lease = KubeObject & { spec?: { renewTime?: string } };

let prober: Prober | undefined;

const record = (s: EdgeNode): SiteRecord => ({
  name: s.metadata.name,
  tier: s.spec.tier,
  parent: s.spec.parentRef?.name,
});

function selects(site: EdgeNode, node: KubeObject): boolean {
  if (site.spec.nodeNames?.includes(node.metadata.name)) return true;
  return site.spec.nodeSelector !== undefined && matchesSelector(node.metadata.labels, site.spec.nodeSelector);
}

/** Sites whose selector or names take in node (several may; owningSite picks the one it belongs to). */
function sitesSelecting(node: KubeObject, cache: Cache): EdgeNode[] {
  return cache.list<EdgeNode>(EdgeNodeKind).filter((s) => !s.metadata.deletionTimestamp && selects(s, node));
}

/** Keys to reconcile when a Node changes: the sites that select it, and the site its label names (it may leave). */
function sitesOfNode(node: KubeObject, cache: Cache): string[] {
  const names = new Set(sitesSelecting(node, cache).map((s) => s.metadata.name));
  const labelled = node.metadata.labels?.[SITE_LABEL];
  if (labelled) names.add(labelled);
  return [...names];
}

/**
 * Keeps an EdgeNode's status the truth about its site: members (the Nodes it selects and owns), their health
 * from Ready conditions and heartbeat Leases, capacity, probe latency against the target, its place in the
 * hierarchy and the roll-up of its subtree; pushes the site's labels and taints onto members and takes them off
 * Nodes that leave.
 */
export const edgeNodeController = defineController<EdgeNode>({
  name: "edgenode",
  for: EdgeNodeKind,
  watches: [
    // A Node's change reaches the sites it is in now and the ones it was in before.
    {
      kind: NodeKind,
      map: (node, cache, old) => [...new Set([...sitesOfNode(node, cache), ...(old ? sitesOfNode(old, cache) : [])])],
    },
    {
      kind: LeaseKind,
      namespace: NODE_LEASE_NAMESPACE,
      map: (lease, cache) => {
        const node = cache.get(NodeKind, undefined, lease.metadata.name);
        return node ? sitesOfNode(node, cache) : [];
      },
    },
    {
      // A site's status reaches its parent (roll-ups); a change of what it is (tier, parent, existence) also
      // reaches its children, whose hierarchy check depends on it. A status change alone touches only the chain.
      kind: EdgeNodeKind,
      map: (obj, cache, old) => {
        const site = obj as EdgeNode;
        const before = old as EdgeNode | undefined;
        const keys = new Set([site.spec.parentRef?.name, before?.spec.parentRef?.name]);
        if (!before || before.metadata.generation !== site.metadata.generation || site.metadata.deletionTimestamp) {
          for (const c of cache.byIndex(EdgeNodeKind, PARENT_INDEX, site.metadata.name)) keys.add(c.metadata.name);
        }
        keys.delete(undefined);
        return [...keys] as string[];
      },
    },
  ],
  rbac: [{ apiGroups: [""], resources: ["nodes"], verbs: ["patch"] }],
  maxConcurrentReconciles: 4,
  setup(cache) {
    cache
      .informer<EdgeNode>(EdgeNodeKind)
      .addIndex(PARENT_INDEX, (s) => (s.spec.parentRef ? [s.spec.parentRef.name] : []));
    cache.informer<Node>(NodeKind).addTransform(trimNodeStatus);
    cache.informer<Lease>(LeaseKind).addTransform(trimLease);
  },
  start(enqueue, _cache, registry) {
    const probeSeconds = edgeNodeMetrics(registry).probeSeconds;
    const p = (prober = new Prober(enqueue, (site, seconds) => probeSeconds.observe({ site }, seconds)));
    return () => p.stopAll();
  },

  metrics: edgeNodeMetrics,
  async reconcile(ctx, site) {
    const name = site.metadata.name;
    const metrics = edgeNodeMetrics(ctx.registry);
    if (site.metadata.deletionTimestamp) {
      prober?.stop(name);
      for (const node of labelledNodes(ctx.cache, name)) await pushToNode(ctx, node, {}, []);
      metrics.forget(name);
      await ctx.removeFinalizer(site, FINALIZER);
      return;
    }
    site = await ctx.addFinalizer(site, FINALIZER);
    const status = ctx.status(site);
    // Heartbeats are judged as of when the caches last held every renewal: a partition between the operator and
    // the API server hides renewals that happened, and must not make a site look Offline (nor taint its Nodes).
    const now = ctx.now.getTime();
    const heardUntil = Math.min(
      ctx.cache.informer(LeaseKind).currentAsOf(now),
      ctx.cache.informer(NodeKind).currentAsOf(now),
    );
    const graceMs = parseDuration(site.spec.offline?.gracePeriod ?? "40s");

    // Hierarchy.
    const sites = new Map(ctx.cache.list<EdgeNode>(EdgeNodeKind).map((s) => [s.metadata.name, record(s)]));
    const hierarchy = checkHierarchy(record(site), sites);
    if (hierarchy.valid) status.condition("HierarchyValid", "True", "Valid", `${site.spec.tier} in a valid hierarchy.`);
    else status.condition("HierarchyValid", "False", hierarchy.reason, hierarchy.message);

    // Membership and health.
    const members = ctx.cache
      .list<Node>(NodeKind)
      .filter((n) => selects(site, n) && owningSite(sitesSelecting(n, ctx.cache).map(record))?.name === name)
      .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    const health = members.map((n) =>
      memberHealth(
        {
          name: n.metadata.name,
          ready: n.status?.conditions?.find((c) => c.type === "Ready"),
          leaseRenewTime: ctx.cache.get<Lease>(LeaseKind, NODE_LEASE_NAMESPACE, n.metadata.name)?.spec?.renewTime,
        },
        heardUntil,
        graceMs,
      ),
    );
    const target = site.spec.latencyTargetMs ?? DEFAULT_LATENCY_TARGET_MS[site.spec.tier];
    prober?.configure(name, site.spec.probe, target);
    const probe = site.spec.probe ? prober?.stats(name) : undefined;
    const phase = sitePhase(health, probe?.reachable);

    // Labels and taints on members; Nodes that left are released.
    const memberNames = new Set(members.map((n) => n.metadata.name));
    for (const node of members) await pushToNode(ctx, node, siteLabels(site, node), siteTaints(site, phase));
    for (const node of labelledNodes(ctx.cache, name))
      if (!memberNames.has(node.metadata.name)) await pushToNode(ctx, node, {}, []);

    // Capacity and the subtree.
    const readyMembers = members.filter((_, i) => health[i]?.ready);
    const allocatable = sumResources(
      readyMembers.map((n) => n.status?.allocatable),
      CAPACITY,
    );
    const gpus = ["nvidia.com/gpu", "amd.com/gpu"].reduce(
      (n, r) => n + (allocatable[r] ? parseQuantity(allocatable[r] as string) : 0),
      0,
    );
    const children = ctx.cache
      .byIndex<EdgeNode>(EdgeNodeKind, PARENT_INDEX, name)
      .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    const ready = health.filter((h) => h.ready).length;

    status.set({
      phase,
      nodes: { total: members.length, ready, notReady: members.length - ready },
      readyNodes: `${ready}/${members.length}`,
      // A fresh member's heartbeat moves every 10 s: showing it would cost a status write per heartbeat, so the
      // time is shown where it says something, on members whose heartbeat went stale.
      members: health.slice(0, MAX_MEMBERS_LISTED).map((h) => ({
        name: h.name,
        ready: h.ready,
        reason: h.reason,
        lastHeartbeat: h.fresh ? undefined : h.lastHeartbeat,
      })),
      allocatable,
      latencyTargetMs: target,
      children: children.map((c) => c.metadata.name),
      // Around a cycle each site's total would include its own, growing with every write (a hot loop): a site in a
      // cycle counts only its own members.
      rollup: rollup(
        { nodes: members.length, readyNodes: ready, gpus },
        !hierarchy.valid && hierarchy.reason === "Cycle" ? [] : children.map((c) => c.status?.rollup),
      ),
    });
    setLatency(ctx, site, probe, target);
    setReady(ctx, site, phase, hierarchy.valid ? undefined : hierarchy.message, health);

    const previous = site.status?.phase;
    if (previous !== phase) {
      const note = `Phase ${previous ?? "(none)"} -> ${phase}: ${ready}/${members.length} members Ready.`;
      if (phase === "Online" || phase === "Empty") ctx.events.normal(site, phase, note);
      else ctx.events.warning(site, phase, note);
    }
    metrics.record(name, site.spec.tier, phase);

    const expiry = msUntilNextExpiry(health, heardUntil, graceMs);
    const refresh = site.spec.probe ? LATENCY_REFRESH_MS : undefined;
    const catchingUp = heardUntil < now ? CATCH_UP_RECHECK_MS : undefined;
    const next = [expiry, refresh, catchingUp].filter((x): x is number => x !== undefined);
    return next.length ? { requeueAfterMs: Math.min(...next) } : undefined;
  },
});

/**
 * Keeps of a Node's status only what sites read: its allocatable resources and the Ready condition's status,
 * reason and heartbeat. The rest (images, nodeInfo, addresses, capacity, the other conditions, messages) was most
 * of the operator's heap with 10 000 Nodes cached, and no controller reads it.
 */
function trimNodeStatus(node: Node): void {
  if (!node.status) return;
  const ready = node.status.conditions?.find((c) => c.type === "Ready");
  node.status = {
    ...(node.status.allocatable && { allocatable: node.status.allocatable }),
    ...(ready && {
      conditions: [
        { type: ready.type, status: ready.status, reason: ready.reason, lastHeartbeatTime: ready.lastHeartbeatTime },
      ],
    }),
  };
}

/** A Node's Lease is read for its renewTime alone: whole, 10 000 of them took 8 MB of a 53 MB live heap. */
function trimLease(lease: Lease): void {
  lease.spec = { renewTime: lease.spec?.renewTime };
  delete lease.metadata.ownerReferences;
  delete lease.metadata.managedFields;
}

/** Nodes carrying this site's label: members, and those that left and still need releasing. */
function labelledNodes(cache: Cache, site: string): Node[] {
  return cache.list<Node>(NodeKind, { selector: { matchLabels: { [SITE_LABEL]: site } } });
}

function siteLabels(site: EdgeNode, node: Node): Record<string, string> {
  const labels: Record<string, string> = {
    ...site.spec.nodeLabels,
    [SITE_LABEL]: site.metadata.name,
    [TIER_LABEL]: site.spec.tier,
  };
  // Topology labels only where the Node has none of its own (or has ours, applied before).
  const ours = (key: string) => {
    const own = node.metadata.managedFields?.some((m) => JSON.stringify(m.fieldsV1 ?? {}).includes(`"f:${key}"`));
    return node.metadata.labels?.[key] === undefined || own;
  };
  if (site.spec.region && ours(REGION_LABEL)) labels[REGION_LABEL] = site.spec.region;
  if (site.spec.zone && ours(ZONE_LABEL)) labels[ZONE_LABEL] = site.spec.zone;
  return labels;
}

function siteTaints(site: EdgeNode, phase: string): Taint[] {
  const taints = [...(site.spec.nodeTaints ?? [])];
  if (phase === "Offline" && site.spec.offline?.action === "Taint")
    taints.push({ key: OFFLINE_TAINT, effect: "NoSchedule" });
  return taints;
}

function setLatency(ctx: ReconcileContext, site: EdgeNode, probe: ReturnType<Prober["stats"]>, target: number): void {
  const status = ctx.status(site);
  if (!site.spec.probe) {
    status.set({ latency: undefined });
    status.condition("Reachable", "Unknown", "NoProbe", "No probe is configured.");
    status.condition("LatencyTargetMet", "Unknown", "NoProbe", "No probe is configured.");
    return;
  }
  // Latency figures move with every probe: they are refreshed when the prober reports a change (reachability or
  // the target flipping) and at most once a minute otherwise, not on every reconcile.
  const shown = site.status?.latency;
  const fresh = {
    p50Ms: percentile(probe?.samplesMs ?? [], 50),
    p95Ms: percentile(probe?.samplesMs ?? [], 95),
    samples: probe?.samplesMs.length ?? 0,
    lastProbeTime: probe?.lastProbeTime && metaTime(new Date(probe.lastProbeTime)),
  };
  const met = (p95?: number) => (p95 === undefined ? undefined : p95 <= target);
  const keep =
    shown?.lastProbeTime !== undefined &&
    ctx.now.getTime() - Date.parse(shown.lastProbeTime) < LATENCY_REFRESH_MS &&
    met(shown.p95Ms) === met(fresh.p95Ms) &&
    shown.samples > 0 === fresh.samples > 0;
  const latency = keep ? shown : fresh;
  status.set({ latency });
  if (probe?.reachable === undefined)
    status.condition("Reachable", "Unknown", "Probing", `Probing ${site.spec.probe.url}.`);
  else if (probe.reachable) status.condition("Reachable", "True", "ProbeSucceeded", `${site.spec.probe.url} answers.`);
  else
    status.condition(
      "Reachable",
      "False",
      "ProbeFailed",
      `${site.spec.probe.url} does not answer: ${probe.lastError ?? "no response"}.`,
    );
  const p95 = latency?.p95Ms;
  if (p95 === undefined) status.condition("LatencyTargetMet", "Unknown", "NoSamples", "No successful probe yet.");
  else if (p95 <= target)
    status.condition("LatencyTargetMet", "True", "WithinTarget", `p95 ${p95} ms is within the ${target} ms target.`);
  else status.condition("LatencyTargetMet", "False", "TargetMissed", `p95 ${p95} ms exceeds the ${target} ms target.`);
}

function setReady(
  ctx: ReconcileContext,
  site: EdgeNode,
  phase: string,
  hierarchyProblem: string | undefined,
  health: MemberHealth[],
): void {
  const status = ctx.status(site);
  if (hierarchyProblem) return void status.condition("Ready", "False", "HierarchyInvalid", hierarchyProblem);
  const down = health.filter((h) => !h.ready).map((h) => `${h.name} (${h.reason})`);
  const messages: Record<string, string> = {
    Online: `All ${health.length} members are Ready.`,
    Degraded: `Not Ready: ${down.slice(0, 10).join(", ")}${down.length > 10 ? ", ..." : ""}.`,
    Partitioned:
      "The site's probe fails while its members still heartbeat: a network partition; workloads are left alone.",
    Offline: "No member has heartbeated within the grace period.",
    Empty: "No Node matches the site's nodeSelector or nodeNames.",
  };
  status.condition("Ready", phase === "Online" ? "True" : "False", phase, messages[phase] as string);
}
