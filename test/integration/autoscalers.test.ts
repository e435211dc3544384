import { beforeAll, describe, expect, test } from "vitest";
import { Keda } from "../../src/controlplane/keda.ts";
import { KwokNodes, POD_FAULT_LABEL } from "../../src/controlplane/kwok.ts";
import { RemediationPolicyKind } from "../../src/crds/remediationpolicy.ts";
import { type CarbonBudget, CarbonBudgetKind } from "../../src/crds/carbonbudget.ts";
import { HPA_BEFORE_ANNOTATION } from "../../src/controllers/carbonbudget/holds.ts";
import { KEDA_BEFORE_ANNOTATION, KEDA_PAUSED_REPLICAS_ANNOTATION } from "../../src/controllers/carbonbudget/keda.ts";
import {
  DeploymentKind,
  EventKind,
  HorizontalPodAutoscalerKind,
  NodeKind,
  ScaledObjectKind,
} from "../../src/runtime/kinds.ts";
import {
  type KubeObject,
  cluster,
  createNamespace,
  deleteAfterFile,
  deploymentHpa,
  kwokDeployment,
  startOperator,
  stopAfterFile,
  waitUntil,
} from "./harness.ts";
import { hasHistory, remediationPolicy, waitForPolicy } from "./remediation-helpers.ts";

// CarbonBudget holds on workloads an autoscaler drives, against the real autoscalers: the kube-controller-manager's
// HPA controller and a KEDA operator built from its Go module (hack/keda; src/controlplane/keda.ts says what of KEDA
// runs and why). The Deployments' pods run on a KWOK Node (a suspension needs a budget their energy spends).

type Deployment = KubeObject & { spec: { replicas: number } };
type DeploymentStatus = {
  observedGeneration?: number;
  replicas?: number;
  updatedReplicas?: number;
  availableReplicas?: number;
  unavailableReplicas?: number;
};
type Hpa = KubeObject & { spec: { minReplicas?: number; maxReplicas: number } };
type ScaledObject = KubeObject & { spec: { minReplicaCount?: number; maxReplicaCount?: number } };
type Event = KubeObject & { reason: string; note?: string; regarding: { name: string } };

const { admin, operatorKubeconfig, adminKubeconfig } = cluster();
const FILE = { "test.nextgen.itechsmart.io/file": "autoscalers" };
const POOL = { "test.nextgen.itechsmart.io/pool": "autoscalers" };
const nodes = new KwokNodes(admin, FILE);
/** How long a hold is watched for anything moving: several HPA syncs (15 s) and KEDA polls (5 s here). */
const HOLD_WINDOW_MS = 180_000;

let keda: Keda;
let capNs: string;
let suspendNs: string;

beforeAll(async () => {
  capNs = await createNamespace(admin, "as-cap");
  suspendNs = await createNamespace(admin, "as-suspend");
  keda = await Keda.start(adminKubeconfig, [capNs, suspendNs], (line) => process.stderr.write(`[keda] ${line}\n`));
  // KEDA's finalizer is on each ScaledObject: it stops after they are deleted.
  stopAfterFile(() => keda.stop());
  await startOperator(operatorKubeconfig);
  deleteAfterFile(admin, FILE, [
    CarbonBudgetKind,
    ScaledObjectKind,
    HorizontalPodAutoscalerKind,
    DeploymentKind,
    NodeKind,
  ]);
  await nodes.register(`as-${capNs}`, { labels: POOL });
}, 3_600_000);

/** A KWOK Deployment whose pods each request a tenth of a core (KEDA's CPU trigger is relative to requests). */
async function deployment(ns: string, name: string, replicas: number, podLabels: Record<string, string> = {}) {
  const d = kwokDeployment({ namespace: ns, name, replicas, nodeSelector: POOL, labels: FILE, podLabels });
  (d.spec.template.spec.containers[0] as Record<string, unknown>).resources = { requests: { cpu: "100m" } };
  await admin.create(DeploymentKind, d);
}

/** A ScaledObject on Deployment `name` with a CPU trigger: KEDA's HPA keeps the bounds; no metric moves it here. */
const scaledObject = (ns: string, name: string, min: number, max?: number) =>
  admin.create(ScaledObjectKind, {
    apiVersion: "keda.sh/v1alpha1",
    kind: "ScaledObject",
    metadata: { name, namespace: ns, labels: FILE },
    spec: {
      scaleTargetRef: { name },
      pollingInterval: 5,
      minReplicaCount: min,
      ...(max !== undefined && { maxReplicaCount: max }),
      triggers: [{ type: "cpu", metricType: "Utilization", metadata: { value: "80" } }],
    },
  } as KubeObject);

