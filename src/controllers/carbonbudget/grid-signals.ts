import type { IntensityPoint } from "../../carbon/intensity.ts";

/**
 * What a CarbonBudget in Enforce mode has learned about the grid, for the QuantumJob controller in the same
 * process: the forecast its deferrable jobs wait on, and the intensity of the regions its jobs may be placed in.
 * Kept in memory and refilled at every refresh; a job that finds nothing here yet waits for it (never past its
 * deadline), and one already deferred keeps the time it was given (status.schedule.deferredUntil).
 */
export interface BudgetGrid {
  /** "namespace/name" of the budget. */
  budget: string;
  deferQuantumJobs: boolean;
  preferGreenSites: boolean;
  /** The budget's own region, where the operator's embedded simulators run. */
  region: string;
  /** The forecast for the budget's region; undefined when the source has none (static, stale data). */
  forecast?: IntensityPoint[];
  /** gCO2e/kWh by region, for the sites' carbonRegions. */
  regions: Map<string, number>;
}

class GridSignals {
  private readonly byBudget = new Map<string, BudgetGrid>();

  set(grid: BudgetGrid): void {
    this.byBudget.set(grid.budget, grid);
  }

  has(budget: string): boolean {
    return this.byBudget.has(budget);
  }

  delete(budget: string): void {
    this.byBudget.delete(budget);
  }

  /** The grid of the namespace's budget: the first by name, when several are in force. */
  forNamespace(namespace: string): BudgetGrid | undefined {
    const keys = [...this.byBudget.keys()].filter((k) => k.startsWith(`${namespace}/`)).sort();
    return keys.length ? this.byBudget.get(keys[0] as string) : undefined;
  }
}

export const gridSignals = new GridSignals();
