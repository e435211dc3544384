import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { KwokNodes, POD_FAULT_LABEL } from "../../src/controlplane/kwok.ts";
import { Prometheus } from "../../src/controlplane/monitoring.ts";
import { type CarbonBudget, CarbonBudgetKind, type CarbonBudgetSpec } from "../../src/crds/carbonbudget.ts";
import { type EdgeNode, EdgeNodeKind } from "../../src/crds/edgenode.ts";
import { type QuantumBackend, QuantumBackendKind, type QuantumBackendSpec } from "../../src/crds/quantumbackend.ts";
import { type QuantumJob, QuantumJobKind, type QuantumJobSpec } from "../../src/crds/quantumjob.ts";
import { type RemediationPolicy, RemediationPolicyKind } from "../../src/crds/remediationpolicy.ts";
import { SHARED_INTENSITY_LABEL } from "../../src/controllers/carbonbudget/intensity.ts";
import { findCondition } from "../../src/runtime/conditions.ts";
import {
  ConfigMapKind,
  DeploymentKind,
  EventKind,
  HorizontalPodAutoscalerKind,
  NodeKind,
  PodKind,
  SecretKind,
} from "../../src/runtime/kinds.ts";
import { HPA_BEFORE_ANNOTATION } from "../../src/controllers/carbonbudget/holds.ts";
import { BELL } from "../fixtures/circuits.ts";
import {
  BOUND_BY_ANNOTATION,
  MAX_REPLICAS_ANNOTATION,
  REPLICAS_BEFORE_ANNOTATION,
} from "../../src/controllers/shared/replicas.ts";
import { type FakeCarbonAwareSdk, startCarbonAwareSdk } from "../fakes/carbon-aware-sdk-server.ts";
import { DCGM_SCRAPE_TARGET_LABELS, DcgmExporter, KeplerExporter, type PodPower } from "../fakes/energy-exporters.ts";
import { type FakeElectricityMaps, startElectricityMaps } from "../../src/controlplane/electricity-maps.ts";
import {
  type KubeObject,
  cluster,
  createNamespace,
  deleteAfterFile,
  deploymentHpa,
  kwokDeployment,
  startOperator,
  waitUntil,
} from "./harness.ts";
import { remediationPolicy, waitForPolicy } from "./remediation-helpers.ts";

// CarbonBudget against the real programs: a Prometheus scraping stand-ins for Kepler and dcgm-exporter (written
// from their current source, scraped as their charts' ServiceMonitors scrape them), local servers speaking the Carbon Aware SDK WebAPI and Electricity Maps' v3 API (the real services cannot
// be reached from here), KWOK pods and Deployments, the QuantumJob controller and a RemediationPolicy.

type Deployment = KubeObject & { spec: { replicas: number } };
type Event = KubeObject & { reason: string; note?: string; regarding: { name: string }; series?: { count: number } };

const { admin, operatorKubeconfig } = cluster();
const FILE = { "test.nextgen.itechsmart.io/file": "carbon" };
const POOL = "test.nextgen.itechsmart.io/pool";
const SITE_KEY = "test.nextgen.itechsmart.io/carbon-site";
const nodes = new KwokNodes(admin, FILE);
const suffix = Math.random().toString(36).slice(2, 7);

let operator: Awaited<ReturnType<typeof startOperator>>;
let prometheus: Prometheus;
let kepler: KeplerExporter;
/** Scraped as dcgm-exporter's chart does (honorLabels: false): the pod's labels are stored as exported_*. */
let dcgm: DcgmExporter;
/** Scraped with honorLabels: true (a chart value some set): the pod's labels are stored as namespace/pod. */
let dcgmHonoured: DcgmExporter;
let sdk: FakeCarbonAwareSdk;
let maps: FakeElectricityMaps;
const MAPS_TOKEN = `em-${Math.random().toString(36).slice(2)}-secret-token`;

beforeAll(async () => {
  sdk = await startCarbonAwareSdk();
  maps = await startElectricityMaps({ token: MAPS_TOKEN });
  kepler = await KeplerExporter.start(`cb-1-${suffix}`);
  dcgm = await DcgmExporter.start(`cb-1-${suffix}`);
  dcgmHonoured = await DcgmExporter.start(`cb-2-${suffix}`);
  // The target labels the Prometheus Operator attaches to each exporter's pod.
  const keplerTarget = {
    namespace: "kepler",
    service: "kepler",
    pod: "kepler-5mz8c",
    container: "kepler",
    endpoint: "http",
  };
  prometheus = await Prometheus.start(
    {
      scrapeJobs: {
        kepler: { targets: [kepler.address], labels: keplerTarget },
        "dcgm-exporter": { targets: [dcgm.address], labels: DCGM_SCRAPE_TARGET_LABELS },
        "dcgm-exporter-honoured": {
          targets: [dcgmHonoured.address],
          labels: { ...DCGM_SCRAPE_TARGET_LABELS, pod: "nvidia-dcgm-exporter-q8w4n" },
          honorLabels: true,
        },
      },
    },
    (line) => process.stderr.write(`[monitoring] ${line}\n`),
  );
  operator = await startOperator(operatorKubeconfig);
  deleteAfterFile(admin, FILE, [
    CarbonBudgetKind,
    RemediationPolicyKind,
    QuantumJobKind,
    QuantumBackendKind,
    EdgeNodeKind,
    HorizontalPodAutoscalerKind,
    DeploymentKind,
    PodKind,
    ConfigMapKind,
    NodeKind,
  ]);
  for (const i of [1, 2])
    await nodes.register(`cb-${i}-${suffix}`, { labels: { [POOL]: "carbon" }, allocatable: { "nvidia.com/gpu": "4" } });
});
afterAll(async () => {
  await prometheus?.stop();
  await sdk?.close();
  await maps?.close();
  await kepler?.close();
  await dcgm?.close();
  await dcgmHonoured?.close();
});

