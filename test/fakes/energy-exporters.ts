/**
 * Local stand-ins for the two energy exporters a CarbonBudget reads through Prometheus, written from their current
 * source (neither can run here: Kepler reads RAPL and /proc, dcgm-exporter needs NVIDIA's DCGM library and a GPU):
 *
 * - Kepler, github.com/sustainable-computing-io/kepler @ v0.11.4-116-g13944a69 (main, 2025-08-21),
 *   internal/exporter/prometheus/collector/power_collector.go: `kepler_pod_cpu_joules_total{pod_id, pod_name,
 *   pod_namespace, state, zone}` and `kepler_pod_cpu_watts` per RAPL zone, `kepler_pod_gpu_joules_total{pod_id,
 *   pod_name, pod_namespace, state}` only for pods with GPU energy (collectPodMetrics), all with the constant label
 *   `node_name`; node series `kepler_node_cpu_joules_total{zone, path}`. docs/user/metrics.md ("Energy Zones"):
 *   `package` contains `core` and `uncore`, `dram` is apart, so the zones are not to be summed.
 * - dcgm-exporter, github.com/NVIDIA/dcgm-exporter @ 4.5.3-4.8.2-1-gd5e5f51 (chart 4.8.2):
 *   internal/pkg/rendermetrics/render_metrics.go renders `FIELD{gpu, UUID, pci_bus_id, device, modelName, Hostname,
 *   container, namespace, pod}` (the last three from its Kubernetes pod mapping); etc/default-counters.csv exports
 *   DCGM_FI_DEV_POWER_USAGE (gauge, W) and DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (counter, mJ since boot).
 *   deployment/values.yaml scrapes it with `honorLabels: false`: see DCGM_SCRAPE_TARGET_LABELS.
 *
 * Counters grow at the configured watts from when a pod was added; a GPU's energy counter starts at what the GPU drew
 * since boot, as the real one does.
 */
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { once } from "node:events";

/** A pod's draw in watts per RAPL zone (`core` lies inside `package`), and of its GPU. */
export interface PodPower {
  namespace: string;
  name: string;
  uid: string;
  package: number;
  core: number;
  dram: number;
  /** Watts of the pod's one GPU, if it has one. */
  gpu?: number;
}

interface Exporter {
  address: string;
  close(): Promise<void>;
}

