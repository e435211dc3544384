import { resolve } from "node:path";
import type { KubeClient } from "../runtime/client.ts";
import { findCondition } from "../runtime/conditions.ts";
import { LeaseKind, NODE_LEASE_NAMESPACE, NodeKind } from "../runtime/kinds.ts";
import type { Condition, KubeObject } from "../runtime/objects.ts";
import { waitUntil } from "../runtime/wait.ts";

/** The Stages kwok runs (hack/kwok/stages.yaml explains each label below). */
export const KWOK_STAGES = resolve(import.meta.dirname, "../../hack/kwok/stages.yaml");

/** Nodes carrying this label (value "fake") are kwok's: it renews their Leases and reports their status. */
const KWOK_NODE_LABEL = "kwok.x-k8s.io/node";
const HEARTBEAT_LABEL = "kwok.nextgen.itechsmart.io/heartbeat";
const READY_LABEL = "kwok.nextgen.itechsmart.io/ready";
/** On a Pod (template): `crashloop` or `oomkill`, the fault kwok plays on its containers. */
export const POD_FAULT_LABEL = "kwok.nextgen.itechsmart.io/fault";

/** kwok manages the fake Nodes whose kubelet has not been stopped; a stopped one drops out and its Lease goes stale. */
export const KWOK_NODE_SELECTOR = `${KWOK_NODE_LABEL}=fake,${HEARTBEAT_LABEL}!=stopped`;

export interface NodeOptions {
  labels?: Record<string, string>;
  /** Reported as both allocatable and capacity; kwok keeps what a Node was created with. */
  allocatable?: Record<string, string>;
}

type Node = KubeObject & { status?: { conditions?: Condition[] } };
type Lease = KubeObject & { spec?: { renewTime?: string } };

/**
 * Nodes simulated by KWOK on the project's control plane, and the faults a test injects into them: a kubelet that
 * dies (no more Lease renewals) or reports NotReady. kwok itself runs with the control plane (ControlPlane.start).
 */
export class KwokNodes {
  private readonly client: KubeClient;
  private readonly labels: Record<string, string>;

  /** `labels` go on every Node registered, e.g. to find them again. */
  constructor(client: KubeClient, labels: Record<string, string> = {}) {
    this.client = client;
    this.labels = labels;
  }

  /** Creates a Node for kwok; with `wait`, resolves once kwok reports it Ready and holds its Lease. */
  async register(name: string, opts: NodeOptions & { wait?: boolean } = {}): Promise<void> {
    const resources = { cpu: "4", memory: "16Gi", pods: "110", ...opts.allocatable };
    await this.client.create(NodeKind, {
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name,
        labels: { "kubernetes.io/hostname": name, ...this.labels, ...opts.labels, [KWOK_NODE_LABEL]: "fake" },
      },
      status: { allocatable: resources, capacity: resources },
    } as KubeObject);
    if (opts.wait ?? true) await this.waitReady(name, true);
  }

  /** The kubelet dies: kwok lets go of the Node, so its Lease is no longer renewed and its status no longer reported. */
  async stopHeartbeat(name: string): Promise<void> {
    await this.label(name, HEARTBEAT_LABEL, "stopped");
  }

  /** The kubelet comes back: resolves once kwok has renewed the Lease again and reports the Node Ready. */
  async resumeHeartbeat(name: string): Promise<void> {
    const lastRenewal = await this.renewTime(name);
    await this.label(name, HEARTBEAT_LABEL, null);
    await this.waitReady(name, true);
    await waitUntil(
      `kwok to renew Node ${name}'s Lease again`,
      async () => (await this.renewTime(name)) !== lastRenewal,
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  }

  /**
   * The kubelet keeps heartbeating but reports the Node NotReady (false), or Ready again (true); with `wait`,
   * resolves once kwok has reported it.
   */
  async setReady(name: string, ready: boolean, opts: { wait?: boolean } = {}): Promise<void> {
    await this.label(name, READY_LABEL, ready ? null : "false");
    if (opts.wait ?? true) await this.waitReady(name, ready);
  }

  private async renewTime(name: string): Promise<string | undefined> {
    return (await this.client.get<Lease>(LeaseKind, NODE_LEASE_NAMESPACE, name))?.spec?.renewTime;
  }

  private async label(name: string, key: string, value: string | null): Promise<void> {
    await this.client.patch(NodeKind, undefined, name, "merge", { metadata: { labels: { [key]: value } } });
  }

  private async waitReady(name: string, ready: boolean): Promise<void> {
    const want = ready ? "True" : "False";
    await waitUntil(
      `kwok to report Node ${name} Ready=${want}${ready ? " and renew its Lease" : ""}`,
      async () => {
        const node = await this.client.get<Node>(NodeKind, undefined, name);
        if (findCondition(node?.status?.conditions, "Ready")?.status !== want) return false;
        return !ready || (await this.client.get(LeaseKind, NODE_LEASE_NAMESPACE, name)) !== undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  }
}
