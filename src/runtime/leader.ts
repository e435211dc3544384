import { setTimeout as sleep } from "node:timers/promises";
import { type KubeClient, isConflict, isNotFound } from "./client.ts";
import { LeaseKind, apiVersionOf } from "./kinds.ts";
import type { Logger } from "./log.ts";
import type { KubeObject } from "./objects.ts";
import { microTime } from "./time.ts";

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}
type Lease = KubeObject & { spec: LeaseSpec };

export interface LeaderElectionConfig {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export const DEFAULT_LEADER_TIMINGS = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/**
 * Leader election on a coordination.k8s.io Lease, as client-go's leaderelection: expiry is judged by when this
 * process last saw the record change (never by comparing clocks), and every write is guarded by resourceVersion.
 */
export class LeaderElector {
  private readonly client: KubeClient;
  private readonly cfg: LeaderElectionConfig;
  private readonly log: Logger;
  private observed: { record: string; at: number; lease?: Lease } | undefined;
  private leading = false;

  constructor(client: KubeClient, cfg: LeaderElectionConfig, log: Logger) {
    this.client = client;
    this.cfg = cfg;
    this.log = log.with({ lease: `${cfg.namespace}/${cfg.name}`, identity: cfg.identity });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Resolves once this process leads; rejects if signal aborts first. */
  async acquire(signal: AbortSignal): Promise<void> {
    this.log.info("waiting to lead");
    while (!(await this.tryAcquireOrRenew().catch((e) => this.failed(e)))) {
      await sleep(this.cfg.retryPeriodMs, undefined, { signal });
    }
    this.leading = true;
    this.log.info("leading");
  }

  /** Renews until the renew deadline passes without success (resolves: leadership lost) or signal aborts. */
  async holdUntilLost(signal: AbortSignal): Promise<void> {
    let lastRenew = Date.now();
    while (!signal.aborted) {
      await sleep(this.cfg.retryPeriodMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;
      if (await this.tryAcquireOrRenew().catch((e) => this.failed(e))) lastRenew = Date.now();
      else if (Date.now() - lastRenew > this.cfg.renewDeadlineMs) {
        this.leading = false;
        this.log.error("leadership lost: could not renew the lease within the renew deadline");
        return;
      }
    }
  }

  /** Gives the lease up so a standby takes over at once instead of waiting for it to expire. */
  async release(): Promise<void> {
    if (!this.leading || !this.observed?.lease) return;
    this.leading = false;
    const lease = this.observed.lease;
    try {
      await this.client.update<Lease>(LeaseKind, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime(new Date()) },
      });
      this.log.info("lease released");
    } catch (e) {
      this.log.warn("could not release the lease", { error: String(e) });
    }
  }

  private failed(e: unknown): false {
    this.log.warn("lease update failed", { error: String(e) });
    return false;
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const durationSeconds = Math.round(this.cfg.leaseDurationMs / 1000);
    const { namespace, name, identity } = this.cfg;
    const current = await this.client.get<Lease>(LeaseKind, namespace, name);
    if (!current) {
      try {
        const created = await this.client.create<Lease>(LeaseKind, {
          apiVersion: apiVersionOf(LeaseKind),
          kind: "Lease",
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: durationSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        });
        this.observe(created);
        return true;
      } catch (e) {
        if (isConflict(e) || isNotFound(e)) return false;
        throw e;
      }
    }
    this.observe(current);
    const spec = current.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    const expired = Date.now() > (this.observed?.at ?? 0) + (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (holder && holder !== identity && !expired) return false;
    const takingOver = holder !== identity;
    try {
      const updated = await this.client.update<Lease>(LeaseKind, {
        ...current,
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: takingOver ? microTime(now) : spec.acquireTime,
          renewTime: microTime(now),
          leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver ? 1 : 0),
        },
      });
      this.observe(updated);
      return true;
    } catch (e) {
      if (isConflict(e)) return false;
      throw e;
    }
  }

  private observe(lease: Lease): void {
    const record = JSON.stringify(lease.spec ?? {});
    if (this.observed?.record !== record) this.observed = { record, at: Date.now(), lease };
    else this.observed.lease = lease;
  }
}
