/**
 * Kubernetes resource quantities ("4", "3500m", "16Gi", "1e3") as numbers in base units, and back. Beside the runtime
 * because every kind that reads a resource list needs them (EdgeNode, CarbonBudget, QuantumBackend, RemediationPolicy).
 */
const suffixes: Record<string, number> = {
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
};

export function parseQuantity(q: string | number): number {
  if (typeof q === "number") return q;
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$/.exec(q.trim());
  if (!m) throw new Error(`"${q}" is not a resource quantity`);
  return Number(m[1]) * (suffixes[m[2] ?? ""] as number);
}

/** The canonical form of a sum: whole numbers as such, fractions in milli-units, bytes in the largest exact Ki/Mi/Gi. */
export function formatQuantity(value: number, resource: string): string {
  if (resource === "memory" || resource.endsWith("storage")) {
    for (const s of ["Ti", "Gi", "Mi", "Ki"]) {
      const unit = suffixes[s] as number;
      if (value >= unit && Number.isInteger(value / unit)) return `${value / unit}${s}`;
    }
    return String(Math.round(value));
  }
  if (Number.isInteger(value)) return String(value);
  return `${Math.round(value * 1000)}m`;
}

/** Sums resource maps (a Node's allocatable) over the named resources. */
export function sumResources(
  maps: Array<Record<string, string> | undefined>,
  resources: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of resources) {
    let total = 0;
    let seen = false;
    for (const m of maps) {
      const v = m?.[r];
      if (v === undefined) continue;
      total += parseQuantity(v);
      seen = true;
    }
    if (seen) out[r] = formatQuantity(total, r);
  }
  return out;
}
