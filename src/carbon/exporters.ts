/**
 * The PromQL that reads a set of pods' energy from what Kepler and dcgm-exporter export, as Prometheus stores it.
 * Nothing here talks to Prometheus or Kubernetes; each query is evaluated at the end of the interval it covers, its
 * range the interval's length, so that consecutive intervals neither overlap nor leave gaps.
 *
 * Kepler 0.10 and later (its rewritten exporter; 0.7's kepler_container_* names are not read): the pod-level counter
 * kepler_pod_cpu_joules_total{pod_namespace, pod_name, zone, state}. Its RAPL zones overlap (Kepler's
 * docs/user/metrics.md: `package` contains `core` and `uncore`; `dram` is apart; `psys` covers the platform), so the
 * CPU's energy is `package` + `dram`, or `psys` alone on machines that export neither. Both states count: a pod that
 * ended mid-interval moves from `running` to `terminated` with the same total, which adds nothing.
 *
 * GPUs, in order of preference: Kepler's kepler_pod_gpu_joules_total where it meters GPUs; dcgm-exporter's energy
 * counter DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ); its power gauge DCGM_FI_DEV_POWER_USAGE (W) averaged over the
 * interval. dcgm-exporter labels a GPU with the pod that holds it as namespace/pod; its chart's ServiceMonitor scrapes
 * with honorLabels: false, so Prometheus keeps those as exported_namespace/exported_pod (namespace/pod being the
 * exporter's own pod). Both spellings are read; namespace/pod only where exported_namespace is absent.
 */

export interface PodScope {
  namespace: string;
  /** The pods' names; absent means every pod of the namespace. */
  pods?: string[];
}

/** Joules the pods' CPUs (and memory) drew over the `rangeMs` before the evaluation time. */
export function cpuJoulesQuery(scope: PodScope, rangeMs: number): string {
  const pods = match({ namespace: "pod_namespace", pod: "pod_name" }, scope);
  const range = `[${Math.round(rangeMs)}ms]`;
  return (
    `sum(increase(kepler_pod_cpu_joules_total{${pods},zone=~"package|dram"}${range}))` +
    ` or sum(increase(kepler_pod_cpu_joules_total{${pods},zone="psys"}${range}))`
  );
}

/** Joules the pods' GPUs drew over the `rangeMs` before the evaluation time. */
export function gpuJoulesQuery(scope: PodScope & { pods: string[] }, rangeMs: number): string {
  const kepler = match({ namespace: "pod_namespace", pod: "pod_name" }, scope);
  const exported = match({ namespace: "exported_namespace", pod: "exported_pod" }, scope);
  const own = `${match({ namespace: "namespace", pod: "pod" }, scope)},exported_namespace=""`;
  const range = `[${Math.round(rangeMs)}ms]`;
  const dcgm = (fn: string, metric: string) =>
    `sum(${fn}(${metric}{${exported}}${range}) or ${fn}(${metric}{${own}}${range}))`;
  return (
    `sum(increase(kepler_pod_gpu_joules_total{${kepler}}${range}))` +
    ` or ${dcgm("increase", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")} / 1000` +
    ` or ${dcgm("avg_over_time", "DCGM_FI_DEV_POWER_USAGE")} * ${rangeMs / 1000}`
  );
}

function match(names: { namespace: string; pod: string }, scope: PodScope): string {
  const ns = `${names.namespace}="${scope.namespace}"`;
  return scope.pods ? `${ns},${names.pod}=~"${scope.pods.map(escapeRegex).join("|")}"` : ns;
}

// Pod names hold dots; in a PromQL string a regex escape is itself escaped.
function escapeRegex(name: string): string {
  return name.replace(/[.*+?^${}()|[\]\\]/g, "\\\\$&");
}
