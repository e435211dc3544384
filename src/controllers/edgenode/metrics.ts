import { Gauge, Histogram, type Registry } from "prom-client";
import { TIERS } from "../../edge/hierarchy.ts";

const PHASES = ["Online", "Degraded", "Partitioned", "Offline", "Empty"];

export interface EdgeNodeMetrics {
  record(site: string, tier: string, phase: string): void;
  forget(site: string): void;
  probeSeconds: Histogram<"site">;
}

const byRegistry = new WeakMap<Registry, EdgeNodeMetrics>();

/** Sites by phase and tier (kept from each site's last reconcile) and probe latency per site. */
export function edgeNodeMetrics(registry: Registry): EdgeNodeMetrics {
  let m = byRegistry.get(registry);
  if (m) return m;
  const last = new Map<string, { tier: string; phase: string }>();
  new Gauge({
    name: "nextgen_edgenode_sites",
    help: "Edge sites by phase and tier",
    labelNames: ["phase", "tier"],
    registers: [registry],
    collect() {
      for (const tier of TIERS) for (const phase of PHASES) this.set({ tier, phase }, 0);
      for (const s of last.values()) this.inc({ tier: s.tier, phase: s.phase });
    },
  });
  m = {
    record: (site, tier, phase) => void last.set(site, { tier, phase }),
    forget: (site) => void last.delete(site),
    probeSeconds: new Histogram({
      name: "nextgen_edgenode_probe_duration_seconds",
      help: "Round-trip time of site probes",
      labelNames: ["site"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  };
  byRegistry.set(registry, m);
  return m;
}
