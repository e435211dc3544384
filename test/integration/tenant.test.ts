import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dump, load } from "js-yaml";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type FakeElectricityMaps, startElectricityMaps } from "../../src/controlplane/electricity-maps.ts";
import { KwokNodes, POD_FAULT_LABEL } from "../../src/controlplane/kwok.ts";
import { serviceAccountToken } from "../../src/controlplane/service-account.ts";
import { CarbonBudgetKind } from "../../src/crds/carbonbudget.ts";
import { PQKeySetKind } from "../../src/crds/pqkeyset.ts";
import { QuantumBackendKind } from "../../src/crds/quantumbackend.ts";
import { QuantumJobKind } from "../../src/crds/quantumjob.ts";
import { RemediationPolicyKind, type RemediationPolicySpec } from "../../src/crds/remediationpolicy.ts";
import { NODE_ACTIONS_LABEL } from "../../src/remediation/node-gate.ts";
import { KubeClient } from "../../src/runtime/client.ts";
import { findCondition } from "../../src/runtime/conditions.ts";
import {
  ConfigMapKind,
  DeploymentKind,
  type KindRef,
  NamespaceKind,
  NodeKind,
  PodKind,
  SecretKind,
} from "../../src/runtime/kinds.ts";
import type { Condition } from "../../src/runtime/objects.ts";
import { SHARED_INTENSITY_LABEL } from "../../src/controllers/carbonbudget/intensity.ts";
import { FIELD_MANAGER } from "../../src/cli/run.ts";
import {
  type KubeObject,
  cluster,
  createNamespace,
  deleteAfterFile,
  kwokDeployment,
  startOperator,
  waitUntil,
} from "./harness.ts";
import { remediationPolicy } from "./remediation-helpers.ts";

// A tenant with admin rights in its own namespace only applies every namespaced kind, each reaching for something
// outside it: another namespace's ConfigMap, URLs the cluster's admin did not allow, a shared Node. The operator
// reports each and nothing outside the namespace changes; an allowed URL works.

const { admin, adminKubeconfig, operatorKubeconfig } = cluster();
const FILE = { "test.nextgen.itechsmart.io/file": "tenant" };
const POOL = "test.nextgen.itechsmart.io/pool";
const suffix = randomBytes(3).toString("hex");
const NODE = `tenant-${suffix}`;
const BACKEND = `tenant-sim-${suffix}`;
const MAPS_TOKEN = randomBytes(16).toString("hex");
const nodes = new KwokNodes(admin, FILE);
const kubeconfigDir = mkdtempSync(join(tmpdir(), "nextgen-tenant-"));

type Obj = KubeObject & { status?: { conditions?: Condition[]; phase?: string } };

/** An HTTP server that answers 500 to everything and records what reached it: the operator must send it nothing. */
let outside: { server: Server; url: string; received: string[] };
let maps: FakeElectricityMaps;
let tenant: KubeClient;
let ns: string;
let other: string;

/**
 * The tenant: a ServiceAccount of its namespace bound there to the built-in `admin` ClusterRole and to all of the
 * operator's kinds, as a cluster's admin hands a namespace to a team; its client authenticates with its token.
 */
async function tenantClient(namespace: string): Promise<KubeClient> {
  const token = await serviceAccountToken(admin, namespace, "tenant-admin");
  const rbac = `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}`;
  await admin.request("POST", `${rbac}/roles`, {
    body: {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "nextgen-tenant" },
      rules: [{ apiGroups: ["nextgen.itechsmart.io"], resources: ["*"], verbs: ["*"] }],
    },
  });
  for (const [name, kind, role] of [
    ["tenant-admin", "ClusterRole", "admin"],
    ["tenant-nextgen", "Role", "nextgen-tenant"],
  ] as const)
    await admin.request("POST", `${rbac}/rolebindings`, {
      body: {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind, name: role },
        subjects: [{ kind: "ServiceAccount", name: "tenant-admin", namespace }],
      },
    });
  // The admin's kubeconfig (the test control plane's server and CA) with the tenant's token as its user.
  const config = load(readFileSync(adminKubeconfig, "utf8")) as { users: Array<{ user: Record<string, unknown> }> };
  for (const u of config.users) u.user = { token };
  const file = join(kubeconfigDir, "tenant.kubeconfig");
  writeFileSync(file, dump(config), { mode: 0o600 });
  return KubeClient.load(file, "nextgen-test-tenant");
}

