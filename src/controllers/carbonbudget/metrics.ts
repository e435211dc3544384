import { Gauge, type Registry } from "prom-client";

export interface CarbonMetrics {
  consumed: Gauge<"namespace" | "budget">;
  projected: Gauge<"namespace" | "budget">;
  budget: Gauge<"namespace" | "budget">;
  energy: Gauge<"namespace" | "budget">;
  stale: Gauge<"namespace" | "budget">;
  intensity: Gauge<"region" | "source">;
}

const byRegistry = new WeakMap<Registry, CarbonMetrics>();

export function carbonMetrics(registry: Registry): CarbonMetrics {
  let m = byRegistry.get(registry);
  if (m) return m;
  const perBudget = (name: string, help: string) =>
    new Gauge({ name, help, labelNames: ["namespace", "budget"] as const, registers: [registry] });
  m = {
    consumed: perBudget("nextgen_carbon_consumed_grams", "gCO2e the budget's pods emitted in its current window"),
    projected: perBudget("nextgen_carbon_projected_grams", "gCO2e by the window's end at the latest rate"),
    budget: perBudget("nextgen_carbon_budget_grams", "gCO2e the budget allows per window"),
    energy: perBudget("nextgen_carbon_energy_kwh", "kWh the budget's pods drew in its current window (before PUE)"),
    stale: perBudget(
      "nextgen_carbon_intensity_stale",
      "1 while the budget's intensity source fails or its data is old (IntensityDataStale=True)",
    ),
    intensity: new Gauge({
      name: "nextgen_carbon_intensity_grams_per_kwh",
      help: "Grid carbon intensity in force, by region and source (default: no usable data)",
      labelNames: ["region", "source"] as const,
      registers: [registry],
    }),
  };
  byRegistry.set(registry, m);
  return m;
}

/** Forgets a deleted budget's series. */
export function forgetBudget(registry: Registry, namespace: string, budget: string): void {
  const m = carbonMetrics(registry);
  for (const g of [m.consumed, m.projected, m.budget, m.energy, m.stale]) g.remove({ namespace, budget });
}