const budget = (ns: string, name: string, spec: Record<string, unknown>) =>
  admin.create<CarbonBudget>(CarbonBudgetKind, {
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "CarbonBudget",
    metadata: { name, namespace: ns, labels: FILE },
    spec: {
      budgetGrams: 1_000_000,
      period: { type: "Daily" },
      ...spec,
      intensity: { refreshInterval: "5s", ...(spec.intensity as object) },
    } as unknown as CarbonBudgetSpec,
  });
const getBudget = (ns: string, name: string) => admin.get<CarbonBudget>(CarbonBudgetKind, ns, name);
const waitBudget = (ns: string, name: string, what: string, pred: (b: CarbonBudget) => boolean, timeoutMs = 60_000) =>
  waitUntil(
    `CarbonBudget ${name}: ${what}`,
    async () => {
      const b = await getBudget(ns, name);
      return b && pred(b) ? b : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
const condition = (b: CarbonBudget | undefined, type: string) => findCondition(b?.status?.conditions, type);
const accountedAt = (b: CarbonBudget) => Date.parse(b.status?.accountedUntil ?? "1970-01-01T00:00:00Z");
const replicas = async (ns: string, name: string) =>
  (await admin.get<Deployment>(DeploymentKind, ns, name))?.spec.replicas;
const waitReplicas = (ns: string, name: string, n: number) =>
  waitUntil(`${name} at ${n} replicas`, async () => (await replicas(ns, name)) === n, { timeoutMs: 60_000 });
const eventsOf = async (ns: string, name: string) =>
  (await admin.list<Event>(EventKind, { namespace: ns })).items.filter((e) => e.regarding.name === name);

/** A KWOK Deployment whose pods each request a tenth of a core (and a GPU when `gpus` is set). */
async function deployment(
  ns: string,
  name: string,
  count: number,
  podLabels: Record<string, string> = {},
  gpus?: number,
) {
  const d = kwokDeployment({
    namespace: ns,
    name,
    replicas: count,
    nodeSelector: { [POOL]: "carbon" },
    labels: FILE,
    podLabels,
  });
  (d.spec.template.spec.containers[0] as Record<string, unknown>).resources = {
    requests: { cpu: "100m" },
    ...(gpus && { limits: { "nvidia.com/gpu": String(gpus) } }),
  };
  await admin.create(DeploymentKind, d);
}

type Pod = KubeObject & { status?: { phase?: string } };
/** The Running pod of a one-replica Deployment, as an exporter identifies it. */
async function runningPod(ns: string, app: string): Promise<Pick<PodPower, "namespace" | "name" | "uid">> {
  const pod = await waitUntil(
    `${app}'s pod Running`,
    async () =>
      (await admin.list<Pod>(PodKind, { namespace: ns, labelSelector: `app=${app}` })).items.find(
        (p) => p.status?.phase === "Running",
      ),
    { timeoutMs: 60_000 },
  );
  return { namespace: ns, name: pod.metadata.name as string, uid: pod.metadata.uid as string };
}

describe("accounting", () => {
  test("grams are the integral of power x PUE x intensity: a step change mid-window counts from when it happened, and a kill -9 loses and doubles nothing", async () => {
    const ns = await createNamespace(admin, "cb");
    const region = `westeurope-${suffix}`;
    await deployment(ns, "cpu", 1);
    await deployment(ns, "gpu", 1, {}, 1);
    const cpuPod = await runningPod(ns, "cpu");
    const gpuPod = await runningPod(ns, "gpu");
    // Started before the budget: the counters are well under way when its accounting begins. `core` lies inside
    // `package` and must not be added; the GPU's energy counter is read, not its power gauge (which reads 999 W).
    const start = Date.now() - 60_000;
    kepler.draw({ ...cpuPod, package: 40, core: 25, dram: 10 }, start);
    kepler.draw({ ...gpuPod, package: 20, core: 12, dram: 0 }, start);
    dcgm.powerGaugeOverride = 999;
    dcgm.draw({ ...gpuPod, package: 0, core: 0, dram: 0, gpu: 200 }, start);
    const watts = 40 + 10 + 20 + 200;
    sdk.setIntensity(region, 100, new Date(start));
    // Prometheus has scraped the exporters a few times, storing the GPU's pod as dcgm-exporter's chart has it.
    await waitUntil(
      "Prometheus to scrape the exporters",
      async () =>
        (await prometheus.query(`DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{exported_pod="${gpuPod.name}"}`)).length > 0 &&
        (await prometheus.query(`kepler_pod_cpu_joules_total{pod_name="${cpuPod.name}"}`)).length > 0,
      { timeoutMs: 30_000 },
    );
    const stored = await prometheus.query(`DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{exported_pod="${gpuPod.name}"}`);
    expect(stored[0]?.labels).toMatchObject({ namespace: "gpu-operator", exported_namespace: ns });

    const created = await budget(ns, "lab", {
      energy: { kepler: { prometheus: { url: prometheus.url } }, pue: "1.5" },
      intensity: { carbonAwareSDK: { url: sdk.url, location: region } },
    });
    const from = Date.parse(created.metadata.creationTimestamp as string);
    await waitBudget(ns, "lab", "10 s accounted", (b) => accountedAt(b) >= from + 10_000);
    const change = Date.now();
    sdk.setIntensity(region, 500, new Date(change));
    const before = await waitBudget(
      ns,
      "lab",
      "accounted 10 s past the change",
      (b) => accountedAt(b) >= change + 10_000,
    );

    const expected = (until: number) =>
      ((watts * (change - from) * 100 + watts * (until - change) * 500) / 1000 / 3.6e6) * 1.5;
    const until = accountedAt(before);
    expect(Math.abs((before.status?.consumedGrams ?? 0) / expected(until) - 1)).toBeLessThan(0.02);
    // Energy is the pods' draw, before PUE.
    expect(Math.abs((before.status?.energyKWh ?? 0) / ((watts * (until - from)) / 3.6e9) - 1)).toBeLessThan(0.02);
    // Far from what the average intensity over the window would give at the end: the step is where it happened.
    expect(before.status?.intensity).toMatchObject({ gramsPerKWh: 500, source: "carbonAwareSDK", region });
    expect(before.status?.intensity?.observedAt).toBe(new Date(change).toISOString());
    expect(condition(before, "Ready")).toMatchObject({ status: "True", reason: "Accounting" });
    expect(condition(before, "IntensityDataStale")?.status).toBe("False");
    expect(condition(before, "BudgetExceeded")?.status).toBe("False");
    expect(before.status?.projectedGrams).toBeGreaterThan(before.status?.consumedGrams ?? 0);
    expect(await operator.metric("nextgen_carbon_consumed_grams", { namespace: ns, budget: "lab" })).toBeGreaterThan(0);
    expect(await operator.metric("nextgen_carbon_intensity_grams_per_kwh", { region, source: "carbonAwareSDK" })).toBe(
      500,
    );

    // Killed mid-window: the next operator accounts from accountedUntil, so the total still matches by hand.
    await operator.stop("SIGKILL");
    const killedAt = Date.now();
    operator = await startOperator(operatorKubeconfig);
    const after = await waitBudget(ns, "lab", "accounted past the restart", (b) => accountedAt(b) >= killedAt + 5_000);
    expect(Math.abs((after.status?.consumedGrams ?? 0) / expected(accountedAt(after)) - 1)).toBeLessThan(0.02);
  });

  test("between refreshes a budget writes nothing", async () => {
    const ns = await createNamespace(admin, "cb");
    await budget(ns, "quiet", {
      energy: { estimate: { wattsPerCore: "10" } },
      intensity: { static: { gramsPerKWh: 200 }, refreshInterval: "1h" },
    });
    await waitBudget(ns, "quiet", "accounted", (b) => condition(b, "Ready")?.status === "True");
    // The API server shows the status write before the test has read the operator's log line of it: counting from
    // before that line is read would count the write that made it Ready.
    const statusPath = `/namespaces/${ns}/carbonbudgets/quiet/status`;
    await waitUntil(
      "the operator's log of its status write",
      async () => operator.writeLog.some((w) => w.includes(statusPath)),
      { timeoutMs: 10_000 },
    );
    // The other tests' budgets refresh every 5 s: only this namespace's writes count.
    const logged = operator.writeLog.length;
    const reconciles = () =>
      operator.logs.split(`"reconciled","logger":"manager","controller":"carbonbudget","key":"${ns}/quiet"`).length;
    const r0 = reconciles();
    await admin.patch(CarbonBudgetKind, ns, "quiet", "merge", { metadata: { labels: { poked: "1" } } });
    await waitUntil("one more reconcile of the budget", async () => reconciles() > r0, { timeoutMs: 10_000 });
    expect(operator.writeLog.slice(logged).filter((w) => w.includes(`/namespaces/${ns}/`))).toEqual([]);
  });
  test("an exporter that is not there is NoData with the query, never zero; DCGM's own labels and its power gauge are read when that is what Prometheus has", async () => {
    const ns = await createNamespace(admin, "cb");
    await deployment(ns, "gpu", 1, {}, 1);
    const pod = await runningPod(ns, "gpu");
    await budget(ns, "unmetered", {
      energy: { kepler: { prometheus: { url: prometheus.url } } },
      intensity: { static: { gramsPerKWh: 300 } },
    });
    const noKepler = await waitBudget(ns, "unmetered", "NoData", (b) => condition(b, "Ready")?.reason === "NoData");
    expect(condition(noKepler, "Ready")?.status).toBe("False");
    expect(condition(noKepler, "Ready")?.message).toContain(`kepler_pod_cpu_joules_total{pod_namespace="${ns}"`);
    expect(noKepler.status?.consumedGrams ?? 0).toBe(0);

    // Kepler meters the pod's CPU, but nothing its GPU: still NoData, now naming the GPU's query.
    kepler.draw({ ...pod, package: 30, core: 20, dram: 5 });
    const noGpu = await waitBudget(ns, "unmetered", "NoData for the GPU", (b) =>
      Boolean(condition(b, "Ready")?.message?.includes("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")),
    );
    expect(condition(noGpu, "Ready")).toMatchObject({ status: "False", reason: "NoData" });
    expect(noGpu.status?.consumedGrams ?? 0).toBe(0);

    // A dcgm-exporter without the energy counter, scraped with honorLabels: true: its power gauge, by namespace/pod.
    dcgmHonoured.energyCounter = false;
    dcgmHonoured.draw({ ...pod, package: 0, core: 0, dram: 0, gpu: 100 });
    const first = await waitBudget(
      ns,
      "unmetered",
      "accounting",
      (b) => condition(b, "Ready")?.reason === "Accounting",
    );
    const later = await waitBudget(
      ns,
      "unmetered",
      "20 s more accounted",
      (b) => accountedAt(b) >= accountedAt(first) + 20_000,
    );
    const kWh = (later.status?.energyKWh ?? 0) - (first.status?.energyKWh ?? 0);
    const watts = 30 + 5 + 100;
    expect(Math.abs(kWh / ((watts * (accountedAt(later) - accountedAt(first))) / 3.6e9) - 1)).toBeLessThan(0.05);
  });
});

describe("intensity sources fail safe", () => {
  test("a source that stops answering: the last value, then 400 g/kWh, each said in IntensityDataStale; back when it answers", async () => {
    const ns = await createNamespace(admin, "cb");
    const region = `northeurope-${suffix}`;
    sdk.setIntensity(region, 120, new Date());
    await budget(ns, "flaky", {
      energy: { estimate: { wattsPerCore: "10" } },
      intensity: { carbonAwareSDK: { url: sdk.url, location: region }, staleAfter: "20s" },
    });
    await waitBudget(ns, "flaky", "fresh", (b) => b.status?.intensity?.gramsPerKWh === 120);
    sdk.setDown(true, "503");
    try {
      const last = await waitBudget(ns, "flaky", "stale", (b) => condition(b, "IntensityDataStale")?.status === "True");
      expect(condition(last, "IntensityDataStale")).toMatchObject({ reason: "SourceFailing" });
      expect(condition(last, "IntensityDataStale")?.message).toMatch(/using the last value, 120 g\/kWh/);
      expect(last.status?.intensity).toMatchObject({ gramsPerKWh: 120, source: "carbonAwareSDK" });
      const fallback = await waitBudget(
        ns,
        "flaky",
        "on the default",
        (b) => b.status?.intensity?.source === "default",
      );
      expect(fallback.status?.intensity?.gramsPerKWh).toBe(400);
      expect(condition(fallback, "IntensityDataStale")?.message).toMatch(/using the default of 400 g\/kWh/);
    } finally {
      sdk.setDown(false);
    }
    sdk.setIntensity(region, 90, new Date());
    const back = await waitBudget(ns, "flaky", "fresh again", (b) => b.status?.intensity?.gramsPerKWh === 90);
    expect(condition(back, "IntensityDataStale")?.status).toBe("False");
  });

  test("Electricity Maps with a token from a Secret: a refused token is reported without the token; the right one works", async () => {
    const ns = await createNamespace(admin, "cb");
    const zone = `FR-${suffix}`;
    maps.setIntensity(zone, 55);
    const wrong = `${MAPS_TOKEN}-wrong`;
    await admin.create(SecretKind, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "maps", namespace: ns },
      stringData: { token: wrong },
    } as KubeObject);
    await budget(ns, "maps", {
      energy: { estimate: { wattsPerCore: "10" } },
      intensity: { electricityMaps: { url: maps.url, zone, tokenSecretRef: { name: "maps" } } },
    });
    const refused = await waitBudget(
      ns,
      "maps",
      "refused",
      (b) => condition(b, "IntensityDataStale")?.status === "True",
    );
    expect(condition(refused, "IntensityDataStale")?.message).toMatch(/401|refused|rejected/i);
    await admin.patch(SecretKind, ns, "maps", "merge", { stringData: { token: MAPS_TOKEN } });
    const ok = await waitBudget(ns, "maps", "55 g/kWh", (b) => b.status?.intensity?.gramsPerKWh === 55);
    expect(ok.status?.intensity).toMatchObject({ source: "electricityMaps", region: zone });
    expect(maps.requests.some((r) => r.headers["auth-token"] === MAPS_TOKEN)).toBe(true);
    // Neither token appears in status, events or the operator's log.
    const text = JSON.stringify(ok) + JSON.stringify(await eventsOf(ns, "maps")) + operator.logs;
    expect(text).not.toContain(MAPS_TOKEN);
    expect(text).not.toContain(wrong);
  });

  test("kubernetes-carbon-intensity-exporter's ConfigMap: the step in force now; a corrupt one is reported, not guessed at", async () => {
    const ns = await createNamespace(admin, "cb");
    const now = Date.now();
    // The exporter's format: the SDK's forecastData, every 5 minutes, base64 in binaryData.data.
    const points = [410, 230, 190].map((value, i) => ({
      location: "PJM_ROANOKE",
      timestamp: new Date(now - 300_000 + i * 300_000).toISOString(),
      duration: 5,
      value,
    }));
    await admin.create(ConfigMapKind, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "carbon-intensity", namespace: ns, labels: FILE },
      data: { lastHeartbeatTime: new Date(now).toISOString(), message: "", numOfRecords: "3" },
      binaryData: { data: Buffer.from(JSON.stringify(points)).toString("base64") },
    } as KubeObject);
    await budget(ns, "exported", {
      energy: { estimate: { wattsPerCore: "10" } },
      intensity: { configMap: { name: "carbon-intensity", namespace: ns } },
    });
    const read = await waitBudget(ns, "exported", "230 g/kWh", (b) => b.status?.intensity?.gramsPerKWh === 230);
    expect(read.status?.intensity).toMatchObject({ source: "configMap", region: "PJM_ROANOKE" });
    expect(condition(read, "Ready")?.status).toBe("True");

    await admin.patch(ConfigMapKind, ns, "carbon-intensity", "merge", { data: { numOfRecords: "288" } });
    const corrupt = await waitBudget(ns, "exported", "reported", (b) => condition(b, "Ready")?.status === "False");
    expect(condition(corrupt, "Ready")).toMatchObject({ reason: "ConfigMapInvalid" });
    expect(condition(corrupt, "Ready")?.message).toMatch(/numOfRecords says 288, binaryData.data holds 3 points/);

    // A tenant of another namespace pointing at it learns nothing of it (missing or present read the same) until
    // the namespace's owner shares it.
    const tenant = await createNamespace(admin, "cb-tenant");
    await admin.patch(ConfigMapKind, ns, "carbon-intensity", "merge", { data: { numOfRecords: "3" } });
    await budget(tenant, "borrowed", {
      energy: { estimate: { wattsPerCore: "10" } },
      intensity: { configMap: { name: "carbon-intensity", namespace: ns } },
    });
    await budget(tenant, "absent", {
      energy: { estimate: { wattsPerCore: "10" } },
      intensity: { configMap: { name: "no-such-configmap", namespace: ns } },
    });
    const refused = await waitBudget(tenant, "borrowed", "refused", (b) => condition(b, "Ready")?.status === "False");
    const absent = await waitBudget(tenant, "absent", "refused", (b) => condition(b, "Ready")?.status === "False");
    for (const b of [refused, absent]) expect(condition(b, "Ready")?.reason).toBe("ConfigMapNotShared");
    expect(refused.status?.intensity).toBeUndefined();
    await admin.patch(ConfigMapKind, ns, "carbon-intensity", "merge", {
      metadata: { labels: { [SHARED_INTENSITY_LABEL]: "shared" } },
    });
    const shared = await waitBudget(tenant, "borrowed", "230 g/kWh", (b) => b.status?.intensity?.gramsPerKWh === 230);
    expect(condition(shared, "Ready")?.status).toBe("True");
  });
});

