import { installPrerequisites } from "../src/runtime/install.ts";
import type { ControlPlane } from "../src/controlplane/control-plane.ts";
import { KwokNodes } from "../src/controlplane/kwok.ts";
import { type CarbonBudget, CarbonBudgetKind } from "../src/crds/carbonbudget.ts";
import { KubeClient } from "../src/runtime/client.ts";
import { findCondition } from "../src/runtime/conditions.ts";
import { DeploymentKind, NamespaceKind, PodKind } from "../src/runtime/kinds.ts";
import type { Condition, KubeObject } from "../src/runtime/objects.ts";
import { waitUntil } from "../src/runtime/wait.ts";
import { startCarbonAwareSdk } from "../test/fakes/carbon-aware-sdk-server.ts";
import { inParallel, startImageOperator } from "./util.ts";

const BUDGETS = Number(process.env.BENCH_BUDGETS ?? 500);
const PODS_PER_BUDGET = Number(process.env.BENCH_PODS_PER_BUDGET ?? 10);
const REFRESH_MS = 120_000;
const NODES = Math.ceil((BUDGETS * PODS_PER_BUDGET) / 200) + 2;
const POOL = "bench.nextgen.itechsmart.io/pool";
const LABEL = "bench.nextgen.itechsmart.io/carbon";
const REGION = "benchregion";

type Pod = KubeObject & { status?: { conditions?: Condition[] } };

const deployment = (ns: string) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "app", namespace: ns },
  spec: {
    replicas: PODS_PER_BUDGET,
    selector: { matchLabels: { app: "app" } },
    template: {
      metadata: { labels: { app: "app", [LABEL]: "pod" } },
      spec: {
        nodeSelector: { [POOL]: "bench" },
        terminationGracePeriodSeconds: 0,
        containers: [{ name: "app", image: "registry.example/app:1", resources: { requests: { cpu: "10m" } } }],
      },
    },
  },
});

const budget = (ns: string, sdkUrl: string): CarbonBudget =>
  ({
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "CarbonBudget",
    metadata: { name: "budget", namespace: ns, labels: { [LABEL]: "budget" } },
    spec: {
      budgetGrams: 1_000_000,
      period: { type: "Daily" },
      mode: "Enforce",
      energy: { estimate: { wattsPerCore: "12" } },
      intensity: { carbonAwareSDK: { url: sdkUrl, location: REGION }, refreshInterval: `${REFRESH_MS / 1000}s` },
    },
  }) as unknown as CarbonBudget;

/**
 * CarbonBudget at scale: BUDGETS namespaces of PODS_PER_BUDGET KWOK pods, a budget each, estimating energy from the
 * pods' requests and reading one Carbon Aware SDK (the local stand-in) every 2 minutes. Measured: API writes and
 * operator CPU in the quiet stretch between two refreshes (none expected), and for one refresh that brings a new
 * intensity (a status write per budget expected; requests to the SDK, shared by the budgets).
 */
