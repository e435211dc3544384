import type { KubeClient } from "../runtime/client.ts";
import { LeaseKind, NODE_LEASE_NAMESPACE, NodeKind } from "../runtime/kinds.ts";
import type { KubeObject } from "../runtime/objects.ts";
import { metaTime, microTime } from "../runtime/time.ts";

export interface NodeOptions {
  labels?: Record<string, string>;
  allocatable?: Record<string, string>;
  ready?: boolean;
}

/**
 * Stands in for kubelets, which this control plane has none of: registers Node objects with a status and a
 * heartbeat Lease, and renews them as a kubelet does (Lease every 10 s, Ready condition's heartbeat), for the demo,
 * the tests and the benchmarks.
 */
export class SimulatedKubelets {
  private readonly client: KubeClient;
  private readonly ready = new Map<string, boolean>();
  private loop: { timer: NodeJS.Timeout | undefined; stopped: boolean } | undefined;

  constructor(client: KubeClient) {
    this.client = client;
  }

  async register(name: string, opts: NodeOptions = {}): Promise<void> {
    const ready = opts.ready ?? true;
    this.ready.set(name, ready);
    await this.client.create(NodeKind, {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name, labels: { "kubernetes.io/hostname": name, ...opts.labels } },
      status: {
        allocatable: { cpu: "4", memory: "16Gi", pods: "110", ...opts.allocatable },
        capacity: { cpu: "4", memory: "16Gi", pods: "110", ...opts.allocatable },
        conditions: [readyCondition(ready)],
      },
    } as KubeObject);
    await this.client.create(LeaseKind, {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name, namespace: NODE_LEASE_NAMESPACE },
      spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: microTime(new Date()) },
    } as KubeObject);
  }

  /** One heartbeat: the Lease renewed and the Ready condition re-reported (with a new status when given). */
  async heartbeat(name: string, ready = this.ready.get(name) ?? true): Promise<void> {
    const changed = this.ready.get(name) !== ready;
    this.ready.set(name, ready);
    await this.client.patch(LeaseKind, NODE_LEASE_NAMESPACE, name, "merge", {
      spec: { renewTime: microTime(new Date()) },
    });
    // A kubelet reports node status on change, or every 5 minutes; the Lease carries the heartbeat meanwhile.
    if (changed) {
      await this.client.patch(
        NodeKind,
        undefined,
        name,
        "merge",
        { status: { conditions: [readyCondition(ready)] } },
        { subresource: "status" },
      );
    }
  }

  /** Heartbeats every registered, not killed node every intervalMs until stopAll(); a second call changes nothing. */
  start(intervalMs = 10_000): void {
    if (this.loop) return;
    const loop = { timer: undefined as NodeJS.Timeout | undefined, stopped: false };
    this.loop = loop;
    const beat = async () => {
      // Best effort, as a kubelet's: a missed beat shows as a stale heartbeat, which is what tests look for.
      await Promise.all([...this.ready.keys()].map((n) => this.heartbeat(n).catch(() => undefined)));
      if (!loop.stopped) loop.timer = setTimeout(() => void beat(), intervalMs);
    };
    void beat();
  }

  /** Stops heartbeating one node, as a kubelet that died would; heartbeat() brings it back. */
  kill(name: string): void {
    this.ready.delete(name);
  }

  stopAll(): void {
    if (this.loop) {
      this.loop.stopped = true;
      clearTimeout(this.loop.timer);
      this.loop = undefined;
    }
    this.ready.clear();
  }
}

function readyCondition(ready: boolean) {
  const now = metaTime(new Date());
  return {
    type: "Ready",
    status: ready ? "True" : "False",
    reason: ready ? "KubeletReady" : "KubeletNotReady",
    message: ready ? "kubelet is posting ready status" : "container runtime is down",
    lastHeartbeatTime: now,
    lastTransitionTime: now,
  };
}
