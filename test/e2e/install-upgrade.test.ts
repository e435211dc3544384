import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { readManifests } from "../../src/runtime/install.ts";
import { ctr } from "../../src/controlplane/real-node.ts";
import type { HeldReplicas } from "../../src/crds/carbonbudget.ts";
import type { HistoryEntry, Incident, ScaledRecord } from "../../src/crds/remediationpolicy.ts";
import { ROTATE_ANNOTATION } from "../../src/crds/pqkeyset.ts";
import { crds } from "../../src/crds/index.ts";
import { OPERATOR_NAMESPACE } from "../../src/runtime/identity.ts";
import { KubeClient } from "../../src/runtime/client.ts";
import { findCondition } from "../../src/runtime/conditions.ts";
import { CustomResourceDefinitionKind, DeploymentKind, EventKind, NamespaceKind } from "../../src/runtime/kinds.ts";
import type { Condition, KubeObject } from "../../src/runtime/objects.ts";
import { Discovery } from "../../src/runtime/discovery.ts";
import { waitUntil } from "../../src/runtime/wait.ts";
import { CHART, helmRunner } from "../helm.ts";
import { crdKind, kubectl, nodeProbeDeployment } from "./harness.ts";

/*
 * Installing and upgrading as users do, on the real node: release 0.1.0's install manifest (committed as rendered),
 * objects of every kind and work in flight (a rotation asked for, a queued job, a held workload, an open incident), then an upgrade to the current build with kustomize (config/default and an
 * image override), then the same install taken over by the Helm chart (`--take-ownership`), `helm test`, and
 * `helm uninstall`, which leaves the CRDs and every user's object. Through each step: the same objects (UIDs), one
 * rotation per request, one run per job, a workload held by a spent CarbonBudget stays held, then comes back once
 * at its own count when the budget grows, and an incident opened under 0.1.0 (a crash loop whose one step, a
 * scale-up, did not help: reverted, the ladder exhausted for a human) stays open as it was, nothing acted on or
 * recorded again, then resolves once when the workload is fixed.
 *
 * 0.1.0 runs the image built from this checkout under 0.1.0's reference (no older image exists to pull): what is
 * tested is the upgrade of the manifests, CRDs and pods with work in flight, not a change of the operator's code.
 */

const info = inject("controlPlane");
const images = inject("images");
const node = inject("realNode");
const admin = KubeClient.load(info.adminKubeconfig, "nextgen-e2e-upgrade");
const ROOT = resolve(import.meta.dirname, "../..");
const RELEASE_0_1_0 = join(ROOT, "test/fixtures/releases/nextgen-operator-0.1.0.yaml");
const namespace = `upgrade-${Date.now().toString(36)}`;
const DEPLOYMENT = "nextgen-operator";
const PQKeySet = crdKind("PQKeySet");
const QuantumBackend = crdKind("QuantumBackend");
const QuantumJob = crdKind("QuantumJob");
const BACKEND = `embedded-${namespace}`;
const KEYSET = "upgraded";
/** A Deployment a CarbonBudget holds at zero replicas (its budget spent) through every upgrade. */
const HELD = "held";
const CarbonBudget = crdKind("CarbonBudget");
/** A Deployment whose container exits 1: a RemediationPolicy's incident on it stays open through every upgrade. */
const CRASHING = "crashing";
const RemediationPolicy = crdKind("RemediationPolicy");
/** The current build under the names a user's registry would give it, one per upgrade, so each rolls the pods. */
const KUSTOMIZE_IMAGE = { name: "localhost/nextgen-operator", tag: "kustomize" };
const HELM_IMAGE = { name: "localhost/nextgen-operator", tag: "helm" };
const log = (line: string) => process.stderr.write(`[install-upgrade] ${line}\n`);

type Deployment = KubeObject & {
  spec: { template: { spec: { containers: Array<{ image: string }> } } };
  status?: { availableReplicas?: number; updatedReplicas?: number; replicas?: number; observedGeneration?: number };
};
type Resource = KubeObject & { status?: Record<string, unknown> & { conditions?: Condition[] } };

let helm: (...args: string[]) => string;
let overlay: string;
/** Every object of the samples (every kind) created under 0.1.0, by kind/name: its UID. */
const created = new Map<string, string>();
let samples: KubeObject[] = [];
const sampleKey = (o: KubeObject) => `${o.kind}/${o.metadata.name}`;
const kubectlAdmin = (...args: string[]) => kubectl(node.kubectl, info.adminKubeconfig, ...args);