/** An Enforce CarbonBudget, Daily, of `spec`. */
const enforcedBudget = (ns: string, name: string, spec: Record<string, unknown>) =>
  admin.create(CarbonBudgetKind, {
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "CarbonBudget",
    metadata: { name, namespace: ns, labels: FILE },
    spec: { mode: "Enforce", period: { type: "Daily" }, ...spec },
  } as KubeObject);

const get = <T extends KubeObject>(kind: typeof DeploymentKind, ns: string, name: string) =>
  admin.get<T>(kind, ns, name);
const replicas = async (ns: string, name: string) => (await get<Deployment>(DeploymentKind, ns, name))?.spec.replicas;
const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 90_000) =>
  waitUntil(what, probe, { timeoutMs, intervalMs: 500 });
/** KEDA's HPA of ScaledObject `name` once it satisfies `pred`; a timeout shows KEDA's output. */
async function kedaHpa(ns: string, name: string, what: string, pred: (h: Hpa) => boolean = () => true) {
  try {
    return await waitFor(`KEDA's HPA for ${name}: ${what}`, async () => {
      const h = await get<Hpa>(HorizontalPodAutoscalerKind, ns, `keda-hpa-${name}`);
      return h && pred(h) ? h : undefined;
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}; KEDA's output:\n${keda.output().split("\n").slice(-40).join("\n")}`);
  }
}
const waitReplicas = (ns: string, name: string, n: number) =>
  waitFor(`${name} at ${n} replicas`, async () => (await replicas(ns, name)) === n);
const waitBudget = (ns: string, name: string, what: string, pred: (b: CarbonBudget) => boolean) =>
  waitFor(`CarbonBudget ${name}: ${what}`, async () => {
    const b = await admin.get<CarbonBudget>(CarbonBudgetKind, ns, name);
    return b && pred(b) ? b : undefined;
  });
const eventsOf = async (ns: string, name: string) =>
  (await admin.list<Event>(EventKind, { namespace: ns })).items.filter((e) => e.regarding.name === name);
/** A reconcile of the budget that began after now: its accounting moved past this instant. */
const reconciledAfter = async (ns: string, name: string) => {
  const since = Date.now();
  await waitBudget(ns, name, "reconciled again", (b) => Date.parse(b.status?.accountedUntil ?? "") > since + 1000);
};

/**
 * What must not move while a hold holds: each object's spec and generation (a spec write: the budget's, the HPA
 * controller's or KEDA's; an HPA has no generation, so its spec is compared) and the Deployment's resourceVersion
 * (any write at all, once its status has caught up). A bounded watch of a window
 * is honest here: the assertion IS that nothing changes during it, so it is not a sleep standing in for a
 * condition; it fails at the first change seen, naming it.
 */
async function expectStill(objects: { kind: typeof DeploymentKind; ns: string; name: string }[], ms: number) {
  // The Deployment controller writes a Deployment's status until its pods have caught up with a scale (replicas,
  // then availability): the window starts once each has, so what it sees moving is a write of someone's making.
  for (const o of objects.filter((x) => x.kind === DeploymentKind))
    await waitFor(`Deployment ${o.name}'s status caught up with its spec`, async () => {
      const d = await admin.get<Deployment & { status?: DeploymentStatus }>(DeploymentKind, o.ns, o.name);
      const s = d?.status;
      const n = d?.spec.replicas;
      return (
        s?.observedGeneration === d?.metadata.generation &&
        (s?.replicas ?? 0) === n &&
        (s?.updatedReplicas ?? 0) === n &&
        (s?.availableReplicas ?? 0) === n &&
        !s?.unavailableReplicas
      );
    });
  const snapshot = async () =>
    Promise.all(
      objects.map(async (o) => {
        const obj = await admin.get<Deployment>(o.kind, o.ns, o.name);
        return {
          object: `${o.kind.kind}/${o.name}`,
          generation: obj?.metadata.generation,
          spec: obj?.spec,
          ...(o.kind === DeploymentKind && { resourceVersion: obj?.metadata.resourceVersion }),
        };
      }),
    );
  const first = await snapshot();
  const until = Date.now() + ms;
  let looks = 0;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await snapshot()).toEqual(first);
    looks++;
  }
  expect(looks).toBeGreaterThan(ms / 4_000);
}

