import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { KwokNodes } from "../../src/controlplane/kwok.ts";
import type { EdgeNode } from "../../src/crds/edgenode.ts";
import { EdgeNodeKind } from "../../src/crds/edgenode.ts";
import { type QuantumBackend, QuantumBackendKind, type QuantumBackendSpec } from "../../src/crds/quantumbackend.ts";
import { type QuantumJob, QuantumJobKind, type QuantumJobSpec } from "../../src/crds/quantumjob.ts";
import { ensureGpuRunnerPython } from "../../src/controlplane/assets.ts";
import { QISKIT_FEATURES } from "../../src/quantum/circuit.ts";
import { JobKind, NodeKind, PodKind, SecretKind } from "../../src/runtime/kinds.ts";
import { type FakeIbmQuantum, startFakeIbmQuantum } from "../fakes/ibm-quantum-server.ts";
import { BELL, FEATURE_PROGRAMS, ghz } from "../fixtures/circuits.ts";
import { type KubeObject, cluster, createNamespace, deleteAfterFile, startOperator, waitUntil } from "./harness.ts";

const { admin, operatorKubeconfig } = cluster();
const FILE = { "test.nextgen.itechsmart.io/file": "quantum" };
const nodes = new KwokNodes(admin, FILE);
const SITE_KEY = "test.nextgen.itechsmart.io/quantum-site";
let ns: string;
let operator: Awaited<ReturnType<typeof startOperator>>;
let ibm: FakeIbmQuantum;
/** Cluster-scoped names get this suffix, so that reruns against one control plane do not collide. */
const suffix = Math.random().toString(36).slice(2, 7);

/** A circuit dense enough to keep a worker thread busy for seconds (every qubit in superposition, entangled). */
const SLOW = `OPENQASM 3.0;
include "stdgates.inc";
qubit[16] q;
bit[16] c;
for int i in [0:15] { h q[i]; }
for int i in [0:14] { cx q[i], q[i + 1]; rz(0.3) q[i + 1]; ry(0.7) q[i]; }
c = measure q;
`;

/** A backend from the fields a test cares about; the API server fills in the defaults. */
const backend = (name: string, spec: Record<string, unknown>, labels: Record<string, string> = {}) =>
  admin.create<QuantumBackend>(QuantumBackendKind, {
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "QuantumBackend",
    metadata: { name: `${name}-${suffix}`, labels: { ...FILE, ...labels } },
    spec: { type: "Simulator", ...spec } as unknown as QuantumBackendSpec,
  });
const qjob = (name: string, spec: Partial<QuantumJobSpec>) =>
  admin.create<QuantumJob>(QuantumJobKind, {
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "QuantumJob",
    metadata: { name, namespace: ns, labels: FILE },
    spec: { circuit: { openqasm: BELL }, ...spec } as QuantumJobSpec,
  });