export async function benchCarbon(cp: ControlPlane): Promise<Record<string, string | number>> {
  const admin = KubeClient.load(cp.adminKubeconfig, "bench-client");
  await installPrerequisites(admin, process.cwd());
  const sdk = await startCarbonAwareSdk();
  sdk.setIntensity(REGION, 300, new Date(Date.now() - 60_000));
  const kwok = new KwokNodes(admin);
  await inParallel(NODES, 8, (i) =>
    kwok.register(`bench-${i}`, { labels: { [POOL]: "bench" }, allocatable: { pods: "250" }, wait: false }),
  );
  const namespaces = Array.from({ length: BUDGETS }, (_, i) => `carbon-${i}`);
  await inParallel(BUDGETS, 8, async (i) => {
    const ns = namespaces[i] as string;
    await admin.create(NamespaceKind, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    await admin.create(DeploymentKind, deployment(ns));
  });
  const podsStart = performance.now();
  await waitUntil(
    "every pod Ready",
    async () =>
      (await admin.list<Pod>(PodKind, { labelSelector: `${LABEL}=pod` })).items.filter(
        (p) => findCondition(p.status?.conditions, "Ready")?.status === "True",
      ).length ===
      BUDGETS * PODS_PER_BUDGET,
    { timeoutMs: 60 * 60_000, intervalMs: 5000 },
  );
  const podsSeconds = (performance.now() - podsStart) / 1000;

  const operator = await startImageOperator(cp, { readyTimeoutMs: 300_000 });
  await inParallel(BUDGETS, 8, (i) => admin.create(CarbonBudgetKind, budget(namespaces[i] as string, sdk.url)));
  const budgets = async () =>
    (await admin.list<CarbonBudget>(CarbonBudgetKind, { labelSelector: `${LABEL}=budget` })).items;
  const accounted = (b: CarbonBudget) => Date.parse(b.status?.accountedUntil ?? "1970-01-01T00:00:00Z");
  const first = await waitUntil(
    "every budget Ready over its pods",
    async () => {
      const all = await budgets();
      return (
        all.filter(
          (b) => findCondition(b.status?.conditions, "Ready")?.status === "True" && b.status?.pods === PODS_PER_BUDGET,
        ).length === BUDGETS && all
      );
    },
    { timeoutMs: 600_000, intervalMs: 1000 },
  );
  await waitUntil("the work queue to drain", async () => (await operator.metric("workqueue_depth")) === 0, {
    timeoutMs: 300_000,
  });
  const firstRound = first.map(accounted);
  const earliest = Math.min(...firstRound);
  const latest = Math.max(...firstRound);

  // The quiet stretch: from after the last budget's refresh to before the first one's next.
  const quietFrom = Math.max(Date.now(), latest + 2_000);
  const quietTo = earliest + REFRESH_MS - 2_000;
  await new Promise((r) => setTimeout(r, quietFrom - Date.now())); // to the start of the measured window
  const quietWrites = await operator.apiWrites();
  const quietCpu = await operator.metric("process_cpu_seconds_total");
  await new Promise((r) => setTimeout(r, quietTo - Date.now())); // the measured window itself
  const quietMinutes = (quietTo - quietFrom) / 60_000;
  const writesPerQuietMinute = ((await operator.apiWrites()) - quietWrites) / quietMinutes;
  const cpuPerQuietMinute = ((await operator.metric("process_cpu_seconds_total")) - quietCpu) / quietMinutes;

  // One refresh with a new intensity.
  sdk.setIntensity(REGION, 350, new Date());
  const requestsBefore = sdk.requests.length;
  const writesBefore = await operator.apiWrites();
  const cpuBefore = await operator.metric("process_cpu_seconds_total");
  const roundStart = performance.now();
  await waitUntil(
    "every budget to account at the new intensity",
    async () => (await budgets()).every((b) => b.status?.intensity?.gramsPerKWh === 350),
    { timeoutMs: REFRESH_MS * 3, intervalMs: 1000 },
  );
  await waitUntil("the work queue to drain", async () => (await operator.metric("workqueue_depth")) === 0, {
    timeoutMs: 300_000,
  });
  const roundSeconds = (performance.now() - roundStart) / 1000;
  const roundWrites = (await operator.apiWrites()) - writesBefore;
  const roundCpu = (await operator.metric("process_cpu_seconds_total")) - cpuBefore;
  const sdkRequests = sdk.requests.length - requestsBefore;
  const rss = operator.rssMb("VmRSS");
  await operator.stop();
  await sdk.close();
  await admin.close();

  return {
    [`${BUDGETS} namespaces × ${PODS_PER_BUDGET} KWOK pods Ready (s)`]: podsSeconds.toFixed(1),
    [`${BUDGETS} budgets, between refreshes: API writes per minute (over ${quietMinutes.toFixed(1)} min)`]:
      writesPerQuietMinute.toFixed(1),
    "operator CPU per quiet minute (s)": cpuPerQuietMinute.toFixed(2),
    "one refresh with a new intensity: API writes": roundWrites,
    "one refresh: operator CPU (s) / requests to the Carbon Aware SDK": `${roundCpu.toFixed(2)} / ${sdkRequests}`,
    "one refresh round, from just before its first budget to the last showing the new value (s)":
      roundSeconds.toFixed(1),
    "operator RSS (MB)": rss.toFixed(0),
  };
}
