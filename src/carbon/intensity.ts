/**
 * Grid carbon intensity as the operator's sources report it. Times are Unix milliseconds; intensities are grams of
 * CO2-equivalent per kWh. Nothing here talks to Kubernetes.
 */

/** The seed's default for a grid whose intensity nobody can tell us. */
export const DEFAULT_GRID_GRAMS_PER_KWH = 400;

/** One value of a step function of intensity: gramsPerKWh holds over [start, end). */
export interface IntensityPoint {
  start: number;
  end: number;
  gramsPerKWh: number;
}

/** The intensity a source reports for a region now, and since when that value holds (the source's own time). */
export interface IntensityReading {
  region: string;
  gramsPerKWh: number;
  observedAt: number;
}

export type SourceFailureReason = "SourceUnreachable" | "SourceRejected" | "SourceInvalid";

export type SourceResult<T> = { ok: true; value: T } | { ok: false; reason: SourceFailureReason; message: string };

/**
 * A source of intensity. Messages of failures name what went wrong (status code, the field that was missing) and
 * never carry credentials.
 */
export interface IntensitySource {
  /** The latest value for each region asked for (a region the source does not know is a failure). */
  current(regions: string[], now: number): Promise<SourceResult<IntensityReading[]>>;
  /** Forecast steps for one region covering as much of [from, to) as the source knows; [] when it has none. */
  forecast(region: string, from: number, to: number): Promise<SourceResult<IntensityPoint[]>>;
}

/**
 * Samples as contiguous steps: each value holds from its start until the next sample's start, the last one for
 * lastMs. The samples may come in any order; a sample superseded at its own instant leaves no step.
 */
export function holdUntilNext(
  samples: Array<{ start: number; gramsPerKWh: number }>,
  lastMs: number,
): IntensityPoint[] {
  const sorted = [...samples].sort((a, b) => a.start - b.start);
  return sorted
    .map((s, i) => ({ start: s.start, end: sorted[i + 1]?.start ?? s.start + lastMs, gramsPerKWh: s.gramsPerKWh }))
    .filter((p) => p.end > p.start);
}

/** The parts of the steps that fall within [from, to). */
export function clipToWindow(steps: IntensityPoint[], from: number, to: number): IntensityPoint[] {
  return steps
    .filter((p) => p.end > from && p.start < to)
    .map((p) => ({ start: Math.max(p.start, from), end: Math.min(p.end, to), gramsPerKWh: p.gramsPerKWh }));
}