const getJob = (name: string) => admin.get<QuantumJob>(QuantumJobKind, ns, name);
const waitJob = (name: string, what: string, pred: (j: QuantumJob) => boolean, timeoutMs = 60_000) =>
  waitUntil(
    `QuantumJob ${name}: ${what}`,
    async () => {
      const j = await getJob(name);
      return j && pred(j) ? j : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );
const waitBackend = (name: string, what: string, pred: (b: QuantumBackend) => boolean) =>
  waitUntil(
    `QuantumBackend ${name}: ${what}`,
    async () => {
      const b = await admin.get<QuantumBackend>(QuantumBackendKind, undefined, name);
      return b && pred(b) ? b : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
const condition = (j: QuantumJob, type: string) => j.status?.conditions?.find((c) => c.type === type);
const finished = (j: QuantumJob) => ["Succeeded", "Failed", "Cancelled"].includes(j.status?.phase ?? "");
/** Within 5 standard deviations of the binomial mean: fails for a wrong distribution, not for bad luck. */
const near = (count: number, shots: number, p: number) =>
  Math.abs(count - shots * p) <= 5 * Math.sqrt(shots * p * (1 - p));

const embedded = `sim-${suffix}`;
/** A label on the backends a placement test chooses between. */
const RUNNER_TEST = "test.nextgen.itechsmart.io/runner-test";

beforeAll(async () => {
  ns = await createNamespace(admin, "quantum");
  ibm = await startFakeIbmQuantum();
  await backend("sim", { execution: { mode: "Embedded" } }, { [RUNNER_TEST]: suffix });
  operator = await startOperator(operatorKubeconfig);
  deleteAfterFile(admin, FILE, [QuantumJobKind, QuantumBackendKind, EdgeNodeKind, NodeKind]);
});
afterAll(async () => {
  await ibm?.close();
});

describe("the embedded simulator", () => {
  test("runs a Bell circuit and reports counts, placement and printer fields", async () => {
    await qjob("bell", { shots: 1000, backend: { name: embedded, fallbackToSimulator: true } });
    const j = await waitJob("bell", "succeeded", (x) => x.status?.phase === "Succeeded");
    const counts = j.status?.result?.counts ?? {};
    expect(Object.keys(counts).sort()).toEqual(["00", "11"]);
    expect(near(counts["00"] ?? 0, 1000, 0.5)).toBe(true);
    expect((counts["00"] ?? 0) + (counts["11"] ?? 0)).toBe(1000);
    expect(j.status?.result?.shots).toBe(1000);
    expect(j.status?.result?.topResult).toMatch(/^(00|11) \(\d+\.\d%\)$/);
    expect(j.status).toMatchObject({ qubits: 2, attempts: 1, placement: { backend: embedded, fallbackUsed: false } });
    expect(j.status?.gates).toMatchObject({ singleQubit: 1, twoQubit: 1, measurements: 2 });
    expect(j.status?.circuitHash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(j.status?.placement?.reasons?.[0]).toMatch(new RegExp(`^${embedded}`));
    expect(condition(j, "Complete")?.status).toBe("True");
    expect(j.status?.completionTime).toBeDefined();
  });

  test("runs GHZ circuits: only all-zeros and all-ones", async () => {
    await qjob("ghz", {
      shots: 500,
      circuit: { openqasm: ghz(12) },
      backend: { name: embedded, fallbackToSimulator: false },
    });
    const j = await waitJob("ghz", "succeeded", (x) => x.status?.phase === "Succeeded");
    const counts = j.status?.result?.counts ?? {};
    expect(Object.keys(counts).sort()).toEqual(["0".repeat(12), "1".repeat(12)]);
    expect(near(counts["1".repeat(12)] ?? 0, 500, 0.5)).toBe(true);
  });

  test("an invalid circuit fails once with the compiler's line and column, and is not retried", async () => {
    const bad = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nh q[0]\ncx q[0], q[1];\n';
    await qjob("invalid", { circuit: { openqasm: bad }, backend: { name: embedded, fallbackToSimulator: false } });
    const j = await waitJob("invalid", "failed", (x) => x.status?.phase === "Failed");
    const failed = condition(j, "Failed");
    expect(failed).toMatchObject({ status: "True", reason: "InvalidCircuit" });
    expect(failed?.message).toMatch(/^line 5, column 1: /);
    expect(j.status?.attempts ?? 0).toBe(0);
  });

  test("a noisy run simulates a QPU's calibration on a simulator", async () => {
    const qpu = `noisy-qpu-${suffix}`;
    await backend("noisy-qpu", {
      type: "QPU",
      execution: { mode: "Remote", provider: "IBMQuantum", credentialsSecretRef: { name: `absent-${suffix}` } },
      calibration: { singleQubitError: 0.02, twoQubitError: 0.08, readoutError: 0.03 },
    });
    await waitBackend(qpu, "unavailable for lack of credentials", (b) => b.status?.reason === "MissingCredentials");
    await qjob("noisy", { shots: 2000, noise: { fromBackend: qpu } });
    const j = await waitJob("noisy", "succeeded", (x) => x.status?.phase === "Succeeded");
    const counts = j.status?.result?.counts ?? {};
    const errors = (counts["01"] ?? 0) + (counts["10"] ?? 0);
    // Bell never measures 01 or 10 without noise; with these error rates a clear share does.
    expect(errors / 2000).toBeGreaterThan(0.02);
    expect(errors / 2000).toBeLessThan(0.5);
    const b = await admin.get<QuantumBackend>(QuantumBackendKind, undefined, j.status?.placement?.backend ?? "");
    expect(b?.spec.type).toBe("Simulator");
  });
});

describe("placement", () => {
  test("a circuit no backend can hold waits Unschedulable with reasons, and runs once one can", async () => {
    await qjob("wide", {
      shots: 50,
      circuit: { openqasm: ghz(24) },
      backend: { fallbackToSimulator: true, selector: { matchLabels: { wide: suffix } } },
    });
    const pending = await waitJob(
      "wide",
      "unschedulable",
      (x) => condition(x, "Scheduled")?.reason === "Unschedulable",
    );
    expect(pending.status?.phase).toBe("Pending");
    expect(pending.status?.placement?.reasons?.join("\n")).toMatch(
      new RegExp(`${embedded}.*not selected|${embedded}.*rejected`),
    );
    await backend(
      "wide",
      {
        execution: { mode: "Embedded" },
        capabilities: { maxQubits: 26, maxShots: 1000 },
      },
      { wide: suffix },
    );
    const j = await waitJob("wide", "succeeded", (x) => x.status?.phase === "Succeeded");
    expect(j.status?.placement?.backend).toBe(`wide-${suffix}`);
    expect(Object.keys(j.status?.result?.counts ?? {}).sort()).toEqual(["0".repeat(24), "1".repeat(24)]);
  });

  test("a backend's slots are shared by priority, then age, with queue positions; deleting a run cancels it", async () => {
    const one = `one-slot-${suffix}`;
    await backend("one-slot", {
      execution: { mode: "Embedded" },
      capacity: { maxConcurrentJobs: 1 },
    });
    await waitBackend(one, "ready", (b) => b.status?.phase === "Ready");
    const pin = { name: one, fallbackToSimulator: false };
    await qjob("slow", { shots: 100_000, circuit: { openqasm: SLOW }, backend: pin });
    const slow = await waitJob("slow", "running", (x) => x.status?.phase === "Running");
    // An embedded run needs no finalizer: deleting the job stops it from the informer's delete.
    expect(slow.metadata.finalizers).toBeUndefined();
    await qjob("low", { shots: 10, backend: pin, priority: 0 });
    await qjob("high", { shots: 10, backend: pin, priority: 10 });
    const queued = await waitBackend(
      one,
      "one running, two queued",
      (b) => b.status?.running === 1 && b.status.queued === 2,
    );
    // The queue's order is the backend's to show: a job's status says only that it is Queued, and where.
    expect(queued.status?.queueHead).toEqual([
      { position: 1, namespace: ns, name: "high", priority: 10 },
      { position: 2, namespace: ns, name: "low", priority: 0 },
    ]);
    for (const name of ["high", "low"]) {
      const j = await getJob(name);
      expect(j?.status?.phase).toBe("Queued");
      expect(condition(j as QuantumJob, "Scheduled")?.message).toContain(`QuantumBackend ${one}'s status.queueHead`);
    }

    await admin.delete(QuantumJobKind, ns, "slow");
    await waitUntil("the slow job to be gone", async () => !(await getJob("slow")), { timeoutMs: 30_000 });
    const high = await waitJob("high", "succeeded", (x) => x.status?.phase === "Succeeded");
    const low = await waitJob("low", "succeeded", (x) => x.status?.phase === "Succeeded");
    expect(Date.parse(high.status?.completionTime ?? "")).toBeLessThanOrEqual(
      Date.parse(low.status?.completionTime ?? ""),
    );
    const events = await admin.list<KubeObject & { reason?: string; regarding?: { name: string } }>(
      { group: "events.k8s.io", version: "v1", kind: "Event", plural: "events", namespaced: true },
      { namespace: ns },
    );
    expect(events.items.some((e) => e.reason === "Cancelled" && e.regarding?.name === "slow")).toBe(true);
    expect(
      await operator.metric("nextgen_quantumjob_finished_total", { phase: "Cancelled", reason: "Deleted" }),
    ).toBeGreaterThanOrEqual(1);
  });
});

/** A site (a ContinentalHub EdgeNode) whose members are the Nodes labelled with its name. */
const createSite = (name: string) =>
  admin.create<EdgeNode>(EdgeNodeKind, {
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "EdgeNode",
    metadata: { name, labels: FILE },
    spec: {
      tier: "ContinentalHub",
      nodeSelector: { matchLabels: { [SITE_KEY]: name } },
    } as unknown as EdgeNode["spec"],
  });

type RunnerPod = KubeObject & {
  spec: { nodeName?: string; containers: Array<{ image: string; env: Array<{ name: string; value: string }> }> };
  status?: { phase?: string };
};

/** The pod of a runner Job once the real scheduler has bound it and KWOK reports it running. */
const runnerPod = (jobName: string) =>
  waitUntil(
    "the runner pod to be bound and started",
    async () =>
      (await admin.list<RunnerPod>(PodKind, { namespace: ns, labelSelector: `job-name=${jobName}` })).items.find(
        (p) => p.spec.nodeName && p.status?.phase === "Running",
      ),
    { timeoutMs: 60_000, intervalMs: 250 },
  );

/**
 * KWOK reported the container started; as the container would, run `command` for real with the pod's environment,
 * then report its exit and termination message as the kubelet does. Returns the exit code.
 */
async function runAsKubelet(pod: RunnerPod, command: string[]): Promise<number | null> {
  const dir = await mkdtemp(join(tmpdir(), "runner-"));
  const container = pod.spec.containers[0];
  const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
  const [program, ...args] = command as [string, ...string[]];
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(program, args, {
      env: { PATH: process.env.PATH, ...env, NEXTGEN_RESULT_FILE: join(dir, "termination-log") },
      stdio: "ignore",
    });
    child.on("exit", resolve);
  });
  const message = await readFile(join(dir, "termination-log"), "utf8");
  await rm(dir, { recursive: true, force: true });
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const terminated = {
    exitCode: code,
    reason: code === 0 ? "Completed" : "Error",
    message,
    startedAt: now,
    finishedAt: now,
  };
  await admin.patch(
    PodKind,
    ns,
    pod.metadata.name,
    "merge",
    {
      status: {
        phase: code === 0 ? "Succeeded" : "Failed",
        containerStatuses: [
          {
            name: "runner",
            image: container?.image,
            imageID: "",
            ready: false,
            restartCount: 0,
            state: { terminated },
          },
        ],
      },
    },
    { subresource: "status" },
  );
  return code;
}

describe("Job mode", () => {
  test("runs the runner as a Job on a GPU node of the backend's site and reports what it measured", async () => {
    const site = `gpu-site-${suffix}`;
    const other = `other-site-${suffix}`;
    await createSite(site);
    await createSite(other);
    await nodes.register(`cpu-${suffix}`, { labels: { [SITE_KEY]: site } });
    await nodes.register(`gpu-${suffix}`, { labels: { [SITE_KEY]: site }, allocatable: { "nvidia.com/gpu": "1" } });
    await nodes.register(`gpu-elsewhere-${suffix}`, {
      labels: { [SITE_KEY]: other },
      allocatable: { "nvidia.com/gpu": "4" },
    });
    const gpuSim = `gpu-sim-${suffix}`;
    await backend("gpu-sim", {
      execution: {
        mode: "Job",
        resources: { limits: { "nvidia.com/gpu": 1, memory: "8Gi" } },
        tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
      },
      siteRef: { name: site },
    });
    await waitBackend(gpuSim, "ready", (b) => b.status?.phase === "Ready");
    await qjob("on-gpu", { shots: 400, backend: { name: gpuSim, fallbackToSimulator: false } });

    const scheduled = await waitJob("on-gpu", "a Job", (x) => x.status?.jobRef !== undefined);
    const jobName = scheduled.status?.jobRef?.name as string;
    type BatchJob = KubeObject & {
      spec: {
        template: {
          spec: {
            nodeSelector: Record<string, string>;
            containers: Array<{ resources: unknown; env: Array<{ name: string; value: string }> }>;
          };
        };
      };
    };
    const batch = (await admin.get<BatchJob>(JobKind, ns, jobName)) as BatchJob;
    expect(batch.metadata.ownerReferences?.[0]).toMatchObject({ kind: "QuantumJob", name: "on-gpu", controller: true });
    expect(batch.spec.template.spec.containers[0]).toMatchObject({
      image: "ghcr.io/itechsmart/nextgen-operator:0.1.0",
      args: ["runner"],
    });
    expect(batch.spec.template.spec.nodeSelector).toEqual({ "nextgen.itechsmart.io/edge-node": site });
    expect(batch.spec.template.spec.containers[0]?.resources).toEqual({
      limits: { "nvidia.com/gpu": "1", memory: "8Gi" },
    });

    // The real job controller makes the pod and the real scheduler binds it: to the GPU node of this site.
    const pod = await runnerPod(jobName);
    expect(pod.spec.nodeName).toBe(`gpu-${suffix}`);
    expect(await runAsKubelet(pod, [process.execPath, "src/cli/main.ts", "runner"])).toBe(0);

    const j = await waitJob("on-gpu", "succeeded", (x) => x.status?.phase === "Succeeded");
    const counts = j.status?.result?.counts ?? {};
    expect(Object.keys(counts).sort()).toEqual(["00", "11"]);
    expect((counts["00"] ?? 0) + (counts["11"] ?? 0)).toBe(400);
    expect(j.status?.placement?.site).toBe(site);
  });
});

describe("Job mode with the GPU runner (runners/gpu: Qiskit Aer, run here on the CPU as its Job would run it)", () => {
  const site = `aer-site-${suffix}`;
  const aer = `aer-gpu-${suffix}`;

  beforeAll(async () => {
    await createSite(site);
    await nodes.register(`a100-${suffix}`, { labels: { [SITE_KEY]: site }, allocatable: { "nvidia.com/gpu": "1" } });
    // A 16 GiB GPU in single precision: 2^30 amplitudes of 8 B (8 GiB) fit in 90% of it, 2^31 (16 GiB) do not.
    await backend(
      "aer-gpu",
      {
        execution: {
          mode: "Job",
          image: "ghcr.io/itechsmart/nextgen-gpu-runner:0.1.0",
          precision: "Single",
          gpuMemory: "16Gi",
          resources: { limits: { "nvidia.com/gpu": 1, memory: "4Gi" } },
          tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
        },
        // What the runner's importer converts, as test/unit/gpu-runner.test.ts checks.
        capabilities: { maxQubits: 34, languageFeatures: QISKIT_FEATURES },
        siteRef: { name: site },
      },
      { [RUNNER_TEST]: suffix },
    );
  });

  test("the backend's qubits follow from its GPU memory, and says so", async () => {
    const ready = await waitBackend(aer, "ready", (b) => b.status?.phase === "Ready");
    expect(ready.status?.maxQubits).toBe(30);
    expect(ready.status?.message).toBe(
      `Runs up to 30 qubits as Jobs at site ${site} (capabilities allow 34, but 30 is the most whose state vector, ` +
        "2^30 × 8 B (single precision) = 8 GiB, fits in 90% of 16 GiB of GPU memory (spec.execution.gpuMemory)).",
    );
  });

  test("a circuit that would exhaust the GPU is Unschedulable, with the arithmetic", async () => {
    await qjob("too-wide-for-the-gpu", {
      shots: 10,
      circuit: { openqasm: ghz(31) },
      backend: { name: aer, fallbackToSimulator: false },
    });
    const pending = await waitJob(
      "too-wide-for-the-gpu",
      "unschedulable",
      (x) => condition(x, "Scheduled")?.reason === "Unschedulable",
    );
    expect(pending.status?.placement?.reasons).toContain(
      `${aer}: rejected: its state vector needs 2^31 × 8 B (single precision) = 16 GiB, more than 90% of 16 GiB ` +
        "of GPU memory (spec.execution.gpuMemory)",
    );
    expect(
      await admin.list(JobKind, {
        namespace: ns,
        labelSelector: `nextgen.itechsmart.io/quantumjob=too-wide-for-the-gpu`,
      }),
    ).toMatchObject({ items: [] });
    // It would wait for ever: the file's last test wants every job finished.
    await admin.delete(QuantumJobKind, ns, "too-wide-for-the-gpu");
  });

  test("a job placed there runs through a Job with the runner's image, and status names the device", async () => {
    const python = await ensureGpuRunnerPython((line) => process.stderr.write(`${line}\n`));
    await qjob("ghz-on-aer", {
      shots: 1000,
      circuit: { openqasm: ghz(5) },
      backend: { name: aer, fallbackToSimulator: false },
    });
    const scheduled = await waitJob("ghz-on-aer", "a Job", (x) => x.status?.jobRef !== undefined);
    expect(scheduled.status?.placement?.backend).toBe(aer);
    const pod = await runnerPod(scheduled.status?.jobRef?.name as string);
    expect(pod.spec.nodeName).toBe(`a100-${suffix}`);
    const container = pod.spec.containers[0];
    expect(container?.image).toBe("ghcr.io/itechsmart/nextgen-gpu-runner:0.1.0");
    expect(container?.env).toContainEqual({ name: "NEXTGEN_PRECISION", value: "single" });
    // The image's entrypoint, python3 /opt/runner/runner.py, with this checkout's runner and environment.
    expect(await runAsKubelet(pod, [python, "runners/gpu/runner.py"])).toBe(0);

    const done = await waitJob("ghz-on-aer", "succeeded", (x) => x.status?.phase === "Succeeded");
    const result = done.status?.result;
    expect(Object.keys(result?.counts ?? {}).sort()).toEqual(["00000", "11111"]);
    expect((result?.counts["00000"] ?? 0) + (result?.counts["11111"] ?? 0)).toBe(1000);
    expect(near(result?.counts["00000"] ?? 0, 1000, 0.5)).toBe(true);
    expect(result?.precision).toBe("Single");
    expect(result?.device).toMatch(/^CPU .+, \d+ threads?$/);
  });

  test("a for-loop job goes to a runner that takes loops; pinned to one that does not, it is Unschedulable", async () => {
    // The loop indexes q by its variable, which Qiskit's importer cannot convert (test/unit/gpu-runner.test.ts).
    await qjob("loop-anywhere", {
      shots: 10,
      circuit: { openqasm: FEATURE_PROGRAMS.ForLoops },
      backend: { fallbackToSimulator: false, selector: { matchLabels: { [RUNNER_TEST]: suffix } } },
    });
    const placed = await waitJob("loop-anywhere", "placed", (x) => condition(x, "Scheduled")?.status === "True");
    expect(placed.status?.languageFeatures).toEqual(["ForLoops"]);
    // The compiler's counts: the loop unrolled.
    expect(placed.status?.gates).toMatchObject({ singleQubit: 1, twoQubit: 2, measurements: 3 });
    expect(placed.status?.placement?.backend).toBe(embedded);
    expect(placed.status?.placement?.reasons).toContain(
      `${aer}: rejected: its runner does not take ForLoops (spec.capabilities.languageFeatures)`,
    );
    await waitJob("loop-anywhere", "succeeded", (x) => x.status?.phase === "Succeeded");

    await qjob("loop-on-aer", {
      shots: 10,
      circuit: { openqasm: FEATURE_PROGRAMS.ForLoops },
      backend: { name: aer, fallbackToSimulator: false },
    });
    const pending = await waitJob(
      "loop-on-aer",
      "unschedulable",
      (x) => condition(x, "Scheduled")?.reason === "UnsupportedLanguageFeatures",
    );
    expect(condition(pending, "Scheduled")?.message).toMatch(
      /^The backends that could run it lack OpenQASM features it uses \(ForLoops\): rewrite it without them or add a backend whose runner has them\. /,
    );
    expect(pending.status?.phase).toBe("Pending");
    expect(
      await admin.list(JobKind, { namespace: ns, labelSelector: "nextgen.itechsmart.io/quantumjob=loop-on-aer" }),
    ).toMatchObject({
      items: [],
    });
    // It would wait for ever: the file's last test wants every job finished.
    await admin.delete(QuantumJobKind, ns, "loop-on-aer");
  });
});

describe("Remote mode (IBM Quantum Platform API, served by a local server that speaks it)", () => {
  const qpu = `ibm-fake-${suffix}`;
  const secret = `ibm-credentials-${suffix}`;

  test("a QPU without its Secret is Unavailable and says so; with it, Ready with the provider's calibration", async () => {
    await backend("ibm-fake", {
      type: "QPU",
      execution: {
        mode: "Remote",
        provider: "IBMQuantum",
        endpoint: ibm.url,
        authEndpoint: ibm.authUrl,
        device: ibm.backend,
        credentialsSecretRef: { name: secret, namespace: ns },
        calibrationRefreshSeconds: 60,
      },
      capabilities: { maxQubits: 5, maxShots: 10_000 },
    });
    const missing = await waitBackend(qpu, "missing credentials", (b) => b.status?.reason === "MissingCredentials");
    expect(missing.status?.phase).toBe("Unavailable");
    expect(missing.status?.message).toContain(secret);
    await admin.create(SecretKind, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: secret, namespace: ns },
      stringData: { apiKey: ibm.apiKey, serviceCRN: ibm.serviceCRN },
    } as KubeObject);
    const ready = await waitBackend(qpu, "ready", (b) => b.status?.phase === "Ready");
    expect(ready.status?.calibration?.twoQubitError).toBeGreaterThan(0);
    expect(ready.status?.lastCalibrationTime).toBeDefined();
  });

  test("runs a job on the QPU: submitted once, polled to completion, counts in status", async () => {
    const before = ibm.submitted();
    await qjob("on-qpu", { shots: 100, backend: { name: qpu, types: ["QPU"], fallbackToSimulator: false } });
    const j = await waitJob("on-qpu", "succeeded", (x) => x.status?.phase === "Succeeded");
    expect(j.status?.remoteJobId).toBeDefined();
    expect(ibm.submitted() - before).toBe(1);
    expect(Object.keys(j.status?.result?.counts ?? {}).sort()).toEqual(["00", "11"]);
  });

  test("deleting a job cancels it at the provider", async () => {
    ibm.autoAdvance = false;
    await qjob("cancel-me", { shots: 100, backend: { name: qpu, fallbackToSimulator: false } });
    const j = await waitJob("cancel-me", "submitted", (x) => x.status?.remoteJobId !== undefined);
    await admin.delete(QuantumJobKind, ns, "cancel-me");
    await waitUntil(
      "the remote job to be cancelled",
      () => ibm.jobs.get(j.status?.remoteJobId as string)?.status === "Cancelled",
      { timeoutMs: 30_000 },
    );
    await waitUntil("the job to be gone", async () => !(await getJob("cancel-me")), { timeoutMs: 30_000 });
  });

  test("a provider asking to wait defers the submission; one refusing the job fails it, once", async () => {
    ibm.autoAdvance = true;
    // Longer than the adapter waits in line (5 s): the controller is told, and requeues instead of blocking.
    ibm.failNext(/\/v1\/jobs$/, 429, 1, { "Retry-After": "8" });
    await qjob("deferred", { shots: 100, backend: { name: qpu, fallbackToSimulator: false } });
    const deferred = await waitJob(
      "deferred",
      "deferred",
      (x) => condition(x, "Scheduled")?.reason === "SubmitDeferred",
    );
    // The start was recorded before the submission was tried: the slot and the attempt are taken.
    expect(deferred.status).toMatchObject({ phase: "Scheduled", attempts: 1 });
    expect(deferred.status?.remoteJobId).toBeUndefined();
    await waitJob("deferred", "succeeded after the wait", (x) => x.status?.phase === "Succeeded");

    ibm.failNext(/\/v1\/jobs$/, 400, 1);
    const before = ibm.submitted();
    await qjob("refused", { shots: 100, backend: { name: qpu, fallbackToSimulator: false } });
    const refused = await waitJob("refused", "failed", (x) => x.status?.phase === "Failed");
    expect(condition(refused, "Failed")?.reason).toBe("RejectedByProvider");
    expect(refused.status?.attempts).toBe(1);
    expect(ibm.submitted() - before).toBe(1);
  });

  test("a start is recorded before its submission: an operator killed in between submits it once on restart, when the provider said", async () => {
    ibm.autoAdvance = true;
    // The first submission is told to wait: the operator is killed with the start recorded, the wait in status and
    // nothing submitted; the restarted operator waits out what is left of it.
    ibm.failNext(/\/v1\/jobs$/, 429, 1, { "Retry-After": "10" });
    await qjob("recorded", { shots: 100, backend: { name: qpu, fallbackToSimulator: false } });
    const recorded = await waitJob(
      "recorded",
      "recorded and deferred",
      (x) => condition(x, "Scheduled")?.reason === "SubmitDeferred",
    );
    expect(recorded.status).toMatchObject({ phase: "Scheduled", attempts: 1, placement: { backend: qpu } });
    expect(recorded.status?.remoteJobId).toBeUndefined();
    expect(recorded.metadata.finalizers).toContain("nextgen.itechsmart.io/cancel-run");
    const deferredAt = ibm.submissions().at(-1)?.at as number;
    const retryAt = Date.parse(recorded.status?.retryTime ?? "");
    expect(retryAt).toBeGreaterThanOrEqual(deferredAt + 10_000 - 1_000); // whole seconds, as metav1.Time
    const before = ibm.submitted();
    await operator.stop("SIGKILL");
    operator = await startOperator(operatorKubeconfig);
    const done = await waitJob("recorded", "succeeded", (x) => x.status?.phase === "Succeeded");
    expect(ibm.submitted() - before).toBe(1);
    expect(ibm.submissions().at(-1)?.at).toBeGreaterThanOrEqual(retryAt);
    expect(done.status).toMatchObject({ attempts: 1, placement: { backend: qpu } });
    expect(done.status?.retryTime).toBeUndefined();
  });

  test("an operator restart resumes a submitted job instead of submitting it again", async () => {
    ibm.autoAdvance = false;
    const before = ibm.submitted();
    await qjob("survivor", { shots: 100, backend: { name: qpu, fallbackToSimulator: false } });
    const j = await waitJob("survivor", "submitted", (x) => x.status?.remoteJobId !== undefined);
    await operator.stop("SIGKILL");
    operator = await startOperator(operatorKubeconfig);
    ibm.advance(j.status?.remoteJobId);
    ibm.advance(j.status?.remoteJobId);
    const done = await waitJob("survivor", "succeeded", (x) => x.status?.phase === "Succeeded");
    expect(done.status?.remoteJobId).toBe(j.status?.remoteJobId);
    expect(ibm.submitted() - before).toBe(1);
    expect(done.status?.attempts).toBe(1);
  });
});

