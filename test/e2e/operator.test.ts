import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { Prometheus } from "../../src/controlplane/monitoring.ts";
import { REAL_NODE_LABEL, REAL_NODE_NAME } from "../../src/controlplane/real-node.ts";
import { ROTATE_ANNOTATION } from "../../src/crds/pqkeyset.ts";
import { serviceAccountToken } from "../../src/controlplane/service-account.ts";
import { METRICS_READER_ROLE } from "../../src/manifests/generate.ts";
import { LEADER_ELECTION_ID, OPERATOR_NAMESPACE } from "../../src/runtime/identity.ts";
import { KubeClient } from "../../src/runtime/client.ts";
import { findCondition } from "../../src/runtime/conditions.ts";
import { DeploymentKind, EventKind, type KindRef, LeaseKind, NamespaceKind, PodKind } from "../../src/runtime/kinds.ts";
import type { Condition, KubeObject } from "../../src/runtime/objects.ts";
import type { HistoryEntry } from "../../src/crds/remediationpolicy.ts";
import { waitUntil } from "../../src/runtime/wait.ts";
import {
  crdKind,
  type ContainerState,
  type Pod,
  type ProbeOptions,
  containerdTasks,
  IMAGE_OVERRIDE,
  kubectl,
  nodeProbeDeployment,
  podWhere,
  writeInstallOverlay,
} from "./harness.ts";

/*
 * The operator as users run it: its image, built from the Dockerfile, in real Pods on the real node, installed with
 * `kubectl apply -k` of config/default plus an image override, authenticating with its projected ServiceAccount
 * token, scraped by Prometheus through its metrics Service, and doing every kind's work on real containers.
 */

const info = inject("controlPlane");
const images = inject("images");
const node = inject("realNode");
const admin = KubeClient.load(info.adminKubeconfig, "nextgen-e2e");
const ROOT = resolve(import.meta.dirname, "../..");
const DEPLOYMENT = "nextgen-operator";
const namespace = `e2e-${Date.now().toString(36)}`;
const operatorSelector = "app.kubernetes.io/name=nextgen-operator,app.kubernetes.io/component=manager";

type Deployment = KubeObject & {
  spec: { replicas: number };
  status?: { availableReplicas?: number; updatedReplicas?: number; conditions?: Condition[] };
};
type Lease = KubeObject & { spec?: { holderIdentity?: string; leaseTransitions?: number } };
type Resource = KubeObject & { status?: Record<string, unknown> & { conditions?: Condition[] } };

let kustomization: string;

