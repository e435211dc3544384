import { KwokNodes, POD_FAULT_LABEL } from "../../src/controlplane/kwok.ts";
import type { OperatorProcess } from "../../src/controlplane/operator-process.ts";
import { type CarbonBudget, CarbonBudgetKind, type CarbonBudgetSpec } from "../../src/crds/carbonbudget.ts";
import { type EdgeNode, EdgeNodeKind, type EdgeNodeSpec } from "../../src/crds/edgenode.ts";
import { type PQKeySet, PQKeySetKind, type PQKeySetSpec } from "../../src/crds/pqkeyset.ts";
import { QuantumBackendKind, type QuantumBackendSpec } from "../../src/crds/quantumbackend.ts";
import { type QuantumJob, QuantumJobKind, type QuantumJobSpec } from "../../src/crds/quantumjob.ts";
import { type RemediationPolicy, RemediationPolicyKind } from "../../src/crds/remediationpolicy.ts";
import { SITE_LABEL } from "../../src/controllers/edgenode/controller.ts";
import { REVISION_ANNOTATION } from "../../src/controllers/pqkeyset/secret-state.ts";
import type { KubeClient } from "../../src/runtime/client.ts";
import { findCondition } from "../../src/runtime/conditions.ts";
import { DeploymentKind, EventKind, NamespaceKind, NodeKind, PodKind, SecretKind } from "../../src/runtime/kinds.ts";
import type { KubeObject } from "../../src/runtime/objects.ts";
import { waitUntil } from "../../src/runtime/wait.ts";
import { BELL } from "../fixtures/circuits.ts";
import { kwokDeployment } from "../integration/harness.ts";
import { remediationPolicy } from "../integration/remediation-helpers.ts";

type Deployment = KubeObject & { spec: { replicas: number }; status?: { availableReplicas?: number } };
type Node = KubeObject & { metadata: { labels?: Record<string, string> } };
type Event = KubeObject & { reason: string; regarding: { name: string }; series?: { count: number } };

const POOL = "chaos.nextgen.itechsmart.io/pool";
const SITE = "chaos.nextgen.itechsmart.io/site";
/** The shortest rotation period the CRD allows (MIN_ROTATION_PERIOD): rotations keep landing during every fault. */
const ROTATION_PERIOD_MS = 60_000;
/** A rotation this late is missed, not merely delayed: the operator requeues key sets for their next rotation. */
const ROTATION_SLACK_MS = 20_000;
const ROTATING_KEY_SETS = 4;
/** retainPrevious of the rotating key sets (the CRD's maximum): the Secret keeps the current key and these. */
const RETAINED = 10;
const QUANTUM_JOBS = 3;
/** The Deployment a CarbonBudget caps while the grid is dirty, and the count it must give back exactly. */
const CAPPED_REPLICAS = 4;

/** Effects counted over a scenario, each against what it should have been. */
export interface Effects {
  /** Scheduled rotations across the rotating key sets. */
  rotations: number;
  /** Fleet key sets holding their one key. */
  fleetKeys: number;
  remediationActions: number;
  quantumStarts: number;
  replicaRestores: number;
  nodesLabelled: number;
  /** Offline events of the site: its Nodes run on KWOK, which renews their Leases unless the API server is down. */
  siteOfflineAlarms: number;
  lost: number;
  duplicated: number;
  /** What was lost or duplicated, for the failure message. */
  problems: string[];
}

/** The operator's own counters that show effects: job starts and ends, API writes, throttled requests. */
export async function operatorCounters(op: OperatorProcess) {
  return {
    quantumStarts: await op.metric("nextgen_quantumjob_queue_wait_seconds_count"),
    quantumFinished: await op.metric("nextgen_quantumjob_finished_total"),
    writes: await op.apiWrites(),
    throttled: await op.metric("rest_client_requests_total", { code: "429" }),
  };
}
export type Counters = Awaited<ReturnType<typeof operatorCounters>>;

/**
 * One namespace with every kind the operator reconciles, each with an effect that must happen exactly once:
 * PQKeySets rotating every minute, a RemediationPolicy restarting a crash-looping KWOK pod, QuantumJobs on the
 * embedded simulator, an EdgeNode labelling KWOK Nodes (one joins late), and a CarbonBudget capping a Deployment
 * and giving its replicas back when the grid gets clean.
 */