test("converged jobs and backends cost no API writes", async () => {
  const jobs = await waitUntil(
    "every job to finish",
    async () => {
      const items = (await admin.list<QuantumJob>(QuantumJobKind, { namespace: ns })).items;
      return items.every(finished) && items;
    },
    { timeoutMs: 60_000 },
  );
  const reconciles = async () =>
    (await operator.metric("controller_runtime_reconcile_total", { controller: "quantumjob" })) +
    (await operator.metric("controller_runtime_reconcile_total", { controller: "quantumbackend" }));
  const backends = (await admin.list<QuantumBackend>(QuantumBackendKind)).items.filter((b) =>
    b.metadata.name.endsWith(suffix),
  );
  const before = await operator.apiWrites();
  const logged = operator.writeLog.length;
  const r0 = await reconciles();
  // Touching a label reconciles each object once more without anything to change.
  for (const j of jobs)
    await admin.patch(QuantumJobKind, ns, j.metadata.name, "merge", { metadata: { labels: { poked: "1" } } });
  for (const b of backends)
    await admin.patch(QuantumBackendKind, undefined, b.metadata.name, "merge", {
      metadata: { labels: { poked: "1" } },
    });
  await waitUntil("a reconcile per object", async () => (await reconciles()) >= r0 + jobs.length + backends.length, {
    timeoutMs: 30_000,
  });
  // On failure the message names what was written.
  expect(await operator.apiWrites(), operator.writeLog.slice(logged).join("\n")).toBe(before);
});
