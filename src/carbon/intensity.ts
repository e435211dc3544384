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
