import { installPrerequisites } from "../src/runtime/install.ts";
import type { ControlPlane } from "../src/controlplane/control-plane.ts";
import { KwokNodes, POD_FAULT_LABEL } from "../src/controlplane/kwok.ts";
import { type RemediationPolicy, RemediationPolicyKind } from "../src/crds/remediationpolicy.ts";
import { KubeClient } from "../src/runtime/client.ts";
import { findCondition } from "../src/runtime/conditions.ts";
import { DeploymentKind, NamespaceKind, PodKind } from "../src/runtime/kinds.ts";
import type { Condition, KubeObject } from "../src/runtime/objects.ts";
import { waitUntil } from "../src/runtime/wait.ts";
import { inParallel, startImageOperator } from "./util.ts";

const POLICIES = Number(process.env.BENCH_POLICIES ?? 100);
const PODS_PER_WORKLOAD = Number(process.env.BENCH_PODS_PER_WORKLOAD ?? 50);
const STORM_PODS = Number(process.env.BENCH_STORM_PODS ?? 200);
const NODES = Math.ceil((POLICIES * PODS_PER_WORKLOAD + STORM_PODS) / 200) + 2;
const POOL = "bench.nextgen.itechsmart.io/pool";

type Pod = KubeObject & { status?: { conditions?: Condition[]; containerStatuses?: Array<{ restartCount: number }> } };

const deployment = (ns: string, name: string, replicas: number, podLabels: Record<string, string> = {}) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name, namespace: ns },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name, ...podLabels } },
      spec: {
        nodeSelector: { [POOL]: "bench" },
        terminationGracePeriodSeconds: 0,
        containers: [{ name: "app", image: "registry.example/app:1" }],
      },
    },
  },
});

const policy = (ns: string, name: string, safety: Record<string, unknown>): RemediationPolicy =>
  ({
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "RemediationPolicy",
    metadata: { name, namespace: ns },
    spec: {
      targetRef: { apiVersion: "apps/v1", kind: "Deployment", name },
      triggers: [{ name: "crashloop", crashLoop: { restarts: 1, window: "10m" } }],
      actions: [{ restartPod: {}, timeout: "10m" }],
      safety: { maxConcurrent: 5, cooldown: "0s", maxActionsPerHour: 50, minAvailable: 0, ...safety },
    },
  }) as RemediationPolicy;

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
};

/**
 * RemediationPolicy on KWOK pods run by the real controller-manager and scheduler: POLICIES workloads of
 * PODS_PER_WORKLOAD pods with nothing wrong (API writes per idle minute, RSS, CPU); one pod of each then
 * crash-loops (detection to action: the restart that crosses the threshold to the pod's deletion, as a watch sees
 * both); and a storm of STORM_PODS crash-looping pods under maxConcurrent 5 (the most in flight, counted from a
 * watch: originals deleted less replacements that have been Ready).
 */
