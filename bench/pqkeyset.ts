import { installPrerequisites } from "../src/runtime/install.ts";
import type { ControlPlane } from "../src/controlplane/control-plane.ts";
import { type PQKeySet, PQKeySetKind } from "../src/crds/pqkeyset.ts";
import { KubeClient } from "../src/runtime/client.ts";
import { ConfigMapKind, NamespaceKind, SecretKind } from "../src/runtime/kinds.ts";
import { Informer } from "../src/runtime/informer.ts";
import { Logger } from "../src/runtime/log.ts";
import { waitUntil } from "../src/runtime/wait.ts";
import { inParallel, startImageOperator } from "./util.ts";

const COUNT = Number(process.env.BENCH_PQKEYSETS ?? 1000);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const CONCURRENCY = 4; // the controller's MaxConcurrentReconciles

const keySet = (namespace: string, name: string): PQKeySet => ({
  apiVersion: "nextgen.itechsmart.io/v1alpha1",
  kind: "PQKeySet",
  metadata: { name, namespace },
  spec: { algorithm: "ML-KEM-768" } as PQKeySet["spec"],
});

const isReady = (k: PQKeySet) => k.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

/**
 * 1 000 ML-KEM-768 PQKeySets applied until all are Ready, next to the floor: a tight client making the same API
 * writes with no crypto (the same creates of the resources, one Secret and one ConfigMap create and one status
 * patch each, at the same concurrency). Then the operator's RSS, and its API writes per minute once converged.
 */
export async function benchPQKeySets(cp: ControlPlane): Promise<Record<string, string | number>> {
  const admin = KubeClient.load(cp.adminKubeconfig, "bench-client");
  await installPrerequisites(admin, process.cwd());
  for (const ns of ["bench-floor", "bench-operator"]) {
    await admin.create(NamespaceKind, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
  }

  const floorStart = performance.now();
  await inParallel(COUNT, CONCURRENCY, async (i) => {
    const name = `ks-${i}`;
    const ks = await admin.create(PQKeySetKind, keySet("bench-floor", name));
    const owner = [
      { apiVersion: ks.apiVersion, kind: ks.kind, name, uid: ks.metadata.uid as string, controller: true },
    ];
    const data = { "current.kid": Buffer.from("x".repeat(43)).toString("base64") };
    await admin.create(SecretKind, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name, namespace: "bench-floor", ownerReferences: owner },
      data,
    } as never);
    await admin.create(ConfigMapKind, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: `${name}-public`, namespace: "bench-floor", ownerReferences: owner },
      data: { "public.pem": "x" },
    } as never);
    await admin.patch(
      PQKeySetKind,
      "bench-floor",
      name,
      "merge",
      { status: { revision: 1 } },
      { subresource: "status" },
    );
  });
  const floorSeconds = (performance.now() - floorStart) / 1000;

  const operator = await startImageOperator(cp, {
    args: ["--namespace", "bench-operator"],
    nodeOptions: process.env.BENCH_OPERATOR_NODE_OPTIONS,
  });
  // The bench observes readiness through a watch, as a dashboard would: polling full lists of 1 000 objects
  // would load the API server far more than the operator does.
  const watcher = new Informer<PQKeySet>(admin, PQKeySetKind, {
    namespaces: ["bench-operator"],
    resyncMs: 0,
    log: new Logger("error"),
  });
  watcher.start();
  await watcher.waitForSync();
  const cpuBefore = await operator.metric("process_cpu_seconds_total");
  const start = performance.now();
  await inParallel(COUNT, CONCURRENCY, (i) => admin.create(PQKeySetKind, keySet("bench-operator", `ks-${i}`)));
  await waitUntil(`${COUNT} PQKeySets Ready`, () => watcher.list().filter(isReady).length === COUNT, {
    timeoutMs: 30 * 60_000,
    intervalMs: 50,
  });
  const operatorSeconds = (performance.now() - start) / 1000;
  const operatorCpu = (await operator.metric("process_cpu_seconds_total")) - cpuBefore;
  const rssAtReady = operator.rssMb("VmRSS");
  const mb = async (metric: string) => ((await operator.metric(metric)) / 2 ** 20).toFixed(0);
  const heap = `${await mb("nodejs_heap_size_used_bytes")} used / ${await mb("nodejs_heap_size_total_bytes")} total / ${await mb("nodejs_external_memory_bytes")} external`;

  // Let work that was queued behind the last Ready (events, a last status) land before counting.
  await waitUntil("the work queue to drain", async () => (await operator.metric("workqueue_depth")) === 0, {
    timeoutMs: 60_000,
  });
  const before = await operator.apiWrites();
  await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000)); // a benchmark's observation window, not a test's wait
  const idleWrites = (await operator.apiWrites()) - before;
  const rss = operator.rssMb("VmRSS");
  const peak = operator.rssMb("VmHWM");
  await operator.stop();
  await watcher.stop();
  await admin.close();
  return {
    "key sets": COUNT,
    "floor (tight client, no crypto) s": floorSeconds.toFixed(1),
    "operator apply-to-all-Ready s": operatorSeconds.toFixed(1),
    "ratio = operator / floor (target <= 1.2)": (operatorSeconds / floorSeconds).toFixed(2),
    "operator CPU s meanwhile (all threads)": operatorCpu.toFixed(1),
    "operator RSS when all became Ready MB": rssAtReady.toFixed(0),
    [`operator RSS ${IDLE_SECONDS} s after convergence MB (target < 250)`]: rss.toFixed(0),
    "operator peak RSS MB": peak.toFixed(0),
    "operator JS heap MB (main thread)": heap,
    [`API writes in the ${IDLE_SECONDS} s after convergence (target 0)`]: idleWrites,
  };
}
