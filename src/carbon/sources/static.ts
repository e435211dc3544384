/** A fixed intensity, for clusters whose grid nobody publishes or that state it in their CarbonBudget. */
import type { IntensitySource } from "../intensity.ts";

/**
 * gramsPerKWh for every region, in effect since `since`. Its forecast is always empty: a constant offers no better
 * time to wait for.
 */
export function staticSource(gramsPerKWh: number, since: number): IntensitySource {
  return {
    async current(regions) {
      return { ok: true, value: regions.map((region) => ({ region, gramsPerKWh, observedAt: since })) };
    },
    async forecast() {
      return { ok: true, value: [] };
    },
  };
}