/**
 * What a tenant could change outside its namespace through the operator: every Node (spec, labels, annotations;
 * not the status kwok's heartbeats renew), both Namespaces' labels, and the other namespace's ConfigMaps and Secrets
 * (by resourceVersion), Deployments (by generation: a scale changes it, their controller's status does not) and Pods
 * (by uid: evicted or deleted pods are replaced under new ones).
 */
async function outsideState(): Promise<Record<string, unknown>> {
  type Node = KubeObject & { spec?: unknown };
  const state: Record<string, unknown> = {};
  for (const n of (await admin.list<Node>(NodeKind)).items)
    state[`Node/${n.metadata.name}`] = { spec: n.spec, labels: n.metadata.labels, annotations: n.metadata.annotations };
  for (const name of [ns, other])
    state[`Namespace/${name}`] = (await admin.get(NamespaceKind, undefined, name))?.metadata.labels;
  const kinds: Array<[KindRef, (o: KubeObject) => unknown]> = [
    [ConfigMapKind, (o) => o.metadata.resourceVersion],
    [SecretKind, (o) => o.metadata.resourceVersion],
    [DeploymentKind, (o) => o.metadata.generation],
    [PodKind, (o) => o.metadata.uid],
  ];
  for (const [kind, version] of kinds)
    for (const o of (await admin.list(kind, { namespace: other })).items)
      state[`${kind.kind}/${other}/${o.metadata.name}`] = version(o);
  return state;
}

/** Objects outside the tenant's namespace that carry a field the operator wrote. */
async function writtenByOperator(): Promise<string[]> {
  const mine = (o: KubeObject) => o.metadata.managedFields?.some((m) => m.manager === FIELD_MANAGER);
  const found: string[] = [];
  for (const kind of [NodeKind, NamespaceKind])
    for (const o of (await admin.list(kind)).items) if (mine(o)) found.push(`${kind.kind}/${o.metadata.name}`);
  for (const kind of [ConfigMapKind, SecretKind, DeploymentKind, PodKind])
    for (const o of (await admin.list(kind, { namespace: other })).items)
      if (mine(o)) found.push(`${kind.kind}/${other}/${o.metadata.name}`);
  return found;
}

