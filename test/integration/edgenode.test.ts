import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { beforeAll, describe, expect, test } from "vitest";
import { KwokNodes } from "../../src/controlplane/kwok.ts";
import { type EdgeNode, type EdgeNodeSpec, EdgeNodeKind } from "../../src/crds/edgenode.ts";
import { EventKind, NodeKind } from "../../src/runtime/kinds.ts";
import type { KubeObject } from "../../src/runtime/objects.ts";
import { cluster, deleteAfterFile, startOperator, waitUntil } from "./harness.ts";

type Node = KubeObject & { spec?: { taints?: Array<{ key: string; effect: string; value?: string }> } };

const { admin, operatorKubeconfig } = cluster();
const SITE = "test.nextgen.itechsmart.io/site";
const FILE = { "test.nextgen.itechsmart.io/file": "edgenode" };
const nodes = new KwokNodes(admin, FILE);

let operator: Awaited<ReturnType<typeof startOperator>>;
beforeAll(async () => {
  operator = await startOperator(operatorKubeconfig);
  deleteAfterFile(admin, FILE, [EdgeNodeKind, NodeKind]);
});

const site = (name: string, spec: Partial<EdgeNodeSpec>): EdgeNode => ({
  apiVersion: "nextgen.itechsmart.io/v1alpha1",
  kind: "EdgeNode",
  metadata: { name, labels: FILE },
  spec: { tier: "ContinentalHub", nodeSelector: { matchLabels: { [SITE]: name } }, ...spec } as EdgeNodeSpec,
});
const get = (name: string) => admin.get<EdgeNode>(EdgeNodeKind, undefined, name);
const node = (name: string) => admin.get<Node>(NodeKind, undefined, name);
const waitSite = (name: string, what: string, pred: (s: EdgeNode) => boolean, timeoutMs = 30_000) =>
  waitUntil(
    `EdgeNode ${name}: ${what}`,
    async () => {
      const s = await get(name);
      return s && pred(s) ? s : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );
const condition = (s: EdgeNode, type: string) => s.status?.conditions?.find((c) => c.type === type);

/** A loopback HTTP endpoint standing for a site's probe target, which tests stop, restart and slow down. */
class SiteEndpoint {
  delayMs = 0;
  private server: Server | undefined;
  port = 0;
  async start(): Promise<void> {
    this.server = createServer((_req, res) => void setTimeout(() => res.end("ok"), this.delayMs));
    await new Promise<void>((r) => this.server?.listen(this.port, "127.0.0.1", () => r()));
    this.port = (this.server.address() as AddressInfo).port;
  }
  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}/healthz`;
  }
}

describe("EdgeNode", () => {
  test("membership by selector and by name; labels and taints pushed without touching others', and removed when a Node leaves", async () => {
    await nodes.register("m-sel-1", { labels: { [SITE]: "hub-m", team: "a" } });
    await nodes.register("m-sel-2", {
      labels: { [SITE]: "hub-m", "topology.kubernetes.io/region": "their-region" },
    });
    await nodes.register("m-named", { labels: {} });
    await nodes.register("m-other", { labels: { [SITE]: "elsewhere" } });
    await admin.create(
      EdgeNodeKind,
      site("hub-m", {
        region: "eu",
        nodeNames: ["m-named"],
        nodeLabels: { "example.com/pool": "edge" },
        nodeTaints: [{ key: "example.com/edge-only", value: "true", effect: "NoSchedule" }],
      }),
    );
    const s = await waitSite(
      "hub-m",
      "three members Online",
      (x) => x.status?.phase === "Online" && x.status?.nodes?.total === 3,
    );
    expect(s.status?.members?.map((m) => m.name)).toEqual(["m-named", "m-sel-1", "m-sel-2"]);
    expect(s.status?.allocatable).toEqual({ cpu: "12", memory: "48Gi", pods: "330" });
    expect(condition(s, "Ready")).toMatchObject({ status: "True", reason: "Online" });

    const n1 = await waitUntil(
      "labels on m-sel-1",
      async () => {
        const n = await node("m-sel-1");
        return n?.metadata.labels?.["nextgen.itechsmart.io/edge-node"] ? n : undefined;
      },
      { timeoutMs: 10_000 },
    );
    expect(n1.metadata.labels).toMatchObject({
      team: "a",
      "nextgen.itechsmart.io/edge-node": "hub-m",
      "nextgen.itechsmart.io/tier": "ContinentalHub",
      "topology.kubernetes.io/region": "eu",
      "example.com/pool": "edge",
    });
    expect(n1.spec?.taints).toContainEqual({ key: "example.com/edge-only", value: "true", effect: "NoSchedule" });
    expect((await node("m-sel-2"))?.metadata.labels?.["topology.kubernetes.io/region"]).toBe("their-region");
    expect((await node("m-other"))?.metadata.labels?.["nextgen.itechsmart.io/edge-node"]).toBeUndefined();

    // m-sel-1 leaves: the site's labels and taint go, the team label stays.
    await admin.patch(NodeKind, undefined, "m-sel-1", "merge", { metadata: { labels: { [SITE]: null } } });
    await waitSite("hub-m", "two members", (x) => x.status?.nodes?.total === 2);
    const left = await waitUntil(
      "m-sel-1 released",
      async () => {
        const n = await node("m-sel-1");
        return n &&
          !n.metadata.labels?.["nextgen.itechsmart.io/edge-node"] &&
          !n.spec?.taints?.some((t) => t.key === "example.com/edge-only")
          ? n
          : undefined;
      },
      { timeoutMs: 10_000 },
    );
    expect(left.metadata.labels).toMatchObject({ team: "a" });
    expect(left.metadata.labels?.["example.com/pool"]).toBeUndefined();
    expect(left.metadata.labels?.["topology.kubernetes.io/region"]).toBeUndefined();
  });

  test("a converged site with members costs no API writes when reconciled again", async () => {
    await nodes.register("q-1", { labels: { [SITE]: "hub-q" } });
    await nodes.register("q-2", { labels: { [SITE]: "hub-q" } });
    await admin.create(
      EdgeNodeKind,
      site("hub-q", {
        nodeLabels: { "example.com/q": "1" },
        nodeTaints: [{ key: "example.com/q", effect: "NoSchedule" }],
      }),
    );
    await waitSite("hub-q", "Online", (x) => x.status?.phase === "Online" && x.status?.nodes?.total === 2);
    await waitUntil(
      "labels and taints on q-2",
      async () => (await node("q-2"))?.spec?.taints?.some((t) => t.key === "example.com/q"),
      { timeoutMs: 10_000 },
    );
    // Converged includes the phase event, which the operator records in the background after the status write.
    await waitUntil(
      "hub-q's Online event",
      async () =>
        (
          await admin.list<KubeObject & { reason: string; regarding: { name: string } }>(EventKind, {
            namespace: "default",
          })
        ).items.some((e) => e.regarding.name === "hub-q" && e.reason === "Online"),
      { timeoutMs: 10_000 },
    );
    const reconciles = () => operator.metric("controller_runtime_reconcile_total", { controller: "edgenode" });
    const before = await operator.apiWrites();
    const logged = operator.writeLog.length;
    const r0 = await reconciles();
    // An unrelated label on a member and on the site: each reconciles hub-q, which then has nothing to change.
    await admin.patch(NodeKind, undefined, "q-1", "merge", { metadata: { labels: { unrelated: "x" } } });
    await admin.patch(EdgeNodeKind, undefined, "hub-q", "merge", { metadata: { labels: { unrelated: "x" } } });
    await waitUntil("two more reconciles", async () => (await reconciles()) >= r0 + 2, { timeoutMs: 10_000 });
    // On failure the message names what was written.
    expect(await operator.apiWrites(), operator.writeLog.slice(logged).join("\n")).toBe(before);
  });

  test("lease renewals drive Online -> Degraded -> Offline -> Online, with the offline taint and events", async () => {
    await nodes.register("h-1", { labels: { [SITE]: "hub-h" } });
    await nodes.register("h-2", { labels: { [SITE]: "hub-h" } });
    await admin.create(EdgeNodeKind, site("hub-h", { offline: { gracePeriod: "10s", action: "Taint" } }));
    await waitSite("hub-h", "Online", (x) => x.status?.phase === "Online");
    await nodes.stopHeartbeat("h-1");
    const degraded = await waitSite("hub-h", "Degraded", (x) => x.status?.phase === "Degraded");
    expect(degraded.status?.members?.find((m) => m.name === "h-1")).toMatchObject({
      ready: false,
      reason: "HeartbeatStale",
    });
    await nodes.stopHeartbeat("h-2");
    await waitSite("hub-h", "Offline", (x) => x.status?.phase === "Offline");
    await waitUntil(
      "the offline taint on members",
      async () => (await node("h-1"))?.spec?.taints?.some((t) => t.key === "nextgen.itechsmart.io/offline"),
      { timeoutMs: 10_000 },
    );
    await nodes.resumeHeartbeat("h-1");
    await nodes.resumeHeartbeat("h-2");
    await waitSite("hub-h", "Online again", (x) => x.status?.phase === "Online");
    await waitUntil(
      "the offline taint removed",
      async () => !(await node("h-1"))?.spec?.taints?.some((t) => t.key === "nextgen.itechsmart.io/offline"),
      { timeoutMs: 10_000 },
    );
    const s = await get("hub-h");
    await waitUntil(
      "phase events",
      async () => {
        const events = await admin.list<KubeObject & { reason: string; regarding: { uid: string } }>(EventKind, {
          namespace: "default",
        });
        const reasons = events.items.filter((e) => e.regarding.uid === s?.metadata.uid).map((e) => e.reason);
        return ["Degraded", "Offline", "Online"].every((r) => reasons.includes(r));
      },
      { timeoutMs: 10_000 },
    );
  }, 90_000);

  test("a failing probe with fresh leases is Partitioned, not Offline; latency target met and missed", async () => {
    const endpoint = new SiteEndpoint();
    await endpoint.start();
    await nodes.register("p-1", { labels: { [SITE]: "hub-p" } });
    await admin.create(
      EdgeNodeKind,
      site("hub-p", {
        latencyTargetMs: 50,
        probe: { url: endpoint.url, intervalSeconds: 1, timeoutSeconds: 1 },
        offline: { gracePeriod: "10s", action: "None" },
      }),
    );
    const online = await waitSite(
      "hub-p",
      "reachable and within target",
      (x) => condition(x, "LatencyTargetMet")?.status === "True" && x.status?.phase === "Online",
    );
    expect(condition(online, "Reachable")).toMatchObject({ status: "True" });

    endpoint.delayMs = 150;
    const slow = await waitSite(
      "hub-p",
      "target missed by the slowed endpoint",
      (x) => condition(x, "LatencyTargetMet")?.status === "False" && (x.status?.latency?.p95Ms ?? 0) >= 150,
    );
    expect(condition(slow, "LatencyTargetMet")?.message).toMatch(/exceeds the 50 ms target/);

    await endpoint.stop();
    const partitioned = await waitSite("hub-p", "Partitioned", (x) => x.status?.phase === "Partitioned");
    expect(condition(partitioned, "Reachable")).toMatchObject({ status: "False", reason: "ProbeFailed" });
    await nodes.stopHeartbeat("p-1");
    await waitSite("hub-p", "Offline once heartbeats stop too", (x) => x.status?.phase === "Offline");

    endpoint.delayMs = 0;
    await endpoint.start();
    await nodes.resumeHeartbeat("p-1");
    await waitSite(
      "hub-p",
      "Online again",
      (x) => x.status?.phase === "Online" && condition(x, "Reachable")?.status === "True",
    );
    await endpoint.stop();
  }, 90_000);

  test("hierarchy: wrong tier order, cycles and missing parents are reported; roll-ups cover three levels", async () => {
    await admin.create(EdgeNodeKind, site("r-hub", {}));
    await admin.create(EdgeNodeKind, site("r-region", { tier: "RegionalCluster", parentRef: { name: "r-hub" } }));
    await admin.create(EdgeNodeKind, site("r-edge", { tier: "LocalEdge", parentRef: { name: "r-region" } }));
    await admin.create(EdgeNodeKind, site("r-skip", { tier: "LocalEdge", parentRef: { name: "r-hub" } }));
    await admin.create(EdgeNodeKind, site("r-cycle-a", { tier: "RegionalCluster", parentRef: { name: "r-cycle-b" } }));
    await admin.create(EdgeNodeKind, site("r-cycle-b", { tier: "RegionalCluster", parentRef: { name: "r-cycle-a" } }));
    await admin.create(EdgeNodeKind, site("r-orphan", { tier: "LocalEdge", parentRef: { name: "r-later" } }));
    for (const [name, reason] of [
      ["r-skip", "WrongTierOrder"],
      ["r-cycle-a", "Cycle"],
      ["r-orphan", "ParentNotFound"],
    ]) {
      const s = await waitSite(
        name as string,
        reason as string,
        (x) => condition(x, "HierarchyValid")?.reason === reason,
      );
      expect(condition(s, "Ready")).toMatchObject({ status: "False", reason: "HierarchyInvalid" });
    }
    // Sites in a cycle count only themselves: summing each other's totals would grow them with every write.
    expect((await get("r-cycle-a"))?.status?.rollup).toEqual({ sites: 1, nodes: 0, readyNodes: 0, gpus: 0 });
    const cycleVersion = (await get("r-cycle-b"))?.metadata.resourceVersion;
    await admin.create(EdgeNodeKind, site("r-later", { tier: "RegionalCluster", parentRef: { name: "r-hub" } }));
    await waitSite(
      "r-orphan",
      "valid once its parent exists",
      (x) => condition(x, "HierarchyValid")?.status === "True",
    );

    await nodes.register("r-hub-1", { labels: { [SITE]: "r-hub" } });
    await nodes.register("r-region-1", { labels: { [SITE]: "r-region" } });
    await nodes.register("r-edge-1", { labels: { [SITE]: "r-edge" }, allocatable: { "nvidia.com/gpu": "2" } });
    await nodes.register("r-edge-2", { labels: { [SITE]: "r-edge" } });
    const hub = await waitSite(
      "r-hub",
      "the roll-up of three levels",
      (x) => x.status?.rollup?.nodes === 4 && x.status.rollup.readyNodes === 4,
    );
    expect(hub.status?.rollup).toEqual({ sites: 6, nodes: 4, readyNodes: 4, gpus: 2 }); // r-orphan sits under r-later
    expect(hub.status?.children).toEqual(["r-later", "r-region", "r-skip"]);
    expect((await get("r-region"))?.status?.rollup).toEqual({ sites: 2, nodes: 3, readyNodes: 3, gpus: 2 });

    // A change at the bottom reaches the top.
    await nodes.setReady("r-edge-1", false);
    const after = await waitSite("r-hub", "one node fewer Ready", (x) => x.status?.rollup?.readyNodes === 3);
    expect(after.status?.rollup?.gpus).toBe(0);
    expect((await get("r-cycle-b"))?.metadata.resourceVersion).toBe(cycleVersion); // written no more
  });

  test("deleting a site releases its Nodes", async () => {
    await nodes.register("d-1", { labels: { [SITE]: "hub-d", keep: "me" } });
    await admin.create(
      EdgeNodeKind,
      site("hub-d", {
        nodeLabels: { "example.com/x": "y" },
        nodeTaints: [{ key: "example.com/d", effect: "NoSchedule" }],
      }),
    );
    await waitUntil(
      "d-1 labelled",
      async () => (await node("d-1"))?.metadata.labels?.["nextgen.itechsmart.io/edge-node"] === "hub-d",
      { timeoutMs: 30_000 },
    );
    await admin.delete(EdgeNodeKind, undefined, "hub-d");
    await waitUntil("hub-d gone", async () => (await get("hub-d")) === undefined, { timeoutMs: 30_000 });
    const n = await node("d-1");
    expect(n?.metadata.labels?.["nextgen.itechsmart.io/edge-node"]).toBeUndefined();
    expect(n?.metadata.labels?.["example.com/x"]).toBeUndefined();
    expect(n?.metadata.labels?.keep).toBe("me");
    expect(n?.spec?.taints?.some((t) => t.key === "example.com/d")).toBeFalsy();
  });
});
