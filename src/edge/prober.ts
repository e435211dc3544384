import { percentile } from "./health.ts";

export interface ProbeSpec {
  url: string;
  intervalSeconds: number;
  timeoutSeconds: number;
}

export interface ProbeStats {
  /** Undefined until the first probe; false after two failures in a row. */
  reachable?: boolean;
  samplesMs: number[];
  lastProbeTime?: string;
  lastError?: string;
}

interface Loop {
  spec: ProbeSpec;
  targetMs: number;
  stats: ProbeStats;
  failures: number;
  timer?: NodeJS.Timeout;
  stopped: boolean;
}

const SAMPLES = 20;

/**
 * Probes each site's HTTP endpoint on its own interval and keeps the recent round-trip times. It reports a site
 * through onChange only when something a status shows would flip (reachability, or the p95 against the target),
 * so probing costs no API writes while nothing changes.
 */
export class Prober {
  private readonly loops = new Map<string, Loop>();
  private readonly onChange: (site: string) => void;
  private readonly observe: (site: string, seconds: number) => void;

  constructor(onChange: (site: string) => void, observe: (site: string, seconds: number) => void = () => undefined) {
    this.onChange = onChange;
    this.observe = observe;
  }

  /** Starts, changes or (spec undefined) stops probing a site. */
  configure(site: string, spec: ProbeSpec | undefined, targetMs: number): void {
    const loop = this.loops.get(site);
    if (
      loop &&
      spec &&
      loop.spec.url === spec.url &&
      loop.spec.intervalSeconds === spec.intervalSeconds &&
      loop.spec.timeoutSeconds === spec.timeoutSeconds
    ) {
      loop.targetMs = targetMs;
      return;
    }
    if (loop) this.stop(site);
    if (!spec) return;
    const next: Loop = { spec, targetMs, stats: { samplesMs: [] }, failures: 0, stopped: false };
    this.loops.set(site, next);
    void this.probe(site, next);
  }

  stats(site: string): ProbeStats | undefined {
    return this.loops.get(site)?.stats;
  }

  stop(site: string): void {
    const loop = this.loops.get(site);
    if (!loop) return;
    loop.stopped = true;
    clearTimeout(loop.timer);
    this.loops.delete(site);
  }

  stopAll(): void {
    for (const site of [...this.loops.keys()]) this.stop(site);
  }

  private async probe(site: string, loop: Loop): Promise<void> {
    const before = summary(loop);
    const started = performance.now();
    try {
      const res = await fetch(loop.spec.url, {
        signal: AbortSignal.timeout(loop.spec.timeoutSeconds * 1000),
        redirect: "manual",
      });
      await res.body?.cancel();
      const ms = performance.now() - started;
      this.observe(site, ms / 1000);
      loop.stats.samplesMs = [...loop.stats.samplesMs, Math.round(ms * 10) / 10].slice(-SAMPLES);
      loop.failures = 0;
      loop.stats.reachable = true;
      loop.stats.lastError = undefined;
    } catch (e) {
      loop.failures++;
      loop.stats.lastError = e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e);
      if (loop.failures >= 2) loop.stats.reachable = false; // one lost probe is not a partition
    }
    loop.stats.lastProbeTime = new Date().toISOString();
    if (loop.stopped) return;
    if (summary(loop) !== before) this.onChange(site);
    loop.timer = setTimeout(() => void this.probe(site, loop), loop.spec.intervalSeconds * 1000);
    loop.timer.unref();
  }
}

/** What a status shows of a probe loop, compared before and after each probe. */
function summary(loop: Loop): string {
  const p95 = percentile(loop.stats.samplesMs, 95);
  return `${loop.stats.reachable}/${p95 === undefined ? "-" : p95 <= loop.targetMs}`;
}
