/** Site health from its members' Ready conditions and heartbeat Leases: pure arithmetic, no API calls. */

export type Phase = "Online" | "Degraded" | "Partitioned" | "Offline" | "Empty";

export interface MemberInput {
  name: string;
  /** The Node's Ready condition. */
  ready?: { status: string; reason?: string; lastHeartbeatTime?: string };
  /** The renewTime of its Lease in kube-node-lease, if any. */
  leaseRenewTime?: string;
}

export interface MemberHealth {
  name: string;
  ready: boolean;
  /** Heartbeat within the grace period. */
  fresh: boolean;
  reason: string;
  lastHeartbeat?: string;
}

/** A member's health now: its last heartbeat is the Lease's renewTime, else the Ready condition's heartbeat. */
export function memberHealth(m: MemberInput, now: number, graceMs: number): MemberHealth {
  const lastHeartbeat = m.leaseRenewTime ?? m.ready?.lastHeartbeatTime;
  const fresh = lastHeartbeat !== undefined && now - Date.parse(lastHeartbeat) <= graceMs;
  const ready = m.ready?.status === "True" && fresh;
  const reason = !lastHeartbeat
    ? "NoHeartbeat"
    : !fresh
      ? "HeartbeatStale"
      : m.ready?.status === "True"
        ? "Ready"
        : (m.ready?.reason ?? "NotReady");
  return { name: m.name, ready, fresh, reason, lastHeartbeat };
}

/**
 * The site's phase. Offline: no member has heartbeated within the grace period. Partitioned: the site's probe
 * fails while members still heartbeat (the network between the operator and the site is cut, the site is not
 * down). Degraded: some members are stale or not Ready. Online: all are fresh and Ready.
 */
export function sitePhase(members: MemberHealth[], probeReachable: boolean | undefined): Phase {
  if (members.length === 0) return "Empty";
  const fresh = members.filter((m) => m.fresh).length;
  if (fresh === 0) return "Offline";
  if (probeReachable === false) return "Partitioned";
  if (members.some((m) => !m.ready)) return "Degraded";
  return "Online";
}

/** Milliseconds until the next member heartbeat goes stale (when the phase may change with no event), if any. */
export function msUntilNextExpiry(members: MemberHealth[], now: number, graceMs: number): number | undefined {
  const due = members
    .filter((m) => m.fresh && m.lastHeartbeat)
    .map((m) => Date.parse(m.lastHeartbeat as string) + graceMs - now);
  return due.length ? Math.max(0, Math.min(...due)) + 1 : undefined;
}

/** The p-th percentile (0-100) of samples, nearest rank. */
export function percentile(samples: readonly number[], p: number): number | undefined {
  if (!samples.length) return undefined;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