beforeAll(async () => {
  kustomization = mkdtempSync(join(tmpdir(), "nextgen-install-"));
  await writeInstallOverlay(kustomization, join(ROOT, "config/default"), node, images.operator);
  kubectl(node.kubectl, info.adminKubeconfig, "apply", "--server-side", "-k", kustomization);
  await admin.create(NamespaceKind, { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
}, 600_000);

afterAll(async () => {
  await admin.delete(crdKind("EdgeNode"), undefined, `real-${namespace}`).catch(() => undefined);
  await admin.delete(NamespaceKind, undefined, namespace).catch(() => undefined);
  await admin
    .request("DELETE", `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${namespace}-prometheus`)
    .catch(() => undefined);
  rmSync(kustomization, { recursive: true, force: true });
  await admin.close();
});

async function deploymentAvailable(replicas: number): Promise<Deployment> {
  return waitUntil(
    `Deployment ${DEPLOYMENT} to have ${replicas} available replica(s)`,
    async () => {
      const d = await admin.get<Deployment>(DeploymentKind, OPERATOR_NAMESPACE, DEPLOYMENT);
      return d?.status?.availableReplicas === replicas && d.status.updatedReplicas === replicas ? d : undefined;
    },
    { timeoutMs: 180_000, intervalMs: 500 },
  );
}

const operatorPods = async () =>
  (await admin.list<Pod>(PodKind, { namespace: OPERATOR_NAMESPACE, labelSelector: operatorSelector })).items.filter(
    (p) => !p.metadata.deletionTimestamp,
  );
/** The pod holding the leader Lease: its identity is `<POD_NAME>_<a UUID of the process>`. */
const leaderPod = async () =>
  (await admin.get<Lease>(LeaseKind, OPERATOR_NAMESPACE, LEADER_ELECTION_ID))?.spec?.holderIdentity?.split("_")[0];

/** Server-side applies one of the operator's kinds, into the test's namespace when the kind is namespaced. */
const applyResource = (kind: KindRef, name: string, spec: object) =>
  admin.apply(kind, {
    apiVersion: `${kind.group}/${kind.version}`,
    kind: kind.kind,
    metadata: { name, ...(kind.namespaced && { namespace }) },
    spec,
  } as KubeObject);

describe("installed with kubectl apply -k", () => {
  test("the Deployment becomes Available on the real node, running the overridden image", async () => {
    const started = Date.now();
    await deploymentAvailable(1);
    const [pod] = await operatorPods();
    expect(pod?.spec?.nodeName).toBe(REAL_NODE_NAME);
    expect(pod?.spec?.containers?.[0]?.image).toBe(`${IMAGE_OVERRIDE.newName}:${IMAGE_OVERRIDE.newTag}`);
    expect(pod?.status?.containerStatuses?.[0]?.ready).toBe(true);
    const runningAt = Date.parse(pod?.status?.containerStatuses?.[0]?.state.running?.startedAt as string);
    const readyAt = Date.parse(findCondition(pod?.status?.conditions, "Ready")?.lastTransitionTime as string);
    process.stderr.write(
      `[e2e] operator Deployment Available ${((Date.now() - started) / 1000).toFixed(1)} s after apply; ` +
        `its container Ready ${((readyAt - runningAt) / 1000).toFixed(0)} s after it started\n`,
    );
  });

  test("the running container is uid/gid 65532, read-only at its root, without capabilities or privilege escalation", async () => {
    const [pod] = await operatorPods();
    const id = pod?.status?.containerStatuses?.[0]?.containerID?.replace(/^containerd:\/\//, "") as string;
    const pid = (await containerdTasks(node.containerdSocket)).get(id);
    expect(pid, `containerd task of container ${id}`).toBeGreaterThan(0);
    // Read from the kernel's view of the process, not from the manifest that asked for it.
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name: string) => status.match(new RegExp(`^${name}:\\s*(.*)$`, "m"))?.[1]?.split(/\s+/);
    expect(field("Uid")).toEqual(["65532", "65532", "65532", "65532"]);
    expect(field("Gid")).toEqual(["65532", "65532", "65532", "65532"]);
    for (const set of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"])
      expect(field(set)).toEqual(["0000000000000000"]);
    expect(field("NoNewPrivs")).toEqual(["1"]);
    const root = readFileSync(`/proc/${pid}/mountinfo`, "utf8")
      .split("\n")
      .map((l) => l.split(" "))
      .find((f) => f[4] === "/");
    expect(root?.[5]?.split(",")).toContain("ro");
  });

  test("it leads with its projected ServiceAccount token, through the in-cluster path", async () => {
    const [pod] = await operatorPods();
    const name = pod?.metadata.name as string;
    await waitUntil("the operator's pod to hold the leader Lease", async () => (await leaderPod()) === name, {
      timeoutMs: 60_000,
    });
    // The token the kubelet requested for it (bound to the pod, expiring), mounted where in-cluster config looks.
    const volumes = (pod?.spec as { volumes?: { name: string; projected?: { sources: object[] } }[] }).volumes ?? [];
    const token = volumes.find((v) => v.projected?.sources.some((s) => "serviceAccountToken" in s));
    expect(token?.name).toMatch(/^kube-api-access-/);
    const env = (pod?.spec as { containers: { env?: { name: string }[] }[] }).containers[0]?.env ?? [];
    expect(env.map((e) => e.name)).not.toContain("KUBECONFIG");
  });

  test("Prometheus scrapes it through the metrics Service", async () => {
    // As with kube-prometheus-stack: Prometheus' own ServiceAccount, bound to the generated metrics-reader role,
    // scrapes over HTTPS with its token, which the operator has the API server review.
    const token = await serviceAccountToken(admin, namespace, "prometheus", METRICS_READER_ROLE);
    const prometheus = await Prometheus.start({
      serviceJobs: {
        "nextgen-operator": {
          kubeconfig: info.adminKubeconfig,
          namespace: OPERATOR_NAMESPACE,
          service: "nextgen-operator-metrics",
          port: "metrics",
          bearerToken: token,
        },
      },
    });
    try {
      const [pod] = await operatorPods();
      const up = await waitUntil(
        "Prometheus to scrape the operator",
        async () => {
          const samples = await prometheus.query('up{job="nextgen-operator"} == 1');
          return samples.find((s) => s.labels.pod === pod?.metadata.name);
        },
        { timeoutMs: 60_000, intervalMs: 1000 },
      );
      expect(up.value).toBe(1);
      const leading = await prometheus.query('leader_election_master_status{job="nextgen-operator"}');
      expect(leading.map((s) => s.value)).toEqual([1]);
    } finally {
      await prometheus.stop();
    }
  });
});

describe("every kind on real containers", () => {
  const QuantumBackend = crdKind("QuantumBackend");
  const QuantumJob = crdKind("QuantumJob");
  const PQKeySet = crdKind("PQKeySet");
  const RemediationPolicy = crdKind("RemediationPolicy");
  const CarbonBudget = crdKind("CarbonBudget");
  const EdgeNode = crdKind("EdgeNode");
  const get = (kind: typeof PQKeySet, name: string, ns: string | undefined = namespace) =>
    admin.get<Resource>(kind, kind.namespaced ? ns : undefined, name);
  const waitFor = (kind: typeof PQKeySet, name: string, what: string, ok: (o: Resource) => boolean) =>
    waitUntil(
      `${kind.kind} ${name}: ${what}`,
      async () => {
        const o = await get(kind, name);
        return o && ok(o) ? o : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 500 },
    );
  const condition = (o: Resource, type: string) => findCondition(o.status?.conditions, type);
  const history = (p: Resource) => (p.status?.history ?? []) as HistoryEntry[];
  const available = async (name: string) =>
    (await admin.get<Deployment>(DeploymentKind, namespace, name))?.status?.availableReplicas ?? 0;
  /** A RemediationPolicy over Deployment `name`: one trigger, one action, brakes loose enough for a test. */
  const policyOn = (name: string, trigger: object, action: object) =>
    applyResource(RemediationPolicy, name, {
      targetRef: { apiVersion: "apps/v1", kind: "Deployment", name },
      triggers: [trigger],
      actions: [action],
      safety: { maxConcurrent: 1, cooldown: "10s", maxActionsPerHour: 6, minAvailable: "0%" },
    });
  const probeDeployment = (name: string, args: string[], opts: ProbeOptions = {}) =>
    nodeProbeDeployment(namespace, images.probe, name, args, opts);

  test("EdgeNode: the real node is a member, Ready", async () => {
    await applyResource(EdgeNode, `real-${namespace}`, {
      tier: "ContinentalHub",
      region: "local",
      nodeSelector: { matchLabels: { [REAL_NODE_LABEL]: "true" } },
    });
    const site = await waitFor(
      EdgeNode,
      `real-${namespace}`,
      "Online",
      (s) => condition(s, "Ready")?.status === "True",
    );
    expect(site.status?.members).toEqual([expect.objectContaining({ name: REAL_NODE_NAME, ready: true })]);
  });

  test.each([
    { runner: "operator", image: undefined },
    { runner: "gpu-runner", image: images.runner },
  ])(
    "a Job-mode QuantumBackend runs the circuit in the $runner image as a real Pod; the result comes from its termination message",
    async ({ runner, image }) => {
      const backend = `job-${runner}-${namespace}`;
      // Without an image, a Job backend runs the operator's own (NEXTGEN_RUNNER_IMAGE); the GPU runner's CPU variant
      // honours the same runner contract.
      await applyResource(QuantumBackend, backend, {
        type: "Simulator",
        siteRef: { name: `real-${namespace}` },
        execution: {
          mode: "Job",
          ...(image && { image }),
          resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { memory: "1Gi" } },
        },
        capabilities: { maxQubits: 12 },
        capacity: { maxConcurrentJobs: 2 },
      });
      const job = `bell-${runner}`;
      await applyResource(QuantumJob, job, {
        circuit: {
          openqasm:
            'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n',
        },
        shots: 500,
        backend: { name: backend, fallbackToSimulator: false },
      });
      const done = await waitFor(QuantumJob, job, "Succeeded", (j) => j.status?.phase === "Succeeded");
      const result = done.status?.result as { counts: Record<string, number> };
      expect(Object.keys(result.counts).sort()).toEqual(["00", "11"]);
      expect(Object.values(result.counts).reduce((a, b) => a + b, 0)).toBe(500);
      // The Pod that ran it, on the real node, ended with the runner's output as its termination message.
      const pods = (await admin.list<Pod>(PodKind, { namespace })).items.filter((p) =>
        p.metadata.labels?.["job-name"]?.startsWith(job),
      );
      expect(pods.map((p) => p.spec?.nodeName)).toContain(REAL_NODE_NAME);
      expect(pods.map((p) => p.spec?.containers?.[0]?.image)).toContain(image ?? images.operator);
      const terminated = pods.flatMap((p) => p.status?.containerStatuses ?? []).map((c) => c.state.terminated);
      expect(terminated.some((t) => t?.exitCode === 0 && t.message?.includes('"counts"'))).toBe(true);
      await admin.delete(QuantumBackend, undefined, backend);
    },
  );

  test("a Pod mounting a PQKeySet's Secret reads the current key", async () => {
    await applyResource(PQKeySet, "mounted", { algorithm: "ML-KEM-768", rotationPeriod: "720h" });
    const ready = await waitFor(PQKeySet, "mounted", "Ready", (k) => condition(k, "Ready")?.status === "True");
    await admin.create(PodKind, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "key-reader", namespace },
      spec: {
        nodeSelector: { [REAL_NODE_LABEL]: "true" },
        restartPolicy: "Never",
        securityContext: { runAsNonRoot: true, runAsUser: 65532 },
        containers: [
          {
            name: "reader",
            image: images.operator,
            imagePullPolicy: "Never",
            command: [
              "node",
              "-e",
              "const fs = require('node:fs'); fs.writeFileSync('/dev/termination-log', fs.readFileSync('/keys/current.kid'))",
            ],
            volumeMounts: [{ name: "keys", mountPath: "/keys", readOnly: true }],
          },
        ],
        volumes: [{ name: "keys", secret: { secretName: "mounted" } }],
      },
    } as KubeObject);
    const pod = await podWhere(admin, namespace, { name: "key-reader" }, "terminated", (p) =>
      Boolean(p.status?.containerStatuses?.[0]?.state.terminated),
    );
    const terminated = pod.status?.containerStatuses?.[0]?.state.terminated as ContainerState["terminated"];
    expect(terminated?.exitCode).toBe(0);
    expect(terminated?.message).toBe(ready.status?.currentKeyId);
  });

  test("RemediationPolicy: a bad rollout whose real container crash-loops (exit 1) is rolled back, and heals", async () => {
    await admin.apply(DeploymentKind, probeDeployment("web", ["serve"]));
    await waitUntil("web available", async () => (await available("web")) === 2, { timeoutMs: 120_000 });
    await policyOn(
      "web",
      { name: "crashloop", crashLoop: { restarts: 2, window: "5m" } },
      { rollback: {}, timeout: "2m" },
    );
    // The rollout: the new pods' one container exits 1, and the kubelet restarts it with its back-off.
    await admin.apply(DeploymentKind, probeDeployment("web", ["exit", "1"]));
    const crashed = await podWhere(admin, namespace, { labelSelector: "app=web" }, "a container exited 1", (p) =>
      (p.status?.containerStatuses ?? []).some((c) => c.lastState.terminated?.exitCode === 1),
    );
    expect(crashed.spec?.nodeName).toBe(REAL_NODE_NAME);
    const healed = await waitFor(RemediationPolicy, "web", "rolled back and resolved", (p) =>
      history(p).some((h) => h.action === "Rollback" && h.result === "Resolved"),
    );
    expect(history(healed).find((h) => h.action === "Rollback")?.message).toMatch(/rolled Deployment\/web back/);
    expect(await available("web")).toBe(2);
  });

  test("RemediationPolicy: a container the kernel kills at its memory limit (OOMKilled) is restarted", async () => {
    await admin.apply(DeploymentKind, probeDeployment("hungry", ["allocate"], { replicas: 1, memoryLimit: "32Mi" }));
    await policyOn("hungry", { name: "oom", oomKilled: { count: 1, window: "5m" } }, { restartPod: {}, timeout: "1m" });
    const killed = await podWhere(admin, namespace, { labelSelector: "app=hungry" }, "OOMKilled", (p) =>
      (p.status?.containerStatuses ?? []).some((c) => c.lastState.terminated?.reason === "OOMKilled"),
    );
    expect(killed.status?.containerStatuses?.[0]?.lastState.terminated?.exitCode).toBe(137);
    const p = await waitFor(RemediationPolicy, "hungry", "RestartPod for oom", (x) =>
      history(x).some((h) => h.action === "RestartPod" && h.result === "Succeeded"),
    );
    expect(history(p).find((h) => h.action === "RestartPod")).toMatchObject({
      trigger: "oom",
      target: "Deployment/hungry",
    });
  });

  test("CarbonBudget: the energy of the namespace's real Running pods, accounted in grams", async () => {
    await applyResource(CarbonBudget, "e2e", {
      budgetGrams: 1000,
      period: { type: "Daily" },
      energy: { estimate: { wattsPerCore: "50", utilization: "1" } },
      intensity: { static: { gramsPerKWh: 500 }, refreshInterval: "5s" },
    });
    const running = (await admin.list<Pod>(PodKind, { namespace })).items.filter((p) => p.status?.phase === "Running");
    expect(running.length).toBeGreaterThan(0);
    const b = await waitFor(CarbonBudget, "e2e", "grams accounted", (x) => Number(x.status?.consumedGrams ?? 0) > 0);
    expect(condition(b, "Ready")?.message).toMatch(/^Accounted [1-9]\d* pods/);
  });
});