async function serve(render: (now: number) => string[]): Promise<Exporter> {
  const server: Server = createServer((_req, res) => {
    res.setHeader("content-type", "text/plain; version=0.0.4; charset=utf-8");
    res.end(`${render(Date.now()).join("\n")}\n`);
  });
  await once(server.listen(0, "127.0.0.1"), "listening");
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const labels = (l: Record<string, string>) =>
  `{${Object.entries(l)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",")}}`;

type Drawing = PodPower & { since: number };

/** Kepler on one node, its pod level enabled (the default metrics level). */
export class KeplerExporter {
  private readonly pods = new Map<string, Drawing>();
  /** Whether pods' GPU energy is exported too (Kepler's GPU power monitoring, EP-003). */
  gpuMetering = false;

  private server!: Exporter;
  readonly nodeName: string;

  private constructor(nodeName: string) {
    this.nodeName = nodeName;
  }

  static async start(nodeName: string): Promise<KeplerExporter> {
    const exporter = new KeplerExporter(nodeName);
    exporter.server = await serve((now) => exporter.render(now));
    return exporter;
  }

  get address(): string {
    return this.server.address;
  }

  /** The pod draws `power` from `since` (default now) on. */
  draw(power: PodPower, since = Date.now()): void {
    this.pods.set(`${power.namespace}/${power.name}`, { ...power, since });
  }

  private render(now: number): string[] {
    const node_name = this.nodeName;
    const lines = ["# TYPE kepler_pod_cpu_joules_total counter", "# TYPE kepler_node_cpu_joules_total counter"];
    const nodeJoules = { package: 0, core: 0, dram: 0 };
    for (const p of this.pods.values()) {
      const seconds = (now - p.since) / 1000;
      const pod = { pod_id: p.uid, pod_name: p.name, pod_namespace: p.namespace, state: "running" };
      for (const zone of ["package", "core", "dram"] as const) {
        nodeJoules[zone] += p[zone] * seconds;
        lines.push(`kepler_pod_cpu_joules_total${labels({ ...pod, zone, node_name })} ${p[zone] * seconds}`);
        lines.push(`kepler_pod_cpu_watts${labels({ ...pod, zone, node_name })} ${p[zone]}`);
      }
      if (this.gpuMetering && p.gpu !== undefined)
        lines.push(`kepler_pod_gpu_joules_total${labels({ ...pod, node_name })} ${p.gpu * seconds}`);
    }
    const paths = { package: "intel-rapl:0", core: "intel-rapl:0:0", dram: "intel-rapl:0:1" };
    for (const [zone, joules] of Object.entries(nodeJoules))
      lines.push(
        `kepler_node_cpu_joules_total${labels({ zone, path: paths[zone as keyof typeof paths], node_name })} ${joules}`,
      );
    return lines;
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

/**
 * The target labels the Prometheus Operator gives dcgm-exporter's pod when its chart's ServiceMonitor scrapes it:
 * with `honorLabels: false` the exporter's own namespace/pod/container become exported_namespace/exported_pod/
 * exported_container.
 */
export const DCGM_SCRAPE_TARGET_LABELS = {
  namespace: "gpu-operator",
  service: "nvidia-dcgm-exporter",
  pod: "nvidia-dcgm-exporter-7x2kq",
  container: "nvidia-dcgm-exporter",
  endpoint: "metrics",
};

/** dcgm-exporter on one node, each GPU assigned to at most one pod. */
export class DcgmExporter {
  private readonly gpus = new Map<string, Drawing & { gpu: number; index: number }>();
  /** Whether DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION is exported (in the default counters; a custom CSV may drop it). */
  energyCounter = true;
  /** What the power gauge reads instead of the GPU's draw, to tell which series a reader used. */
  powerGaugeOverride?: number;

  private server!: Exporter;
  readonly hostname: string;

  private constructor(hostname: string) {
    this.hostname = hostname;
  }

  static async start(hostname: string): Promise<DcgmExporter> {
    const exporter = new DcgmExporter(hostname);
    exporter.server = await serve((now) => exporter.render(now));
    return exporter;
  }

  get address(): string {
    return this.server.address;
  }

  /** The pod's GPU draws `power.gpu` watts from `since` (default now) on. */
  draw(power: PodPower & { gpu: number }, since = Date.now()): void {
    this.gpus.set(`${power.namespace}/${power.name}`, { ...power, since, index: this.gpus.size });
  }

  private render(now: number): string[] {
    const lines = [
      "# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).",
      "# TYPE DCGM_FI_DEV_POWER_USAGE gauge",
      "# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).",
      "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter",
    ];
    for (const g of this.gpus.values()) {
      const device = {
        gpu: String(g.index),
        UUID: `GPU-${g.uid}`,
        pci_bus_id: `00000000:${(0x3b + g.index).toString(16).toUpperCase()}:00.0`,
        device: `nvidia${g.index}`,
        modelName: "NVIDIA A100-SXM4-80GB",
        Hostname: this.hostname,
        container: "app",
        namespace: g.namespace,
        pod: g.name,
      };
      lines.push(`DCGM_FI_DEV_POWER_USAGE${labels(device)} ${this.powerGaugeOverride ?? g.gpu}`);
      // Since boot: an hour at the same draw before the pod had the GPU.
      const millijoules = g.gpu * (3600 + (now - g.since) / 1000) * 1000;
      if (this.energyCounter) lines.push(`DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION${labels(device)} ${millijoules}`);
    }
    return lines;
  }

  close(): Promise<void> {
    return this.server.close();
  }
}