describe("actions", () => {
  /** Budget "caps", enforcing these bands on Deployment web, the grid at 450 g/kWh (dirty) to begin with. */
  const capWeb = (ns: string, bands: Array<{ aboveGramsPerKWh: number; maxReplicas: number }>) =>
    budget(ns, "caps", {
      mode: "Enforce",
      energy: { estimate: { wattsPerCore: "10" } },
      intensity: { static: { gramsPerKWh: 450 } },
      actions: { capReplicas: [{ targetRef: { kind: "Deployment", name: "web" }, bands }] },
    });

  test("capReplicas holds a Deployment to its band while the grid is dirty, bounds a RemediationPolicy's scale-up, and gives back the exact count", async () => {
    const ns = await createNamespace(admin, "cb");
    await deployment(ns, "web", 4, { [POD_FAULT_LABEL]: "crashloop" });
    await capWeb(ns, [
      { aboveGramsPerKWh: 300, maxReplicas: 2 },
      { aboveGramsPerKWh: 200, maxReplicas: 3 },
    ]);
    await waitReplicas(ns, "web", 2);
    const capped = await waitBudget(ns, "caps", "held", (b) => (b.status?.held ?? []).length === 1);
    expect(capped.status?.held).toEqual([{ target: "Deployment/web", replicas: 4, setTo: 2, reason: "Capped" }]);
    const web = await admin.get<Deployment>(DeploymentKind, ns, "web");
    expect(web?.metadata.annotations?.[MAX_REPLICAS_ANNOTATION]).toBe("2");

    // The pods crash-loop; the policy's scale-up meets the cap and says so, and the count stays at the cap.
    await admin.create(
      RemediationPolicyKind,
      remediationPolicy(ns, "heal", FILE, {
        targetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "web" },
        triggers: [{ name: "crashloop", crashLoop: { restarts: 1, window: "2m" } }],
        actions: [{ scale: { by: 2, max: 6 }, timeout: "5m" }],
      }),
    );
    const held = await waitForPolicy(admin, ns, "heal", "bounded by the cap", (p: RemediationPolicy) =>
      (p.status?.incidents ?? []).some((i) => /CarbonBudget .*caps's cap of 2/.test(i.message ?? "")),
    );
    expect(held.status?.scaled ?? []).toEqual([]);
    expect(await replicas(ns, "web")).toBe(2);
    expect(
      (await eventsOf(ns, "heal")).some((e) => e.reason === "ScaleSkipped" && /CarbonBudget/.test(e.note ?? "")),
    ).toBe(true);
    await admin.delete(RemediationPolicyKind, ns, "heal");

    // A cleaner grid, into the next band: held at 3, still giving back 4 when it lifts.
    await admin.patch(CarbonBudgetKind, ns, "caps", "merge", { spec: { intensity: { static: { gramsPerKWh: 250 } } } });
    await waitReplicas(ns, "web", 3);
    const loosened = await waitBudget(ns, "caps", "held at 3", (b) => b.status?.held?.[0]?.setTo === 3);
    expect(loosened.status?.held).toEqual([{ target: "Deployment/web", replicas: 4, setTo: 3, reason: "Capped" }]);

    // A cleaner grid lifts the cap: back to exactly 4, the bound gone.
    await admin.patch(CarbonBudgetKind, ns, "caps", "merge", { spec: { intensity: { static: { gramsPerKWh: 100 } } } });
    await waitReplicas(ns, "web", 4);
    const lifted = await waitBudget(ns, "caps", "released", (b) => !b.status?.held);
    expect(lifted.status?.intensity?.gramsPerKWh).toBe(100);
    expect(
      (await admin.get<Deployment>(DeploymentKind, ns, "web"))?.metadata.annotations?.[MAX_REPLICAS_ANNOTATION],
    ).toBe(undefined);
  });

  test("a cap on a workload an HPA drives goes on the HPA: the real HPA controller holds the count still, and the HPA's bounds come back exactly", async () => {
    const ns = await createNamespace(admin, "cb-hpa");
    await deployment(ns, "web", 4);
    await admin.create(HorizontalPodAutoscalerKind, deploymentHpa(ns, "web", 3, 6, FILE));
    type Hpa = KubeObject & { spec: { minReplicas: number; maxReplicas: number } };
    const hpa = async () => (await admin.get<Hpa>(HorizontalPodAutoscalerKind, ns, "web"))?.spec;
    await capWeb(ns, [{ aboveGramsPerKWh: 300, maxReplicas: 2 }]);
    const capped = await waitBudget(ns, "caps", "held through the HPA", (b) => Boolean(b.status?.held?.[0]?.hpa));
    expect(capped.status?.held).toEqual([
      {
        target: "Deployment/web",
        replicas: 6,
        setTo: 2,
        reason: "Capped",
        hpa: { name: "web", minReplicas: 3, maxReplicas: 6 },
      },
    ]);
    expect(await hpa()).toMatchObject({ minReplicas: 2, maxReplicas: 2 });
    // The HPA controller brings the Deployment down itself; nothing then fights over the count.
    await waitReplicas(ns, "web", 2);
    const seen = new Set<number | undefined>();
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      seen.add(await replicas(ns, "web"));
      await new Promise((r) => setTimeout(r, 500));
    }
    expect([...seen]).toEqual([2]);

    await admin.patch(CarbonBudgetKind, ns, "caps", "merge", { spec: { intensity: { static: { gramsPerKWh: 100 } } } });
    await waitBudget(ns, "caps", "released", (b) => !b.status?.held);
    expect(await hpa()).toMatchObject({ minReplicas: 3, maxReplicas: 6 });
    const released = await admin.get<Hpa>(HorizontalPodAutoscalerKind, ns, "web");
    expect(released?.metadata.annotations?.[HPA_BEFORE_ANNOTATION]).toBeUndefined();
    await waitReplicas(ns, "web", 3);
  });

  test("a restore whose status write was lost (the operator killed after scaling back) is reported Restored, once", async () => {
    const ns = await createNamespace(admin, "cb-lost");
    await deployment(ns, "web", 4);
    await capWeb(ns, [{ aboveGramsPerKWh: 300, maxReplicas: 2 }]);
    await waitReplicas(ns, "web", 2);
    await waitBudget(ns, "caps", "held", (b) => (b.status?.held ?? []).length === 1);
    // What the restore does before its status write: the bound taken off and the count given back. The operator is
    // killed first, so the write that would clear status.held never comes.
    await operator.stop("SIGKILL");
    await admin.patch(DeploymentKind, ns, "web", "merge", {
      metadata: {
        annotations: {
          [MAX_REPLICAS_ANNOTATION]: null,
          [BOUND_BY_ANNOTATION]: null,
          [REPLICAS_BEFORE_ANNOTATION]: null,
        },
      },
      spec: { replicas: 4 },
    });
    await admin.patch(CarbonBudgetKind, ns, "caps", "merge", { spec: { intensity: { static: { gramsPerKWh: 100 } } } });
    operator = await startOperator(operatorKubeconfig);
    await waitBudget(ns, "caps", "released", (b) => !b.status?.held);
    const restored = await waitUntil(
      "a Restored event",
      async () => {
        const events = (await eventsOf(ns, "caps")).filter((e) => e.reason === "Restored" || e.reason === "Released");
        return events.length ? events : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(restored.map((e) => [e.reason, e.note, e.series?.count ?? 1])).toEqual([
      ["Restored", "Restored Deployment/web to 4 replicas.", 1],
    ]);
    expect(await replicas(ns, "web")).toBe(4);
  });

  test("onExhausted Suspend scales the namespace's workloads to zero once the budget is spent and restores each exactly; Advisory only reports", async () => {
    const enforced = await createNamespace(admin, "cb");
    const advisory = await createNamespace(admin, "cb");
    for (const ns of [enforced, advisory]) {
      await deployment(ns, "a", 3);
      await deployment(ns, "b", 2);
    }
    // 5 pods x 0.1 core x 10 kW a core at 1000 g/kWh: about 1.4 g a second against a budget of 2 g.
    const spec = (mode: string) => ({
      mode,
      budgetGrams: 2,
      energy: { estimate: { wattsPerCore: "10000", utilization: "1" } },
      intensity: { static: { gramsPerKWh: 1000 } },
      actions: { onExhausted: "Suspend" },
    });
    await waitUntil(
      "10 Running pods",
      async () =>
        (
          await Promise.all(
            [enforced, advisory].map((ns) =>
              admin.list<KubeObject & { status?: { phase?: string } }>(PodKind, { namespace: ns }),
            ),
          )
        )
          .flatMap((l) => l.items)
          .filter((p) => p.status?.phase === "Running").length === 10,
      { timeoutMs: 60_000 },
    );
    await budget(enforced, "spent", spec("Enforce"));
    await budget(advisory, "spent", spec("Advisory"));

    const suspended = await waitBudget(enforced, "spent", "suspended", (b) => (b.status?.held ?? []).length === 2);
    expect(condition(suspended, "BudgetExceeded")?.status).toBe("True");
    expect(suspended.status?.held).toEqual(
      expect.arrayContaining([
        { target: "Deployment/a", replicas: 3, setTo: 0, reason: "Suspended" },
        { target: "Deployment/b", replicas: 2, setTo: 0, reason: "Suspended" },
      ]),
    );
    await waitReplicas(enforced, "a", 0);
    await waitReplicas(enforced, "b", 0);

    const reported = await waitBudget(
      advisory,
      "spent",
      "exceeded",
      (b) => condition(b, "BudgetExceeded")?.status === "True",
    );
    expect(condition(reported, "BudgetExceeded")?.message).toMatch(/Advisory: nothing is held back/);
    expect(reported.status?.held).toBeUndefined();
    expect(reported.metadata.finalizers ?? []).toEqual([]);
    expect([await replicas(advisory, "a"), await replicas(advisory, "b")]).toEqual([3, 2]);

    // A bigger budget: each comes back to exactly what it had.
    await admin.patch(CarbonBudgetKind, enforced, "spent", "merge", { spec: { budgetGrams: 1_000_000 } });
    await waitReplicas(enforced, "a", 3);
    await waitReplicas(enforced, "b", 2);
    await waitBudget(
      enforced,
      "spent",
      "released",
      (b) => !b.status?.held && condition(b, "BudgetExceeded")?.status === "False",
    );
  });
});

describe("QuantumJobs", () => {
  const backend = (name: string, spec: Record<string, unknown>) =>
    admin.create<QuantumBackend>(QuantumBackendKind, {
      apiVersion: "nextgen.itechsmart.io/v1alpha1",
      kind: "QuantumBackend",
      metadata: { name: `${name}-${suffix}`, labels: FILE },
      spec: { type: "Simulator", execution: { mode: "Embedded" }, ...spec } as unknown as QuantumBackendSpec,
    });
  const qjob = (ns: string, name: string, spec: Partial<QuantumJobSpec>) =>
    admin.create<QuantumJob>(QuantumJobKind, {
      apiVersion: "nextgen.itechsmart.io/v1alpha1",
      kind: "QuantumJob",
      metadata: { name, namespace: ns, labels: FILE },
      spec: { circuit: { openqasm: BELL }, shots: 100, ...spec } as QuantumJobSpec,
    });
  const waitJob = (ns: string, name: string, what: string, pred: (j: QuantumJob) => boolean, timeoutMs = 60_000) =>
    waitUntil(
      `QuantumJob ${name}: ${what}`,
      async () => {
        const j = await admin.get<QuantumJob>(QuantumJobKind, ns, name);
        return j && pred(j) ? j : undefined;
      },
      { timeoutMs, intervalMs: 200 },
    );

  test("deferrable jobs start at the lowest forecast intensity in their window, never after notAfter; Advisory defers nothing", async () => {
    await backend("defer-sim", {});
    const ns = await createNamespace(admin, "cb");
    const calm = await createNamespace(admin, "cb");
    const region = `eastus-${suffix}`;
    const now = Date.now();
    sdk.setIntensity(region, 400, new Date(now));
    // 15-second steps: dirty now, cleanest from +30 s, dirty again from +45 s.
    const steps = [400, 350, 80, 300].map((g, i) => ({
      start: new Date(now + i * 15_000),
      minutes: 0.25,
      gramsPerKWh: g,
    }));
    sdk.setForecast(region, steps);
    const cleanest = now + 30_000;
    const spec = (mode: string) => ({
      mode,
      energy: { estimate: { wattsPerCore: "10" } },
      intensity: { carbonAwareSDK: { url: sdk.url, location: region } },
      actions: { deferQuantumJobs: true },
    });
    await budget(ns, "green", spec("Enforce"));
    await budget(calm, "green", spec("Advisory"));
    await waitBudget(ns, "green", "ready", (b) => condition(b, "Ready")?.status === "True");
    await waitBudget(calm, "green", "ready", (b) => condition(b, "Ready")?.status === "True");

    const inTenMinutes = new Date(now + 600_000).toISOString();
    await qjob(ns, "patient", { schedule: { deferrable: true, notAfter: inTenMinutes } });
    await qjob(ns, "hurried", { schedule: { deferrable: true, notAfter: new Date(now + 20_000).toISOString() } });
    await qjob(ns, "late", { schedule: { deferrable: true, notAfter: new Date(now - 1_000).toISOString() } });
    await qjob(calm, "advised", { schedule: { deferrable: true, notAfter: inTenMinutes } });

    const waiting = await waitJob(
      ns,
      "patient",
      "deferred",
      (j) => findCondition(j.status?.conditions, "Scheduled")?.reason === "Deferred",
    );
    expect(waiting.status?.phase).toBe("Pending");
    // metav1.Time keeps whole seconds.
    expect(waiting.status?.schedule?.deferredUntil).toBe(
      new Date(cleanest - (cleanest % 1000)).toISOString().replace(".000Z", "Z"),
    );
    expect(waiting.status?.schedule?.forecastGramsPerKWh).toBe(80);

    const late = await waitJob(ns, "late", "succeeded", (j) => j.status?.phase === "Succeeded");
    expect(late.status?.schedule?.startReason).toBe("Deadline");
    const advised = await waitJob(calm, "advised", "succeeded", (j) => j.status?.phase === "Succeeded");
    expect(advised.status?.schedule).toBeUndefined();
    expect(Date.parse(advised.status?.startTime as string)).toBeLessThan(cleanest);

    const hurried = await waitJob(ns, "hurried", "succeeded", (j) => j.status?.phase === "Succeeded");
    // Its window ends before the cleanest step: the lowest it can have is 350 g/kWh from +15 s, before its deadline.
    expect(hurried.status?.schedule).toMatchObject({ startReason: "LowestForecast", forecastGramsPerKWh: 350 });
    const hurriedStart = Date.parse(hurried.status?.startTime as string);
    expect(hurriedStart).toBeGreaterThanOrEqual(now + 15_000 - 1_000);
    expect(hurriedStart).toBeLessThanOrEqual(now + 20_000);

    const ran = await waitJob(ns, "patient", "succeeded", (j) => j.status?.phase === "Succeeded", 90_000);
    expect(ran.status?.schedule).toMatchObject({ startReason: "LowestForecast", forecastGramsPerKWh: 80 });
    // Started at the cleanest step (the start time is kept to the second).
    expect(Date.parse(ran.status?.startTime as string)).toBeGreaterThanOrEqual(cleanest - 1_000);
    expect(Date.parse(ran.status?.startTime as string)).toBeLessThan(cleanest + 15_000);
  });

  test("preferGreenSites: placement weighs each site's live intensity, not the backends' own figures", async () => {
    const ns = await createNamespace(admin, "cb");
    const [green, dirty] = [`green-${suffix}`, `dirty-${suffix}`];
    for (const site of [green, dirty]) {
      await admin.create<EdgeNode>(EdgeNodeKind, {
        apiVersion: "nextgen.itechsmart.io/v1alpha1",
        kind: "EdgeNode",
        metadata: { name: site, labels: FILE },
        spec: {
          tier: "ContinentalHub",
          carbonRegion: `region-${site}`,
          nodeSelector: { matchLabels: { [SITE_KEY]: site } },
        } as unknown as EdgeNode["spec"],
      });
      await nodes.register(`node-${site}`, { labels: { [SITE_KEY]: site } });
    }
    sdk.setIntensity(`region-${green}`, 30, new Date());
    sdk.setIntensity(`region-${dirty}`, 600, new Date());
    // The backends' own figures say the opposite: only the budget's live intensities make the green site win.
    await backend("at-green", { siteRef: { name: green }, carbon: { intensityGramsPerKWh: 700 } });
    await backend("at-dirty", { siteRef: { name: dirty }, carbon: { intensityGramsPerKWh: 20 } });
    const home = `home-${suffix}`;
    sdk.setIntensity(home, 250, new Date());
    await budget(ns, "sites", {
      mode: "Enforce",
      energy: { estimate: { wattsPerCore: "10" } },
      intensity: { carbonAwareSDK: { url: sdk.url, location: home } },
      actions: { preferGreenSites: true },
    });
    await waitBudget(ns, "sites", "ready", (b) => condition(b, "Ready")?.status === "True");
    await waitUntil(
      "both sites online",
      async () =>
        (
          await admin.list<EdgeNode>(EdgeNodeKind, { labelSelector: "test.nextgen.itechsmart.io/file=carbon" })
        ).items.filter((e) => [green, dirty].includes(e.metadata.name) && e.status?.phase === "Online").length === 2,
      { timeoutMs: 60_000 },
    );
    await qjob(ns, "green-first", {
      placement: { strategy: "Carbon" },
      backend: { selector: { matchLabels: FILE }, types: ["Simulator"], fallbackToSimulator: false } as never,
    });
    const j = await waitJob(ns, "green-first", "placed", (x) => !!x.status?.placement?.backend);
    expect(j.status?.placement?.backend).toBe(`at-green-${suffix}`);
  });
});