beforeAll(async () => {
  helm = await helmRunner(log);
  // Another file's install (operator.test.ts leaves its operator running) would reconcile this file's objects too.
  await admin.delete(DeploymentKind, OPERATOR_NAMESPACE, DEPLOYMENT).catch(() => undefined);
  await waitUntil(
    "no operator Deployment",
    async () => !(await admin.get(DeploymentKind, OPERATOR_NAMESPACE, DEPLOYMENT)),
    {
      timeoutMs: 120_000,
    },
  );
  for (const image of [KUSTOMIZE_IMAGE, HELM_IMAGE]) {
    await ctr(node.containerdSocket, "images", "tag", "--force", images.operator, `${image.name}:${image.tag}`);
  }
  overlay = mkdtempSync(join(tmpdir(), "nextgen-upgrade-"));
  // What `kustomize edit set image` writes into a user's overlay of config/default.
  writeFileSync(
    join(overlay, "kustomization.yaml"),
    [
      "apiVersion: kustomize.config.k8s.io/v1beta1",
      "kind: Kustomization",
      "resources:",
      `  - ${relative(overlay, join(ROOT, "config/default"))}`,
      "images:",
      "  - name: ghcr.io/itechsmart/nextgen-operator",
      `    newName: ${KUSTOMIZE_IMAGE.name}`,
      `    newTag: ${KUSTOMIZE_IMAGE.tag}`,
      "",
    ].join("\n"),
  );
  await admin.create(NamespaceKind, { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
}, 600_000);

afterAll(async () => {
  const discovery = new Discovery(admin);
  for (const o of samples) {
    const kind = await discovery.kindRef(o.apiVersion, o.kind).catch(() => undefined);
    if (kind && !kind.namespaced) await admin.delete(kind, undefined, o.metadata.name).catch(() => undefined);
  }
  await admin.delete(QuantumBackend, undefined, BACKEND).catch(() => undefined);
  await admin.delete(NamespaceKind, undefined, namespace).catch(() => undefined);
  rmSync(overlay, { recursive: true, force: true });
  await admin.close();
});

/** The operator's Deployment rolled out: every replica updated and available, running `image`. */
async function rolledOut(image: string): Promise<Deployment> {
  return waitUntil(
    `Deployment ${DEPLOYMENT} rolled out with ${image}`,
    async () => {
      const d = await admin.get<Deployment>(DeploymentKind, OPERATOR_NAMESPACE, DEPLOYMENT);
      const s = d?.status;
      const done =
        d?.spec.template.spec.containers[0]?.image === image &&
        s?.observedGeneration === d.metadata.generation &&
        s?.updatedReplicas === 1 &&
        s?.availableReplicas === 1 &&
        s?.replicas === 1;
      return done ? d : undefined;
    },
    { timeoutMs: 300_000, intervalMs: 500 },
  );
}

const keySet = async () => (await admin.get<Resource>(PQKeySet, namespace, KEYSET))!;

/**
 * Asks for work just before an upgrade: a forced rotation of the key set and a QuantumJob queued behind the
 * backend's single slot. Returns the key set as it was.
 */
async function workInFlight(step: string): Promise<Resource> {
  const before = await keySet();
  await admin.patch(PQKeySet, namespace, KEYSET, "merge", { metadata: { annotations: { [ROTATE_ANNOTATION]: step } } });
  await admin.apply(QuantumJob, {
    apiVersion: `${QuantumJob.group}/${QuantumJob.version}`,
    kind: QuantumJob.kind,
    metadata: { name: `job-${step}`, namespace },
    spec: {
      circuit: {
        openqasm:
          'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n',
      },
      shots: 1000,
      backend: { name: BACKEND, fallbackToSimulator: false },
    },
  } as KubeObject);
  return before;
}

/** The work asked for before the upgrade was done once: one rotation, one job run (one Succeeded event). */
async function doneOnce(step: string, before: Resource): Promise<void> {
  const job = `job-${step}`;
  await waitUntil(
    `QuantumJob ${job} to succeed`,
    async () => (await admin.get<Resource>(QuantumJob, namespace, job))?.status?.phase === "Succeeded",
    { timeoutMs: 180_000 },
  );
  const events = await admin.list<KubeObject & { reason?: string; regarding?: { name?: string } }>(EventKind, {
    namespace,
  });
  expect(events.items.filter((e) => e.regarding?.name === job && e.reason === "Succeeded")).toHaveLength(1);
  const after = await waitUntil(
    `the rotation asked for before ${step}`,
    async () => {
      const k = await keySet();
      return k.status?.currentKeyId !== before.status?.currentKeyId ? k : undefined;
    },
    { timeoutMs: 180_000 },
  );
  expect(after.status?.revision).toBe((before.status?.revision as number) + 1);
  // The key that was current is kept as the retained one: nothing of the key set was lost.
  const keys = after.status?.keys as Array<{ keyId: string; state: string }>;
  expect(keys.map((k) => k.state)).toEqual(["Active", "Retained"]);
  expect(keys[1]?.keyId).toBe(before.status?.currentKeyId);
}

const budget = async () => (await admin.get<Resource>(CarbonBudget, namespace, HELD))!;
const heldReplicas = async () =>
  (await admin.get<Deployment & { spec: { replicas: number } }>(DeploymentKind, namespace, HELD))!.spec.replicas;

type Policy = Resource & {
  status?: { incidents?: Incident[]; history?: HistoryEntry[]; scaled?: ScaledRecord[]; openIncidents?: number };
};
const policy = async () => (await admin.get<Policy>(RemediationPolicy, namespace, CRASHING))!;
const crashingReplicas = async () =>
  (await admin.get<Deployment & { spec: { replicas: number } }>(DeploymentKind, namespace, CRASHING))!.spec.replicas;
const historyOf = (p: Policy, action: string, result: string) =>
  (p.status?.history ?? []).filter((h) => h.action === action && h.result === result);
/** The incident as it was when it opened under 0.1.0. */
let openedIncident: Incident;

/**
 * The held workload is still held, as recorded; the incident is the one opened under 0.1.0, exhausted after its one
 * action, nothing acted on or recorded again by the new operator; every object made under 0.1.0 is still there.
 */
async function nothingLost(): Promise<void> {
  expect(await heldReplicas()).toBe(0);
  expect((await budget()).status?.held).toEqual([
    { target: `Deployment/${HELD}`, replicas: 2, setTo: 0, reason: "Suspended" } satisfies HeldReplicas,
  ]);
  const p = await policy();
  expect(p.status?.incidents).toEqual([
    expect.objectContaining({
      target: openedIncident.target,
      since: openedIncident.since,
      step: 0,
      attempts: 1,
      heldBy: "Exhausted",
    }),
  ]);
  for (const result of ["Succeeded", "Reverted", "Exhausted"]) expect(historyOf(p, "Scale", result)).toHaveLength(1);
  expect(p.status?.scaled ?? []).toEqual([]);
  expect(await crashingReplicas()).toBe(1);
  await sameObjects();
}

/** Every object made under 0.1.0 has the same UID. */
async function sameObjects(): Promise<void> {
  const discovery = new Discovery(admin);
  for (const o of samples) {
    const kind = await discovery.kindRef(o.apiVersion, o.kind);
    const live = await admin.get(kind, kind.namespaced ? namespace : undefined, o.metadata.name);
    expect(live?.metadata.uid, sampleKey(o)).toBe(created.get(sampleKey(o)));
  }
  expect((await keySet()).metadata.uid).toBe(created.get("PQKeySet/upgraded"));
}

describe("from release 0.1.0 to the current build", () => {
  test("0.1.0 installs with kubectl apply and runs objects of every kind", async () => {
    const release = await readManifests(RELEASE_0_1_0);
    const deployment = release.find((o) => o.kind === "Deployment") as Deployment;
    // The node holds the current build under 0.1.0's reference: nothing is pulled.
    expect(deployment.spec.template.spec.containers[0]?.image).toBe(images.operator);
    kubectlAdmin("apply", "--server-side", "-f", RELEASE_0_1_0);
    await rolledOut(images.operator);

    samples = await readManifests(join(ROOT, "config/samples"));
    expect(new Set(samples.map((o) => o.kind))).toEqual(new Set(crds.map((d) => d.kind.kind)));
    const discovery = new Discovery(admin);
    for (const o of samples) {
      const kind = await discovery.kindRef(o.apiVersion, o.kind);
      const made = await admin.create(kind, {
        ...o,
        metadata: { ...o.metadata, ...(kind.namespaced && { namespace }) },
      });
      created.set(sampleKey(o), made.metadata.uid as string);
    }
    await admin.apply(QuantumBackend, {
      apiVersion: `${QuantumBackend.group}/${QuantumBackend.version}`,
      kind: QuantumBackend.kind,
      metadata: { name: BACKEND },
      spec: { type: "Simulator", execution: { mode: "Embedded" }, capacity: { maxConcurrentJobs: 1 } },
    } as KubeObject);
    const keys = await admin.apply(PQKeySet, {
      apiVersion: `${PQKeySet.group}/${PQKeySet.version}`,
      kind: PQKeySet.kind,
      metadata: { name: KEYSET, namespace },
      spec: { algorithm: "ML-DSA-44", rotationPeriod: "720h", retainPrevious: 1 },
    } as KubeObject);
    created.set("PQKeySet/upgraded", keys.metadata.uid as string);
    // A workload whose budget is spent at once: suspended (scaled to zero) under 0.1.0, its count recorded.
    await admin.apply(DeploymentKind, nodeProbeDeployment(namespace, images.probe, HELD, ["serve"]));
    await admin.apply(CarbonBudget, {
      apiVersion: `${CarbonBudget.group}/${CarbonBudget.version}`,
      kind: CarbonBudget.kind,
      metadata: { name: HELD, namespace },
      spec: {
        budgetGrams: 0,
        period: { type: "Daily" },
        mode: "Enforce",
        selector: { matchLabels: { app: HELD } },
        energy: { estimate: { wattsPerCore: "50", utilization: "1" } },
        intensity: { static: { gramsPerKWh: 500 }, refreshInterval: "5s" },
        actions: { onExhausted: "Suspend" },
      },
    } as KubeObject);
    await waitUntil(
      "the workload suspended by its spent budget",
      async () =>
        (await heldReplicas()) === 0 && ((await budget()).status?.held as unknown[] | undefined)?.length === 1,
      { timeoutMs: 120_000 },
    );
    // A workload that crash-loops from the start: its incident opens, its one step (a scale-up) acts and, the loop
    // going on through its minute of verification, is reverted and the ladder exhausted, all under 0.1.0; the
    // incident stays open, for a human, through every upgrade.
    await admin.apply(
      DeploymentKind,
      nodeProbeDeployment(namespace, images.probe, CRASHING, ["exit", "1"], { replicas: 1 }),
    );
    await admin.apply(RemediationPolicy, {
      apiVersion: `${RemediationPolicy.group}/${RemediationPolicy.version}`,
      kind: RemediationPolicy.kind,
      metadata: { name: CRASHING, namespace },
      spec: {
        targetRef: { apiVersion: "apps/v1", kind: "Deployment", name: CRASHING },
        // A window longer than the test: an operator that starts remembering nothing counts the pod's restarts since
        // it started, so the trigger stays firing across the upgrades.
        triggers: [{ name: "crashloop", crashLoop: { restarts: 2, window: "1h" } }],
        actions: [{ scale: { by: 1, max: 2 }, timeout: "1m" }],
        safety: { maxConcurrent: 1, cooldown: "10s", maxActionsPerHour: 6, minAvailable: "0%" },
      },
    } as KubeObject);
    const exhausted = await waitUntil(
      "the crash loop's incident exhausted",
      async () => {
        const p = await policy();
        return p.status?.incidents?.[0]?.heldBy === "Exhausted" ? p : undefined;
      },
      { timeoutMs: 240_000 },
    );
    openedIncident = exhausted.status?.incidents?.[0] as Incident;
    expect(openedIncident).toMatchObject({ target: `Deployment/${CRASHING}`, trigger: "crashloop", step: 0 });
    await waitUntil(
      "the key set Ready under 0.1.0",
      async () => findCondition((await keySet()).status?.conditions, "Ready")?.status === "True",
      { timeoutMs: 120_000 },
    );
  });

  test("upgraded with kustomize while a rotation and a job are in flight: nothing lost, nothing done twice", async () => {
    const before = await workInFlight("kustomize");
    kubectlAdmin("apply", "--server-side", "-k", overlay);
    await rolledOut(`${KUSTOMIZE_IMAGE.name}:${KUSTOMIZE_IMAGE.tag}`);
    await doneOnce("kustomize", before);
    await nothingLost();
  });

  test("taken over by the Helm chart (--take-ownership) with work in flight, then helm test passes", async () => {
    const before = await workInFlight("helm");
    const started = Date.now();
    helm(
      "upgrade",
      "--install",
      "nextgen-operator",
      CHART,
      "--namespace",
      OPERATOR_NAMESPACE,
      "--take-ownership",
      // kubectl apply --server-side owns the fields it set (the image among them): the chart takes them over.
      "--force-conflicts",
      "--kubeconfig",
      info.adminKubeconfig,
      "--set",
      `image.repository=${HELM_IMAGE.name}`,
      "--set",
      `image.tag=${HELM_IMAGE.tag}`,
      "--set",
      "image.pullPolicy=Never",
      "--wait",
      "--timeout",
      "5m",
    );
    log(`helm upgrade --install --take-ownership --wait took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const deployment = await rolledOut(`${HELM_IMAGE.name}:${HELM_IMAGE.tag}`);
    expect(deployment.metadata.labels?.["app.kubernetes.io/managed-by"]).toBe("Helm");
    expect(deployment.metadata.annotations?.["meta.helm.sh/release-name"]).toBe("nextgen-operator");
    await doneOnce("helm", before);
    await nothingLost();
    const crd = await admin.get(CustomResourceDefinitionKind, undefined, `pqkeysets.${PQKeySet.group}`);
    expect(crd?.metadata.annotations?.["helm.sh/resource-policy"]).toBe("keep");

    const tested = helm(
      "test",
      "nextgen-operator",
      "--namespace",
      OPERATOR_NAMESPACE,
      "--kubeconfig",
      info.adminKubeconfig,
      "--logs",
    );
    expect(tested).toMatch(/TEST SUITE:\s+nextgen-operator-test-metrics[\s\S]*Phase:\s+Succeeded/);
    expect(tested).toContain("metrics served at");
  });

  test("the budget grows under the new operator: the held workload comes back once, at its own count", async () => {
    await admin.patch(CarbonBudget, namespace, HELD, "merge", { spec: { budgetGrams: 1e9 } });
    await waitUntil(
      "the held workload restored",
      async () =>
        (await heldReplicas()) === 2 && ((await budget()).status?.held as unknown[] | undefined) === undefined,
      { timeoutMs: 120_000 },
    );
    // Restored, not restored twice: the count the budget recorded under 0.1.0, and nothing held any more.
    const settled = await budget();
    expect(await heldReplicas()).toBe(2);
    expect(settled.status?.held).toBeUndefined();
  });

  test("the workload is fixed under the new operator: the incident opened under 0.1.0 resolves, once", async () => {
    // A fixed rollout: its pods serve, and the crash loop's pods go.
    await admin.patch(DeploymentKind, namespace, CRASHING, "json", [
      { op: "replace", path: "/spec/template/spec/containers/0/args", value: ["serve"] },
    ]);
    const healed = await waitUntil(
      "the incident resolved",
      async () => {
        const p = await policy();
        return historyOf(p, "Scale", "Resolved").length > 0 ? p : undefined;
      },
      { timeoutMs: 240_000 },
    );
    expect(historyOf(healed, "Scale", "Resolved")).toHaveLength(1);
    expect(healed.status?.incidents ?? []).toEqual([]);
    expect(healed.status?.openIncidents ?? 0).toBe(0);
    // The one scale-up of 0.1.0, and nothing else acted on since.
    expect(historyOf(healed, "Scale", "Succeeded")).toHaveLength(1);
    expect(await crashingReplicas()).toBe(1);
  });

  test("helm uninstall removes the operator and keeps the CRDs and every object", async () => {
    const out = helm(
      "uninstall",
      "nextgen-operator",
      "--namespace",
      OPERATOR_NAMESPACE,
      "--kubeconfig",
      info.adminKubeconfig,
      "--wait",
    );
    expect(out).toMatch(/kept due to the resource policy/);
    await waitUntil(
      "the operator Deployment gone",
      async () => !(await admin.get(DeploymentKind, OPERATOR_NAMESPACE, DEPLOYMENT)),
      {
        timeoutMs: 120_000,
      },
    );
    for (const def of crds) {
      expect(
        await admin.get(CustomResourceDefinitionKind, undefined, `${def.kind.plural}.${def.kind.group}`),
      ).toBeDefined();
    }
    await sameObjects();
  });
});
