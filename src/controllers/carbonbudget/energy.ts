import { type PodDraw, estimateWatts } from "../../carbon/accounting.ts";
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
  if (kepler) return keplerJoules(kepler.prometheus.url, budget, pods, from, to);
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
 * Kepler's counters (its 0.7 metric names: kepler_container_{package,dram,gpu}_joules_total, by container_namespace
 * and pod_name) increased over the interval, evaluated at its end so that consecutive intervals neither overlap nor
 * leave gaps. GPUs Kepler does not meter come from DCGM's power gauge (DCGM_FI_DEV_POWER_USAGE, watts, by
 * namespace and pod) averaged over the interval.
 */
async function keplerJoules(url: string, budget: CarbonBudget, pods: Pod[], from: number, to: number) {
  const ns = budget.metadata.namespace as string;
  const names = budget.spec.selector ? pods.map((p) => p.metadata.name) : undefined;
  if (names && !names.length) return { ok: true as const, joules: 0 };
  const podMatch = (label: string) => (names ? `,${label}=~"${names.map(escapeRegex).join("|")}"` : "");
  const kepler = `container_namespace="${ns}"${podMatch("pod_name")}`;
  const dcgm = `namespace="${ns}"${podMatch("pod")}`;
  const range = `${Math.round(to - from)}ms`;
  const seconds = (to - from) / 1000;
  const query =
    `(sum(increase(kepler_container_package_joules_total{${kepler}}[${range}])) or vector(0))` +
    ` + (sum(increase(kepler_container_dram_joules_total{${kepler}}[${range}])) or vector(0))` +
    ` + (sum(increase(kepler_container_gpu_joules_total{${kepler}}[${range}]))` +
    ` or sum(avg_over_time(DCGM_FI_DEV_POWER_USAGE{${dcgm}}[${range}])) * ${seconds} or vector(0))`;
  const result = await instantQuery(url, query, 10_000, to);
  if (!result.ok) return { ok: false as const, reason: result.reason, message: result.message };
  return { ok: true as const, joules: result.samples.reduce((sum, s) => sum + s.value, 0) };
}

function escapeRegex(name: string): string {
  return name.replace(/[.*+?^${}()|[\]\\]/g, "\\\\$&");
}
