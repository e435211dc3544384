/**
 * What a pod's status says only at one instant (a cumulative restart count, the last termination) turned into
 * counts over a window, by remembering what was seen: each change of the count is dated when it is seen (pod
 * watch events arrive within moments). Memory only: restarts before the first sighting are dated only when the
 * pod started within the window (they are all in it); otherwise they are not counted, as no one knows when they
 * were (never act on missing data). The last termination (OOMKilled, with its finish time) is in the status
 * itself, so a recent OOM kill is not missed after an operator restart.
 */

export interface ContainerStatusLike {
  name: string;
  restartCount?: number;
  ready?: boolean;
  state?: { waiting?: { reason?: string }; terminated?: { reason?: string; finishedAt?: string } };
  lastState?: { terminated?: { reason?: string; finishedAt?: string; exitCode?: number } };
}

export interface PodLike {
  metadata: { name: string; namespace?: string; uid?: string; labels?: Record<string, string> };
  spec?: { nodeName?: string };
  status?: {
    phase?: string;
    startTime?: string;
    conditions?: Array<{ type: string; status: string; lastTransitionTime?: string }>;
    containerStatuses?: ContainerStatusLike[];
  };
}

interface Tracked {
  /** (time, cumulative restarts) samples, oldest first; pruned to the longest window asked for. */
  restarts: Array<[number, number]>;
  /** "container/finishedAt" -> finish time, of OOMKilled terminations seen. */
  oomKills: Map<string, number>;
  seen: number;
  firstSeen: number;
  firstCount: number;
  /** When the pod started, if that was within keepMs of the first sighting: restarts count from 0 there. */
  started?: number;
}

const totalRestarts = (p: PodLike) =>
  (p.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0);

export class PodHistory {
  private readonly pods = new Map<string, Tracked>();
  private readonly keepMs: number;

  /** keepMs: the longest window any caller asks about. */
  constructor(keepMs: number) {
    this.keepMs = keepMs;
  }

  /** Records what the pod's status says now. Call on every sighting; cheap when nothing moved. */
  observe(pod: PodLike, now: number): void {
    const key = pod.metadata.uid ?? `${pod.metadata.namespace}/${pod.metadata.name}`;
    const count = totalRestarts(pod);
    let t = this.pods.get(key);
    if (!t) {
      const startTime = pod.status?.startTime ? Date.parse(pod.status.startTime) : Number.NaN;
      const started = startTime >= now - this.keepMs ? startTime : undefined;
      t = { restarts: [[now, count]], oomKills: new Map(), seen: now, firstSeen: now, firstCount: count, started };
      this.pods.set(key, t);
    }
    t.seen = now;
    const last = t.restarts[t.restarts.length - 1];
    if (last && last[1] !== count) t.restarts.push([now, count]);
    // Samples older than the window are needed only as the window's baseline: keep the newest of them.
    while (t.restarts.length > 1 && (t.restarts[1] as [number, number])[0] <= now - this.keepMs) t.restarts.shift();
    for (const c of pod.status?.containerStatuses ?? []) {
      for (const term of [c.lastState?.terminated, c.state?.terminated]) {
        if (term?.reason === "OOMKilled" && term.finishedAt)
          t.oomKills.set(`${c.name}/${term.finishedAt}`, Date.parse(term.finishedAt));
      }
    }
    for (const [k, at] of t.oomKills) if (at < now - this.keepMs) t.oomKills.delete(k);
  }

  /** Restarts of the pod's containers within the window ending now. */
  restartsWithin(pod: PodLike, windowMs: number, now: number): number {
    const t = this.pods.get(pod.metadata.uid ?? `${pod.metadata.namespace}/${pod.metadata.name}`);
    if (!t) return 0;
    const from = now - windowMs;
    let baseline: number;
    if (from < t.firstSeen) baseline = t.started !== undefined && from <= t.started ? 0 : t.firstCount;
    else {
      baseline = (t.restarts[0] as [number, number])[1];
      for (const [at, n] of t.restarts) if (at <= from) baseline = n;
    }
    return totalRestarts(pod) - baseline;
  }

  /** OOM kills of the pod's containers that finished within the window ending now. */
  oomKillsWithin(pod: PodLike, windowMs: number, now: number): number {
    const t = this.pods.get(pod.metadata.uid ?? `${pod.metadata.namespace}/${pod.metadata.name}`);
    if (!t) return 0;
    let n = 0;
    for (const at of t.oomKills.values()) if (at >= now - windowMs) n++;
    return n;
  }

  /** Forgets pods not seen since `before` (deleted pods). */
  forgetUnseen(before: number): void {
    for (const [k, t] of this.pods) if (t.seen < before) this.pods.delete(k);
  }
}

/** Keys whose condition has held continuously, since when: Prometheus' `for`. */
export class Sustained {
  private readonly since = new Map<string, number>();

  /** Records whether the condition holds for key now; answers since when it has held (undefined if it does not). */
  update(key: string, holds: boolean, now: number): number | undefined {
    if (!holds) {
      this.since.delete(key);
      return undefined;
    }
    const s = this.since.get(key) ?? now;
    this.since.set(key, s);
    return s;
  }

  /** Forgets every key under prefix that was not updated in this pass. */
  retain(prefix: string, keep: Set<string>): void {
    for (const k of this.since.keys()) if (k.startsWith(prefix) && !keep.has(k)) this.since.delete(k);
  }
}
