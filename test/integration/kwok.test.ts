import { describe, expect, test } from "vitest";
import { KwokNodes, POD_FAULT_LABEL } from "../../src/controlplane/kwok.ts";
import { DeploymentKind, LeaseKind, NODE_LEASE_NAMESPACE, NodeKind, PodKind } from "../../src/runtime/kinds.ts";
import { findCondition } from "../../src/runtime/conditions.ts";
import type { Condition } from "../../src/runtime/objects.ts";
import { type KubeObject, cluster, createNamespace, deleteAfterFile, kwokDeployment, waitUntil } from "./harness.ts";

// The platform the workload features stand on: KWOK Nodes with kubelet Leases, Pods the real scheduler binds and
// KWOK runs, and the faults its Stages inject (hack/kwok/stages.yaml).

type ContainerStatus = {
  name: string;
  ready: boolean;
  restartCount: number;
  state?: { running?: object; waiting?: { reason: string }; terminated?: { reason: string; exitCode: number } };
  lastState?: { terminated?: { reason: string; exitCode: number } };
};
type Pod = KubeObject & {
  spec: { nodeName?: string };
  status?: { phase?: string; podIP?: string; conditions?: Condition[]; containerStatuses?: ContainerStatus[] };
};
type Node = KubeObject & {
  spec?: { taints?: Array<{ key: string; effect: string }> };
  status?: { conditions?: Condition[] };
};
type Lease = KubeObject & { spec: { renewTime?: string; holderIdentity?: string } };
type Deployment = KubeObject & { status?: { availableReplicas?: number } };

const { admin } = cluster();
const FILE = { "test.nextgen.itechsmart.io/file": "kwok" };
const nodes = new KwokNodes(admin, FILE);
// Crash-looping Pods would go on restarting for the rest of the suite.
deleteAfterFile(admin, FILE, [DeploymentKind, PodKind, NodeKind]);
const suffix = Math.random().toString(36).slice(2, 7);
const POOL = "test.nextgen.itechsmart.io/pool";

const deployment = (namespace: string, name: string, replicas: number, podLabels: Record<string, string> = {}) =>
  kwokDeployment({ namespace, name, replicas, nodeSelector: { [POOL]: suffix }, labels: FILE, podLabels });
const podsOf = async (ns: string, app: string) =>
  (await admin.list<Pod>(PodKind, { namespace: ns, labelSelector: `app=${app}` })).items;
const readyCondition = (o: { status?: { conditions?: Condition[] } } | undefined) =>
  findCondition(o?.status?.conditions, "Ready")?.status;
/** The first Pod of the app whose first container satisfies pred. */
const waitForPod = (ns: string, app: string, what: string, pred: (c: ContainerStatus) => boolean) =>
  waitUntil(
    what,
    async () =>
      (await podsOf(ns, app)).find((p) => p.status?.containerStatuses?.[0] && pred(p.status.containerStatuses[0])),
    { timeoutMs: 60_000, intervalMs: 250 },
  );

describe("KWOK fleets", () => {
  test("Nodes heartbeat through Leases; a Deployment's Pods are scheduled onto them and run Ready", async () => {
    for (const i of [1, 2]) await nodes.register(`kwok-${suffix}-${i}`, { labels: { [POOL]: suffix } });
    const lease = await admin.get<Lease>(LeaseKind, NODE_LEASE_NAMESPACE, `kwok-${suffix}-1`);
    const first = lease?.spec.renewTime as string;
    await waitUntil(
      "the Lease renewed",
      async () =>
        (await admin.get<Lease>(LeaseKind, NODE_LEASE_NAMESPACE, `kwok-${suffix}-1`))?.spec.renewTime !== first,
      { timeoutMs: 15_000, intervalMs: 250 },
    );

    const ns = await createNamespace(admin, "kwok");
    await admin.create(DeploymentKind, deployment(ns, "web", 3));
    await waitUntil(
      "3 of 3 replicas available",
      async () => (await admin.get<Deployment>(DeploymentKind, ns, "web"))?.status?.availableReplicas === 3,
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const pods = await podsOf(ns, "web");
    expect(pods).toHaveLength(3);
    for (const pod of pods) {
      expect(pod.spec.nodeName).toMatch(new RegExp(`^kwok-${suffix}-[12]$`));
      expect(pod.status?.phase).toBe("Running");
      expect(pod.status?.podIP).toMatch(/^10\.244\./);
      expect(pod.status?.containerStatuses?.[0]).toMatchObject({ name: "app", ready: true, restartCount: 0 });
    }
  });

  test("a crash-looping container restarts again and again, in CrashLoopBackOff between runs", async () => {
    const ns = await createNamespace(admin, "kwok");
    await admin.create(DeploymentKind, deployment(ns, "crashy", 1, { [POD_FAULT_LABEL]: "crashloop" }));
    const backingOff = await waitForPod(
      ns,
      "crashy",
      "a restart count of 2 and the container backing off",
      (c) => c.restartCount >= 2 && c.state?.waiting?.reason === "CrashLoopBackOff",
    );
    const container = backingOff?.status?.containerStatuses?.[0];
    expect(container?.ready).toBe(false);
    expect(container?.lastState?.terminated).toMatchObject({ reason: "Error", exitCode: 1 });
    expect(readyCondition(backingOff)).toBe("False");
  });

  test("an OOMKilled container is reported with reason OOMKilled and exit code 137, then restarted", async () => {
    const ns = await createNamespace(admin, "kwok");
    await admin.create(DeploymentKind, deployment(ns, "hungry", 1, { [POD_FAULT_LABEL]: "oomkill" }));
    const pod = await waitForPod(
      ns,
      "hungry",
      "an OOMKilled restart",
      (c) => c.restartCount >= 1 && c.lastState?.terminated?.reason === "OOMKilled",
    );
    expect(pod?.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode).toBe(137);
  });

  test("a Node whose kubelet stops heartbeating goes Unknown and unreachable; it recovers when it comes back", async () => {
    const name = `kwok-${suffix}-silent`;
    await nodes.register(name, { labels: { [POOL]: `${suffix}-silent` } });
    await nodes.stopHeartbeat(name);
    // The node-lifecycle controller's grace period (50 s by default, checked every 5 s) is the kubelet's to miss.
    const unknown = await waitUntil(
      "the node-lifecycle controller to mark the Node unreachable",
      async () => {
        const n = await admin.get<Node>(NodeKind, undefined, name);
        return readyCondition(n) === "Unknown" &&
          n?.spec?.taints?.some((t) => t.key === "node.kubernetes.io/unreachable")
          ? n
          : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    expect(unknown.status?.conditions?.find((c) => c.type === "Ready")?.reason).toBe("NodeStatusUnknown");
    // Nobody renewed the Lease meanwhile: its last renewal is about as old as that grace period.
    const renewed = (await admin.get<Lease>(LeaseKind, NODE_LEASE_NAMESPACE, name))?.spec.renewTime as string;
    expect(Date.now() - Date.parse(renewed)).toBeGreaterThan(40_000);

    await nodes.resumeHeartbeat(name);
    await waitUntil(
      "the unreachable taint lifted",
      async () =>
        !(await admin.get<Node>(NodeKind, undefined, name))?.spec?.taints?.some(
          (t) => t.key === "node.kubernetes.io/unreachable",
        ),
      { timeoutMs: 60_000, intervalMs: 500 },
    );
  }, 240_000);
});