export async function benchRemediation(cp: ControlPlane): Promise<Record<string, string | number>> {
  const admin = KubeClient.load(cp.adminKubeconfig, "bench-client");
  await installPrerequisites(admin, process.cwd());
  const kwok = new KwokNodes(admin);
  await inParallel(NODES, 8, (i) =>
    kwok.register(`bench-${i}`, { labels: { [POOL]: "bench" }, allocatable: { pods: "250" }, wait: false }),
  );
  const ns = "bench";
  await admin.create(NamespaceKind, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
  const names = Array.from({ length: POLICIES }, (_, i) => `app-${i}`);
  await inParallel(names.length, 8, (i) =>
    admin.create(DeploymentKind, deployment(ns, names[i] as string, PODS_PER_WORKLOAD)),
  );
  const readyPods = async () =>
    (await admin.list<Pod>(PodKind, { namespace: ns })).items.filter(
      (p) => findCondition(p.status?.conditions, "Ready")?.status === "True",
    ).length;
  const podsStart = performance.now();
  await waitUntil("every pod Ready", async () => (await readyPods()) === POLICIES * PODS_PER_WORKLOAD, {
    timeoutMs: 60 * 60_000,
    intervalMs: 5000,
  });
  const podsSeconds = (performance.now() - podsStart) / 1000;

  const operator = await startImageOperator(cp, { readyTimeoutMs: 300_000 });
  await inParallel(names.length, 8, (i) => admin.create(RemediationPolicyKind, policy(ns, names[i] as string, {})));
  await waitUntil(
    "every policy Ready over its pods",
    async () =>
      (await admin.list<RemediationPolicy>(RemediationPolicyKind, { namespace: ns })).items.filter(
        (p) =>
          findCondition(p.status?.conditions, "Ready")?.status === "True" && p.status?.triggers?.[0]?.state === "Clear",
      ).length === POLICIES,
    { timeoutMs: 600_000, intervalMs: 1000 },
  );
  await waitUntil("the work queue to drain", async () => (await operator.metric("workqueue_depth")) === 0, {
    timeoutMs: 300_000,
  });

  // Idle: a minute with nothing wrong.
  const idleWrites = await operator.apiWrites();
  const idleCpu = await operator.metric("process_cpu_seconds_total");
  const idleStart = performance.now();
  await new Promise((r) => setTimeout(r, 60_000)); // the measurement window itself
  const idleMinutes = (performance.now() - idleStart) / 60_000;
  const writesPerIdleMinute = ((await operator.apiWrites()) - idleWrites) / idleMinutes;
  const cpuPerIdleMinute = ((await operator.metric("process_cpu_seconds_total")) - idleCpu) / idleMinutes;
  const idleRss = operator.rssMb("VmRSS");

  // Detection to action: one pod of each workload crash-loops.
  const crossed = new Map<string, number>();
  const deleted = new Map<string, number>();
  const list = await admin.list<Pod>(PodKind, { namespace: ns });
  const stop = new AbortController();
  const watching = admin
    .watch<Pod>(
      PodKind,
      { namespace: ns, resourceVersion: list.metadata.resourceVersion, timeoutSeconds: 3600 },
      ({ type, object: p }) => {
        const uid = p.metadata.uid as string;
        if (!p.metadata.labels?.[POD_FAULT_LABEL]) return;
        const restarts = p.status?.containerStatuses?.[0]?.restartCount ?? 0;
        if (restarts >= 1 && !crossed.has(uid)) crossed.set(uid, performance.now());
        if ((type === "DELETED" || p.metadata.deletionTimestamp) && !deleted.has(uid))
          deleted.set(uid, performance.now());
      },
      stop.signal,
    )
    .catch((e) => {
      if (!stop.signal.aborted) throw e;
    });
  const sick = names.map((app) => list.items.find((p) => p.metadata.labels?.app === app) as Pod);
  await inParallel(sick.length, 8, (i) =>
    admin.patch(PodKind, ns, (sick[i] as Pod).metadata.name, "merge", {
      metadata: { labels: { [POD_FAULT_LABEL]: "crashloop" } },
    }),
  );
  await waitUntil("every sick pod deleted", () => sick.every((p) => deleted.has(p.metadata.uid as string)), {
    timeoutMs: 600_000,
    intervalMs: 200,
  });
  stop.abort();
  await watching;
  const latencies = sick.map(
    (p) => (deleted.get(p.metadata.uid as string) as number) - (crossed.get(p.metadata.uid as string) as number),
  );

  // The storm.
  const storm = "storm";
  await admin.create(DeploymentKind, deployment(ns, storm, STORM_PODS, { [POD_FAULT_LABEL]: "crashloop" }));
  const stormPods = async () =>
    (await admin.list<Pod>(PodKind, { namespace: ns, labelSelector: `app=${storm}` })).items;
  await waitUntil(
    "every storm pod crash-looping",
    async () => {
      const pods = await stormPods();
      return (
        pods.length === STORM_PODS && pods.every((p) => (p.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1)
      );
    },
    { timeoutMs: 600_000, intervalMs: 1000 },
  );
  const stormList = await admin.list<Pod>(PodKind, { namespace: ns, labelSelector: `app=${storm}` });
  const original = new Set(stormList.items.map((p) => p.metadata.uid as string));
  const deleting = new Set<string>();
  const everReady = new Set<string>();
  let most = 0;
  const stopStorm = new AbortController();
  const stormWatch = admin
    .watch<Pod>(
      PodKind,
      {
        namespace: ns,
        labelSelector: `app=${storm}`,
        resourceVersion: stormList.metadata.resourceVersion,
        timeoutSeconds: 3600,
      },
      ({ type, object: p }) => {
        const uid = p.metadata.uid as string;
        if (original.has(uid) && (type === "DELETED" || p.metadata.deletionTimestamp)) deleting.add(uid);
        if (!original.has(uid) && findCondition(p.status?.conditions, "Ready")?.status === "True") everReady.add(uid);
        most = Math.max(most, deleting.size - everReady.size);
      },
      stopStorm.signal,
    )
    .catch((e) => {
      if (!stopStorm.signal.aborted) throw e;
    });
  const stormStart = performance.now();
  await admin.create(RemediationPolicyKind, policy(ns, storm, { maxConcurrent: 5 }));
  // maxActionsPerHour (at most 50) may end the storm's work for the hour before every pod is restarted.
  const stormPolicy = () => admin.get<RemediationPolicy>(RemediationPolicyKind, ns, storm);
  await waitUntil(
    "every storm pod restarted, or the hour's actions spent",
    async () =>
      deleting.size === STORM_PODS || (await stormPolicy())?.status?.incidents?.[0]?.heldBy === "MaxActionsPerHour",
    { timeoutMs: 1_800_000, intervalMs: 500 },
  );
  const stormSeconds = (performance.now() - stormStart) / 1000;
  stopStorm.abort();
  await stormWatch;
  const stormActions = (await stormPolicy())?.status?.recentActions?.length ?? 0;
  const rssPeak = operator.rssMb("VmHWM");
  await operator.stop();
  await admin.close();

  return {
    [`${POLICIES} workloads × ${PODS_PER_WORKLOAD} KWOK pods Ready (s)`]: podsSeconds.toFixed(1),
    [`${POLICIES} policies, nothing wrong: API writes per idle minute`]: writesPerIdleMinute.toFixed(1),
    "operator CPU per idle minute (s)": cpuPerIdleMinute.toFixed(2),
    "operator RSS, idle (MB)": idleRss.toFixed(0),
    [`detection to action over ${latencies.length} crash loops: p50 (ms)`]: percentile(latencies, 50).toFixed(0),
    "detection to action: p99 (ms)": percentile(latencies, 99).toFixed(0),
    [`storm of ${STORM_PODS} crash-looping pods, maxConcurrent 5: most in flight`]: most,
    "storm: pods restarted / actions / until done or the hour's 50 actions spent (s)": `${deleting.size} / ${stormActions} / ${stormSeconds.toFixed(1)}`,
    "operator RSS peak (MB)": rssPeak.toFixed(0),
  };
}