async function waitCondition(kind: KindRef, name: string, type: string, reason: string): Promise<Condition> {
  let last: Obj | undefined;
  try {
    return await waitUntil(
      `${kind.kind} ${name}: ${type} ${reason}`,
      async () => {
        last = await admin.get<Obj>(kind, ns, name);
        const c = findCondition(last?.status?.conditions, type);
        return c?.reason === reason ? c : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; its status was ${JSON.stringify(last?.status)}`);
  }
}

const ready = (pods: Obj[]) =>
  pods.filter((p) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")).length;

beforeAll(async () => {
  const received: string[] = [];
  const server = createServer((req, res) => {
    received.push(`${req.method} ${req.url}`);
    res.statusCode = 500;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  outside = { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
  maps = await startElectricityMaps({ token: MAPS_TOKEN });
  maps.setIntensity("FR", 56);
  // The admin allows Electricity Maps' (stand-in's) address only; the recording server is on the same host.
  await startOperator(operatorKubeconfig, [`--allowed-endpoints=${maps.url}`]);
  deleteAfterFile(admin, FILE, [
    RemediationPolicyKind,
    CarbonBudgetKind,
    QuantumJobKind,
    PQKeySetKind,
    QuantumBackendKind,
    DeploymentKind,
    PodKind,
    NodeKind,
  ]);

  ns = await createNamespace(admin, "tenant");
  other = await createNamespace(admin, "other");
  tenant = await tenantClient(ns);
  // The other namespace: an intensity ConfigMap it does not share, a Secret, and a workload on the tenant's Node.
  await nodes.register(NODE, { labels: { [POOL]: "tenant" } });
  await admin.create(ConfigMapKind, {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "carbon-intensity", namespace: other, labels: FILE },
    data: { "intensity.json": JSON.stringify({ region: "secret-region", gramsPerKWh: 1 }) },
  } as KubeObject);
  await admin.create(SecretKind, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "maps", namespace: other, labels: FILE },
    stringData: { token: MAPS_TOKEN },
  } as KubeObject);
  await admin.create(
    DeploymentKind,
    kwokDeployment({
      namespace: other,
      name: "bystander",
      replicas: 1,
      nodeSelector: { [POOL]: "tenant" },
      labels: FILE,
    }),
  );
  await waitUntil(
    "the other namespace's pod to be Ready",
    async () => ready((await admin.list<Obj>(PodKind, { namespace: other })).items) === 1,
    { timeoutMs: 60_000 },
  );
  // A simulator the cluster's admin offers every namespace (cluster-scoped: no tenant makes one).
  await admin.create(QuantumBackendKind, {
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "QuantumBackend",
    metadata: { name: BACKEND, labels: FILE },
    spec: {
      type: "Simulator",
      execution: { mode: "Embedded" },
      capabilities: { maxQubits: 8 },
      capacity: { maxConcurrentJobs: 1 },
    },
  } as KubeObject);
});
afterAll(async () => {
  tenant?.close();
  await maps?.close();
  await new Promise((r) => outside?.server.close(r));
  rmSync(kubeconfigDir, { recursive: true, force: true });
});

describe("a namespace's admin, through the operator", () => {
  test("cannot grant itself what the cluster's admin grants: labelling its Namespace is forbidden", async () => {
    await expect(
      tenant.patch(NamespaceKind, undefined, ns, "merge", {
        metadata: { labels: { [NODE_ACTIONS_LABEL]: "allowed" } },
      }),
    ).rejects.toMatchObject({ status: 403 });
    await expect(tenant.get(ConfigMapKind, other, "carbon-intensity")).rejects.toMatchObject({ status: 403 });
  });

  test("applies every namespaced kind reaching outside: each is reported, nothing outside changes, an allowed URL works", async () => {
    const before = await outsideState();
    const create = (kind: KindRef, name: string, spec: Record<string, unknown>) =>
      tenant.create(kind, {
        apiVersion: "nextgen.itechsmart.io/v1alpha1",
        kind: kind.kind,
        metadata: { name, namespace: ns, labels: FILE },
        spec,
      } as KubeObject);
    const budget = (name: string, spec: Record<string, unknown>) =>
      create(CarbonBudgetKind, name, {
        budgetGrams: 1000,
        period: { type: "Daily" },
        energy: { estimate: { wattsPerCore: "10" } },
        ...spec,
        intensity: { refreshInterval: "5s", ...(spec.intensity as object) },
      });

    // PQKeySet: its Secret and ConfigMap go in its own namespace.
    await create(PQKeySetKind, "keys", { algorithm: "ML-KEM-768", rotationPeriod: "720h" });
    // QuantumJob: runs on the admin's backend; its program and results stay here.
    await create(QuantumJobKind, "bell", {
      shots: 100,
      backend: { name: BACKEND },
      circuit: {
        openqasm:
          'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n',
      },
    });
    // CarbonBudget: an allowed URL, a Secret of its own; then URLs not allowed, and another namespace's ConfigMap.
    await tenant.create(SecretKind, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "maps", namespace: ns },
      stringData: { token: MAPS_TOKEN },
    } as KubeObject);
    const mapsAsked = maps.requests.length;
    await budget("allowed", {
      intensity: { electricityMaps: { url: maps.url, zone: "FR", tokenSecretRef: { name: "maps" } } },
    });
    await budget("sdk", { intensity: { carbonAwareSDK: { url: outside.url, location: "westeurope" } } });
    await budget("kepler", {
      energy: { kepler: { prometheus: { url: `${outside.url}/prometheus` } } },
      intensity: { static: { gramsPerKWh: 100 } },
    });
    await budget("maps-elsewhere", {
      intensity: { electricityMaps: { url: outside.url, zone: "FR", tokenSecretRef: { name: "maps" } } },
    });
    await budget("configmap", { intensity: { configMap: { name: "carbon-intensity", namespace: other } } });
    // RemediationPolicy: Prometheus and Alertmanager URLs not allowed; drainNode in a Namespace without the grant.
    await tenant.create(
      DeploymentKind,
      kwokDeployment({
        namespace: ns,
        name: "disk",
        replicas: 1,
        nodeSelector: { [POOL]: "tenant" },
        labels: FILE,
        podLabels: { [POD_FAULT_LABEL]: "crashloop" },
      }),
    );
    const target = { apiVersion: "apps/v1", kind: "Deployment" as const, name: "disk" };
    const policy = (name: string, spec: Partial<RemediationPolicySpec>) =>
      tenant.create(RemediationPolicyKind, remediationPolicy(ns, name, FILE, { targetRef: target, ...spec }));
    await policy("prometheus", {
      prometheus: { url: outside.url, interval: "1s" },
      triggers: [{ name: "latency", prometheus: { query: "up", above: "0.5", for: "1s" } }],
    });
    await policy("alertmanager", {
      alertmanager: { url: outside.url, interval: "1s" },
      triggers: [{ name: "alert", alert: { alertname: "HighErrorRate" } }],
    });
    await policy("drain", {
      triggers: [{ name: "crashloop", crashLoop: { restarts: 1, window: "2m" } }],
      actions: [{ drainNode: {}, timeout: "20s" }],
    });

    // Each is reported.
    expect((await waitCondition(PQKeySetKind, "keys", "Ready", "KeysCurrent")).status).toBe("True");
    const job = await waitUntil(
      "QuantumJob bell to succeed",
      async () => {
        const j = await admin.get<Obj>(QuantumJobKind, ns, "bell");
        return j?.status?.phase === "Succeeded" ? j : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(findCondition(job.status?.conditions, "Complete")?.status).toBe("True");
    expect((await waitCondition(CarbonBudgetKind, "allowed", "Ready", "Accounting")).status).toBe("True");
    expect(maps.requests.length).toBeGreaterThan(mapsAsked);
    for (const [name, field] of [
      ["sdk", "spec.intensity.carbonAwareSDK.url"],
      ["kepler", "spec.energy.kepler.prometheus.url"],
      ["maps-elsewhere", "spec.intensity.electricityMaps.url"],
    ]) {
      const c = await waitCondition(CarbonBudgetKind, name as string, "Ready", "EndpointNotAllowed");
      expect(c.status).toBe("False");
      expect(c.message).toContain(`${field} ${outside.url}`);
      expect(c.message).toContain(`--allowed-endpoints=${maps.url}`);
    }
    const unshared = await waitCondition(CarbonBudgetKind, "configmap", "Ready", "ConfigMapNotShared");
    expect(unshared.message).toContain(`${SHARED_INTENSITY_LABEL}=shared`);
    for (const [name, field] of [
      ["prometheus", "spec.prometheus.url"],
      ["alertmanager", "spec.alertmanager.url"],
    ]) {
      const c = await waitCondition(RemediationPolicyKind, name as string, "Ready", "EndpointNotAllowed");
      expect(c.message).toContain(`${field} ${outside.url} is not among`);
    }
    await waitUntil(
      "the drain policy to be held for want of the Namespace's grant",
      async () => {
        const p = await admin.get<KubeObject & { status?: { incidents?: Array<{ heldBy?: string }> } }>(
          RemediationPolicyKind,
          ns,
          "drain",
        );
        return p?.status?.incidents?.some((i) => i.heldBy === "NodeActionsNotAllowed");
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );

    // Nothing outside the namespace changed, and nothing was sent where the admin did not allow.
    expect(await outsideState()).toEqual(before);
    expect(await writtenByOperator()).toEqual([]);
    expect(outside.received).toEqual([]);
    // What the operator wrote for the tenant is in the tenant's namespace.
    expect((await admin.list(SecretKind, { namespace: ns })).items.map((s) => s.metadata.name)).toContain("keys");
  });
});
