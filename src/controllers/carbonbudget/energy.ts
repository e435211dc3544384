import { type PodDraw, estimateWatts } from "../../carbon/accounting.ts";
import { cpuJoulesQuery, gpuJoulesQuery } from "../../carbon/exporters.ts";
import type { CarbonBudget } from "../../crds/carbonbudget.ts";
import { parseQuantity } from "../../runtime/quantity.ts";
import { instantQuery } from "../../prometheus/query.ts";
import type { Cache } from "../../runtime/cache.ts";
import { PodKind } from "../../runtime/kinds.ts";
import type { KubeObject } from "../../runtime/objects.ts";

const GPU_RESOURCES = ["nvidia.com/gpu", "amd.com/gpu"];

interface Container {
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
type Pod = KubeObject & { spec?: { containers?: Container[] }; status?: { phase?: string } };

export type EnergyResult = { ok: true; joules: number } | { ok: false; reason: string; message: string };

/** The pods a budget counts: its namespace's, narrowed by its selector. */
export function budgetPods(budget: CarbonBudget, cache: Cache): Pod[] {
  return cache.list<Pod>(PodKind, { namespace: budget.metadata.namespace, selector: budget.spec.selector });
}

/** Joules the budget's pods drew over [from, to). */
export async function energyJoules(budget: CarbonBudget, pods: Pod[], from: number, to: number): Promise<EnergyResult> {
  const { kepler, estimate } = budget.spec.energy;
  if (kepler) return measuredJoules(kepler.prometheus.url, budget, pods, from, to);
  const model = estimate as NonNullable<typeof estimate>;
  const watts = estimateWatts(pods.filter((p) => p.status?.phase === "Running").map(draw), {
    wattsPerCore: Number(model.wattsPerCore),
    idleWattsPerCore: Number(model.idleWattsPerCore ?? 0),
    wattsPerGPU: Number(model.wattsPerGPU ?? 0),
    utilization: Number(model.utilization ?? 0.5),
  });
  // The pods Running now stand for the whole interval: an estimate samples at each refresh.
  return { ok: true, joules: (watts * (to - from)) / 1000 };
}

function draw(pod: Pod): PodDraw {
  let cores = 0;
  let gpus = 0;
  for (const c of pod.spec?.containers ?? []) {
    const cpu = c.resources?.requests?.cpu;
    if (cpu !== undefined) cores += parseQuantity(cpu);
    for (const r of GPU_RESOURCES) {
      const n = c.resources?.limits?.[r];
      if (n !== undefined) gpus += parseQuantity(n);
    }
  }
  return { cores, gpus };
}

/**
 * The pods' energy from Kepler (CPU and memory) and, for pods holding GPUs, Kepler's or dcgm-exporter's GPU series
 * (src/carbon/exporters.ts says which names and labels). A series that is absent is NoData, never zero: a budget
 * whose exporter is missing, too old or not scraped says so instead of accounting nothing. Absent is only fine when
 * no pod ran (nothing was there to measure).
 */
async function measuredJoules(url: string, budget: CarbonBudget, pods: Pod[], from: number, to: number) {
  const namespace = budget.metadata.namespace as string;
  const names = budget.spec.selector ? pods.map((p) => p.metadata.name) : undefined;
  if (names && !names.length) return { ok: true as const, joules: 0 };
  const running = pods.filter((p) => p.status?.phase === "Running");
  const cpu = await joulesOf(url, cpuJoulesQuery({ namespace, pods: names }, to - from), to, running.length > 0);
  if (!cpu.ok)
    return { ...cpu, message: `no Kepler (0.10 or later) pod energy for ${namespace}'s pods: ${cpu.message}` };
  const gpuPods = pods.filter((p) => draw(p).gpus > 0);
  if (!gpuPods.length) return cpu;
  const query = gpuJoulesQuery({ namespace, pods: gpuPods.map((p) => p.metadata.name) }, to - from);
  const gpu = await joulesOf(
    url,
    query,
    to,
    gpuPods.some((p) => p.status?.phase === "Running"),
  );
  if (!gpu.ok)
    return { ...gpu, message: `no GPU energy (Kepler or dcgm-exporter) for the pods holding GPUs: ${gpu.message}` };
  return { ok: true as const, joules: cpu.joules + gpu.joules };
}

async function joulesOf(url: string, query: string, at: number, anyRunning: boolean): Promise<EnergyResult> {
  const result = await instantQuery(url, query, 10_000, at);
  if (result.ok) return { ok: true, joules: result.samples.reduce((sum, s) => sum + s.value, 0) };
  if (result.reason === "NoData" && !anyRunning) return { ok: true, joules: 0 };
  return { ok: false, reason: result.reason, message: result.message };
}