export class Workload {
  readonly ns = "chaos";
  private readonly admin: KubeClient;
  private readonly nodes: KwokNodes;
  private readonly site = "chaos-site";
  private fleetSize = 0;
  private triggered = false;

  constructor(admin: KubeClient) {
    this.admin = admin;
    this.nodes = new KwokNodes(admin);
  }

  /** Creates the workload and waits until the operator has converged it (the crash loop and jobs come later). */
  async create(opts: { fleet?: number } = {}): Promise<void> {
    const { admin, ns } = this;
    await admin.create(NamespaceKind, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    for (const i of [1, 2, 3]) await this.nodes.register(`chaos-${i}`, { labels: { [POOL]: "chaos", [SITE]: "a" } });
    await admin.create<EdgeNode>(EdgeNodeKind, {
      apiVersion: "nextgen.itechsmart.io/v1alpha1",
      kind: "EdgeNode",
      metadata: { name: this.site },
      spec: {
        tier: "ContinentalHub",
        region: "eu",
        nodeSelector: { matchLabels: { [SITE]: "a" } },
        nodeLabels: { "example.com/pool": "chaos" },
      } as unknown as EdgeNodeSpec,
    });
    await admin.create(QuantumBackendKind, {
      apiVersion: "nextgen.itechsmart.io/v1alpha1",
      kind: "QuantumBackend",
      metadata: { name: "simulator" },
      spec: { type: "Simulator", execution: { mode: "Embedded" } } as unknown as QuantumBackendSpec,
    });
    for (let i = 0; i < ROTATING_KEY_SETS; i++)
      await this.keySet(`rotating-${i}`, { rotationPeriod: "1m", retainPrevious: RETAINED });
    await this.addFleet(opts.fleet ?? 0);

    await admin.create(DeploymentKind, this.deployment("web", 2));
    await admin.create(
      RemediationPolicyKind,
      remediationPolicy(ns, "web", {}, { triggers: [{ name: "crashloop", crashLoop: { restarts: 1, window: "5m" } }] }),
    );
    await admin.create(DeploymentKind, this.deployment("capped", CAPPED_REPLICAS));
    await admin.create<CarbonBudget>(CarbonBudgetKind, {
      apiVersion: "nextgen.itechsmart.io/v1alpha1",
      kind: "CarbonBudget",
      metadata: { name: "caps", namespace: ns },
      spec: {
        budgetGrams: 1_000_000,
        period: { type: "Daily" },
        mode: "Enforce",
        energy: { estimate: { wattsPerCore: "10" } },
        intensity: { static: { gramsPerKWh: 450 }, refreshInterval: "5s" },
        actions: {
          capReplicas: [
            { targetRef: { kind: "Deployment", name: "capped" }, bands: [{ aboveGramsPerKWh: 300, maxReplicas: 2 }] },
          ],
        },
      } as unknown as CarbonBudgetSpec,
    });
    await this.waitConverged("the workload to converge before the fault", 600_000);
  }

  /** Key sets with a long period: each must get exactly one key. */
  async addFleet(n: number): Promise<void> {
    const from = this.fleetSize;
    this.fleetSize += n;
    for (let i = from; i < this.fleetSize; i++) await this.keySet(`fleet-${i}`, { rotationPeriod: "720h" });
  }

  /** How long until the rotating key sets' next scheduled rotation is due. */
  async nextRotationInMs(): Promise<number> {
    const keySets = (await this.admin.list<PQKeySet>(PQKeySetKind, { namespace: this.ns })).items;
    const due = keySets
      .filter((ks) => ks.metadata.name.startsWith("rotating-"))
      .map((ks) => Date.parse(ks.status?.nextRotationTime ?? ""));
    return Math.min(...due) - Date.now();
  }

  /**
   * Sets off the effects that land around the fault: a pod starts crash-looping (one RestartPod due), jobs are
   * submitted (one start each), the grid turns clean (the capped Deployment back to exactly its count), and a
   * Node joins the site (labelled once).
   */
  async trigger(): Promise<void> {
    const { admin, ns } = this;
    const [sick] = (await admin.list(PodKind, { namespace: ns, labelSelector: "app=web" })).items;
    await admin.patch(PodKind, ns, sick?.metadata.name as string, "merge", {
      metadata: { labels: { [POD_FAULT_LABEL]: "crashloop" } },
    });
    for (let i = 0; i < QUANTUM_JOBS; i++)
      await admin.create<QuantumJob>(QuantumJobKind, {
        apiVersion: "nextgen.itechsmart.io/v1alpha1",
        kind: "QuantumJob",
        metadata: { name: `bell-${i}`, namespace: ns },
        spec: { shots: 100, circuit: { openqasm: BELL } } as QuantumJobSpec,
      });
    await admin.patch(CarbonBudgetKind, ns, "caps", "merge", { spec: { intensity: { static: { gramsPerKWh: 100 } } } });
    await this.nodes.register("chaos-4", { labels: { [POOL]: "chaos", [SITE]: "a" }, wait: false });
    this.triggered = true;
  }

  /**
   * Polls until every resource shows its effect done, nothing pending (API errors while the control plane heals
   * count as not yet); what is lost or duplicated for good is left to effects() to report.
   */
  async waitConverged(what: string, timeoutMs: number, onPending?: (pending: string[]) => void): Promise<void> {
    let last: Effects | undefined;
    try {
      await waitUntil(
        what,
        async () => {
          last = await this.effects();
          const pending = last.problems.filter((p) => p.startsWith("pending"));
          onPending?.(pending);
          return pending.length === 0;
        },
        { timeoutMs, intervalMs: 1000 },
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}; still wrong: ${last?.problems.join("; ") ?? "(never read)"}`);
    }
  }

  /**
   * Every effect counted, with what is lost or duplicated. `counters` (the operator's, since the trigger) count
   * quantum job starts; without it, jobs are checked from their status alone.
   */
  async effects(counters?: Counters): Promise<Effects> {
    const { admin, ns } = this;
    const e: Effects = {
      rotations: 0,
      fleetKeys: 0,
      remediationActions: 0,
      quantumStarts: 0,
      replicaRestores: 0,
      nodesLabelled: 0,
      siteOfflineAlarms: 0,
      lost: 0,
      duplicated: 0,
      problems: [],
    };
    const lost = (n: number, what: string) => n > 0 && ((e.lost += n), e.problems.push(`lost: ${what}`));
    const duplicated = (n: number, what: string) =>
      n > 0 && ((e.duplicated += n), e.problems.push(`duplicated: ${what}`));
    const pending = (what: string) => e.problems.push(`pending: ${what}`);

    const keySets = (await admin.list<PQKeySet>(PQKeySetKind, { namespace: ns })).items;
    const secrets = new Map(
      (await admin.list(SecretKind, { namespace: ns })).items.map((s) => [s.metadata.name, s] as const),
    );
    for (const ks of keySets) {
      const name = ks.metadata.name;
      const revision = ks.status?.revision ?? 0;
      const created = (ks.status?.keys ?? []).map((k) => Date.parse(k.createdAt)).sort((a, b) => a - b);
      const secretRevision = Number(secrets.get(name)?.metadata.annotations?.[REVISION_ANNOTATION] ?? 0);
      if (findCondition(ks.status?.conditions, "Ready")?.status !== "True") pending(`${name} Ready`);
      if (secretRevision !== revision) pending(`${name} status revision ${revision}, Secret ${secretRevision}`);
      // Every revision's key is still there, up to what retainPrevious keeps.
      const kept = Math.min(revision, 1 + (ks.spec.retainPrevious ?? 0));
      lost(kept - created.length, `${name} keeps ${created.length} keys at revision ${revision}`);
      if (name.startsWith("fleet-")) {
        duplicated(revision - 1, `${name} rotated ${revision - 1} times with a 720h period`);
        if (revision === 1) e.fleetKeys++;
        continue;
      }
      e.rotations += Math.max(0, revision - 1);
      // The schedule: each key is due a period after the one before it. Sooner is a rotation too many; a rotation
      // long overdue is pending until the operator catches up (late, and once) or the scenario's timeout says lost.
      for (let i = 1; i < created.length; i++) {
        const gap = (created[i] as number) - (created[i - 1] as number);
        duplicated(gap < ROTATION_PERIOD_MS - 1000 ? 1 : 0, `${name} rotated after ${gap} ms`);
      }
      const current = created.at(-1);
      if (current === undefined) pending(`${name} has no key`);
      else if (Date.now() > current + ROTATION_PERIOD_MS + ROTATION_SLACK_MS) pending(`${name} rotation overdue`);
    }
    if (keySets.length !== ROTATING_KEY_SETS + this.fleetSize) pending(`${keySets.length} key sets listed`);

    const site = await admin.get<EdgeNode>(EdgeNodeKind, undefined, this.site);
    const wantNodes = this.triggered ? 4 : 3;
    if (site?.status?.phase !== "Online" || site.status.nodes?.ready !== wantNodes)
      pending(`site ${site?.status?.phase} with ${site?.status?.nodes?.ready} of ${wantNodes} Nodes ready`);
    const nodes = (await admin.list<Node>(NodeKind, { labelSelector: `${SITE}=a` })).items;
    e.nodesLabelled = nodes.filter((n) => n.metadata.labels?.[SITE_LABEL] === this.site).length;
    if (e.nodesLabelled !== wantNodes) pending(`${e.nodesLabelled} of ${wantNodes} Nodes labelled`);
    // A cluster-scoped object's events are in "default".
    e.siteOfflineAlarms = (await admin.list<Event>(EventKind, { namespace: "default" })).items
      .filter((ev) => ev.reason === "Offline" && ev.regarding.name === this.site)
      .reduce((n, ev) => n + (ev.series?.count ?? 1), 0);

    const capped = await admin.get<Deployment>(DeploymentKind, ns, "capped");
    const budget = await admin.get<CarbonBudget>(CarbonBudgetKind, ns, "caps");
    const restores = (await admin.list<Event>(EventKind, { namespace: ns })).items
      .filter((ev) => ev.reason === "Restored" && ev.regarding.name === "caps")
      .reduce((n, ev) => n + (ev.series?.count ?? 1), 0);
    if (this.triggered) {
      e.replicaRestores = restores;
      if (capped?.spec.replicas !== CAPPED_REPLICAS || budget?.status?.held)
        pending(`capped at ${capped?.spec.replicas} replicas, held ${JSON.stringify(budget?.status?.held)}`);
      duplicated(restores - 1, `${restores} Restored events`);
    } else if (capped?.spec.replicas !== 2) pending(`capped at ${capped?.spec.replicas} replicas, not yet 2`);

    const policy = await admin.get<RemediationPolicy>(RemediationPolicyKind, ns, "web");
    // Actions taken (Succeeded or Failed): the incident's Resolved entry names the action too, but is none.
    const actions = (policy?.status?.history ?? []).filter(
      (h) => h.action === "RestartPod" && (h.result === "Succeeded" || h.result === "Failed"),
    );
    e.remediationActions = actions.length;
    if (findCondition(policy?.status?.conditions, "Ready")?.status !== "True") pending("policy Ready");
    if (this.triggered) {
      if (!actions.some((h) => h.result === "Succeeded")) pending(`RestartPod: ${JSON.stringify(actions)}`);
      duplicated(actions.length - 1, `${actions.length} RestartPod actions`);
    }
    const web = await admin.get<Deployment>(DeploymentKind, ns, "web");
    if (web?.status?.availableReplicas !== 2) pending(`web has ${web?.status?.availableReplicas} available`);

    if (this.triggered) {
      const jobs = (await admin.list<QuantumJob>(QuantumJobKind, { namespace: ns })).items;
      const succeeded = jobs.filter((j) => j.status?.phase === "Succeeded" && j.status.startTime).length;
      if (succeeded !== QUANTUM_JOBS) pending(`${succeeded} of ${QUANTUM_JOBS} jobs Succeeded`);
      e.quantumStarts = counters?.quantumStarts ?? succeeded;
      if (counters) {
        duplicated(counters.quantumStarts - QUANTUM_JOBS, `${counters.quantumStarts} quantum job starts`);
        duplicated(counters.quantumFinished - QUANTUM_JOBS, `${counters.quantumFinished} quantum jobs finished`);
      }
    }
    return e;
  }

  private deployment(name: string, replicas: number) {
    return kwokDeployment({ namespace: this.ns, name, replicas, nodeSelector: { [POOL]: "chaos" } });
  }

  private keySet(name: string, spec: Partial<PQKeySetSpec>): Promise<PQKeySet> {
    return this.admin.create<PQKeySet>(PQKeySetKind, {
      apiVersion: "nextgen.itechsmart.io/v1alpha1",
      kind: "PQKeySet",
      metadata: { name, namespace: this.ns },
      spec: { algorithm: "ML-KEM-768", ...spec } as PQKeySetSpec,
    });
  }
}