describe("holds on autoscaled workloads", () => {
  test("a cap through an HPA and through a KEDA ScaledObject holds still for minutes under the real HPA controller and KEDA; floors set mid-hold are kept; the rest comes back exactly", async () => {
    const ns = capNs;
    await deployment(ns, "web", 4);
    await admin.create(HorizontalPodAutoscalerKind, deploymentHpa(ns, "web", 3, 6, FILE));
    await deployment(ns, "queue", 5);
    // maxReplicaCount unset (KEDA's 100): restored unset.
    await scaledObject(ns, "queue", 3);
    expect((await kedaHpa(ns, "queue", "made")).spec).toMatchObject({ minReplicas: 3, maxReplicas: 100 });

    await enforcedBudget(ns, "caps", {
      budgetGrams: 1_000_000,
      energy: { estimate: { wattsPerCore: "10" } },
      intensity: { static: { gramsPerKWh: 450 }, refreshInterval: "5s" },
      actions: {
        capReplicas: ["web", "queue"].map((name) => ({
          targetRef: { kind: "Deployment", name },
          bands: [{ aboveGramsPerKWh: 300, maxReplicas: 2 }],
        })),
      },
    });
    const capped = await waitBudget(ns, "caps", "both held", (b) => (b.status?.held ?? []).length === 2);
    expect(capped.status?.held).toEqual(
      expect.arrayContaining([
        {
          target: "Deployment/web",
          replicas: 6,
          setTo: 2,
          reason: "Capped",
          hpa: { name: "web", minReplicas: 3, maxReplicas: 6 },
        },
        {
          target: "Deployment/queue",
          replicas: 100,
          setTo: 2,
          reason: "Capped",
          scaledObject: { name: "queue", minReplicaCount: 3 },
        },
      ]),
    );
    // KEDA copies the ScaledObject's bounds to its HPA, and the HPA controller brings each Deployment down.
    await kedaHpa(ns, "queue", "capped", (h) => h.spec.maxReplicas === 2 && h.spec.minReplicas === 2);
    await waitReplicas(ns, "web", 2);
    await waitReplicas(ns, "queue", 2);

    await expectStill(
      [
        { kind: DeploymentKind, ns, name: "web" },
        { kind: DeploymentKind, ns, name: "queue" },
        { kind: HorizontalPodAutoscalerKind, ns, name: "web" },
        { kind: HorizontalPodAutoscalerKind, ns, name: "keda-hpa-queue" },
        { kind: ScaledObjectKind, ns, name: "queue" },
      ],
      HOLD_WINDOW_MS,
    );

    // Floors a user sets during the hold, within the cap: theirs, not undone by the budget.
    await admin.patch(HorizontalPodAutoscalerKind, ns, "web", "merge", { spec: { minReplicas: 1 } });
    await admin.patch(ScaledObjectKind, ns, "queue", "merge", { spec: { minReplicaCount: 1 } });
    await reconciledAfter(ns, "caps");
    await reconciledAfter(ns, "caps");
    expect((await get<Hpa>(HorizontalPodAutoscalerKind, ns, "web"))?.spec).toMatchObject({
      minReplicas: 1,
      maxReplicas: 2,
    });
    expect((await get<ScaledObject>(ScaledObjectKind, ns, "queue"))?.spec).toMatchObject({
      minReplicaCount: 1,
      maxReplicaCount: 2,
    });

    // The cap lifts: maxReplicas back exactly (unset on the ScaledObject, as it was); the floors stay as the user set.
    await admin.patch(CarbonBudgetKind, ns, "caps", "merge", { spec: { intensity: { static: { gramsPerKWh: 100 } } } });
    await waitBudget(ns, "caps", "released", (b) => !b.status?.held);
    const web = await get<Hpa>(HorizontalPodAutoscalerKind, ns, "web");
    expect(web?.spec).toMatchObject({ minReplicas: 1, maxReplicas: 6 });
    expect(web?.metadata.annotations?.[HPA_BEFORE_ANNOTATION]).toBeUndefined();
    const queue = await get<ScaledObject>(ScaledObjectKind, ns, "queue");
    expect(queue?.spec.minReplicaCount).toBe(1);
    expect(queue?.spec.maxReplicaCount).toBeUndefined();
    expect(queue?.metadata.annotations?.[KEDA_BEFORE_ANNOTATION]).toBeUndefined();
    await kedaHpa(ns, "queue", "KEDA's default maximum", (h) => h.spec.maxReplicas === 100 && h.spec.minReplicas === 1);
    const notes = (await eventsOf(ns, "caps")).map((e) => `${e.reason}: ${e.note}`);
    expect(notes).toEqual(
      expect.arrayContaining([
        "Restored: Restored HorizontalPodAutoscaler web to maxReplicas 6, minReplicas 1 (set to 1 during the hold; kept).",
        "Restored: ScaledObject queue: restored maxReplicaCount unset; minReplicaCount set during the hold, kept.",
      ]),
    );
  }, 480_000);

  test("a suspension through KEDA pauses the ScaledObject at zero (KEDA deletes its HPA and scales to 0) and holds; the owner's annotations come back exactly", async () => {
    const ns = suspendNs;
    await deployment(ns, "worker", 3);
    await scaledObject(ns, "worker", 2, 8);
    await kedaHpa(ns, "worker", "made");
    // 3 pods' worth of a spent budget: 10 kW a core at 1000 g/kWh against 2 g.
    await enforcedBudget(ns, "spent", {
      budgetGrams: 2,
      energy: { estimate: { wattsPerCore: "10000", utilization: "1" } },
      intensity: { static: { gramsPerKWh: 1000 }, refreshInterval: "5s" },
      actions: { onExhausted: "Suspend" },
    });
    const suspended = await waitBudget(ns, "spent", "suspended", (b) => (b.status?.held ?? []).length === 1);
    expect(suspended.status?.held).toEqual([
      {
        target: "Deployment/worker",
        replicas: 8,
        setTo: 0,
        reason: "Suspended",
        scaledObject: { name: "worker", minReplicaCount: 2, maxReplicaCount: 8 },
      },
    ]);
    const so = await get<ScaledObject>(ScaledObjectKind, ns, "worker");
    expect(so?.metadata.annotations?.[KEDA_PAUSED_REPLICAS_ANNOTATION]).toBe("0");
    expect(so?.spec).toMatchObject({ minReplicaCount: 2, maxReplicaCount: 8 });
    await waitReplicas(ns, "worker", 0);
    await waitFor("KEDA's HPA deleted while paused", async () =>
      (await get<Hpa>(HorizontalPodAutoscalerKind, ns, "keda-hpa-worker")) === undefined ? true : undefined,
    );
    // Held at zero: KEDA does not scale it back to its minReplicaCount, and nothing else writes it.
    await expectStill(
      [
        { kind: DeploymentKind, ns, name: "worker" },
        { kind: ScaledObjectKind, ns, name: "worker" },
      ],
      60_000,
    );

    await admin.patch(CarbonBudgetKind, ns, "spent", "merge", { spec: { budgetGrams: 1_000_000 } });
    await waitBudget(ns, "spent", "released", (b) => !b.status?.held);
    const released = await get<ScaledObject>(ScaledObjectKind, ns, "worker");
    expect(released?.metadata.annotations?.[KEDA_PAUSED_REPLICAS_ANNOTATION]).toBeUndefined();
    expect(released?.metadata.annotations?.[KEDA_BEFORE_ANNOTATION]).toBeUndefined();
    expect(released?.spec).toMatchObject({ minReplicaCount: 2, maxReplicaCount: 8 });
    // KEDA, unpaused, makes its HPA again and brings the target up to its minReplicaCount.
    await kedaHpa(ns, "worker", "made again", (h) => h.spec.minReplicas === 2 && h.spec.maxReplicas === 8);
    await waitReplicas(ns, "worker", 2);
  }, 300_000);

  test("a RemediationPolicy's scale-up on a workload KEDA drives raises the ScaledObject's minReplicaCount (KEDA would undo its HPA's), and deleting the policy gives it back", async () => {
    const ns = capNs;
    await deployment(ns, "api", 2, { [POD_FAULT_LABEL]: "crashloop" });
    await scaledObject(ns, "api", 2, 6);
    await kedaHpa(ns, "api", "made");
    await admin.create(
      RemediationPolicyKind,
      remediationPolicy(ns, "api", FILE, {
        triggers: [{ name: "crashloop", crashLoop: { restarts: 1, window: "2m" } }],
        actions: [{ scale: { by: 2, max: 6 }, timeout: "5m" }],
      }),
    );
    const scaled = await waitForPolicy(admin, ns, "api", "scaled", (p) => hasHistory(p, "Scale", "Succeeded"), 90_000);
    expect(scaled.status?.scaled).toEqual([
      { target: "Deployment/api", field: "scaledObjectMinReplicaCount", scaledObject: "api", original: 2, current: 4 },
    ]);
    // KEDA carries the new floor to its HPA, and the HPA controller scales the Deployment up to it.
    await kedaHpa(ns, "api", "at the new floor", (h) => h.spec.minReplicas === 4);
    await waitReplicas(ns, "api", 4);
    await admin.delete(RemediationPolicyKind, ns, "api");
    await waitFor("the policy gone", async () =>
      (await admin.get(RemediationPolicyKind, ns, "api")) === undefined ? true : undefined,
    );
    expect((await get<ScaledObject>(ScaledObjectKind, ns, "api"))?.spec.minReplicaCount).toBe(2);
    await kedaHpa(ns, "api", "back at 2", (h) => h.spec.minReplicas === 2);
  });
});