describe("two replicas", () => {
  test("deleting the leader's pod hands over to the other, and work in flight completes once", async () => {
    kubectl(
      node.kubectl,
      info.adminKubeconfig,
      "scale",
      "deployment",
      DEPLOYMENT,
      "-n",
      OPERATOR_NAMESPACE,
      "--replicas=2",
    );
    await deploymentAvailable(2);
    const leader = await leaderPod();
    const pods = (await operatorPods()).map((p) => p.metadata.name);
    expect(pods).toContain(leader);
    const standby = pods.find((p) => p !== leader) as string;

    const PQKeySet = crdKind("PQKeySet");
    const QuantumBackend = crdKind("QuantumBackend");
    const QuantumJob = crdKind("QuantumJob");
    await applyResource(PQKeySet, "handover", { algorithm: "ML-DSA-65", rotationPeriod: "720h", retainPrevious: 1 });
    const before = await waitUntil(
      "the key set Ready",
      async () => {
        const k = await admin.get<Resource>(PQKeySet, namespace, "handover");
        return findCondition(k?.status?.conditions, "Ready")?.status === "True" ? k : undefined;
      },
      { timeoutMs: 60_000 },
    );
    await applyResource(QuantumBackend, `embedded-${namespace}`, {
      type: "Simulator",
      execution: { mode: "Embedded" },
      capacity: { maxConcurrentJobs: 1 },
    });

    // Work handed to the leader as it goes: a forced rotation and a job, then its pod is deleted.
    await admin.patch(PQKeySet, namespace, "handover", "merge", {
      metadata: { annotations: { [ROTATE_ANNOTATION]: "handover" } },
    });
    await applyResource(QuantumJob, "handover", {
      circuit: {
        openqasm:
          'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[3] q;\nbit[3] c;\nh q[0];\ncx q[0], q[1];\ncx q[1], q[2];\nc = measure q;\n',
      },
      shots: 2000,
      backend: { name: `embedded-${namespace}`, fallbackToSimulator: false },
    });
    const deleted = Date.now();
    await admin.delete(PodKind, OPERATOR_NAMESPACE, leader as string);
    // The standby, or the replacement the Deployment starts at once: whichever takes the Lease the leader gave back.
    const next = await waitUntil(
      "another pod to lead",
      async () => {
        const holder = await leaderPod();
        return holder && holder !== leader ? holder : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 100 },
    );
    process.stderr.write(
      `[e2e] leader hand-over ${((Date.now() - deleted) / 1000).toFixed(1)} s after its pod's deletion ` +
        `(to the ${next === standby ? "standby" : "replacement"})\n`,
    );

    await waitUntil(
      "the job to succeed",
      async () => {
        const j = await admin.get<Resource>(QuantumJob, namespace, "handover");
        return j?.status?.phase === "Succeeded" ? j : undefined;
      },
      { timeoutMs: 120_000 },
    );
    // One end, reported once (events.k8s.io: `regarding` names the object).
    const succeeded = (
      await admin.list<KubeObject & { reason?: string; regarding?: { name?: string } }>(EventKind, { namespace })
    ).items.filter((e) => e.regarding?.name === "handover" && e.reason === "Succeeded");
    expect(succeeded).toHaveLength(1);
    const after = await waitUntil(
      "the rotation",
      async () => {
        const k = await admin.get<Resource>(PQKeySet, namespace, "handover");
        return k?.status?.currentKeyId !== before.status?.currentKeyId ? k : undefined;
      },
      { timeoutMs: 120_000 },
    );
    // One rotation, not two: the new leader saw the request handled (or handled it), never twice.
    expect(after.status?.revision).toBe((before.status?.revision as number) + 1);
    expect((after.status?.keys as { state: string }[]).map((k) => k.state)).toEqual(["Active", "Retained"]);
    await deploymentAvailable(2);
    // Still one rotation once both replicas run again: neither the new leader nor the replacement made another.
    const settled = await admin.get<Resource>(PQKeySet, namespace, "handover");
    expect(settled?.status?.revision).toBe(after.status?.revision);
    await admin.delete(QuantumBackend, undefined, `embedded-${namespace}`);
  });
});
