/**
 * Carbon accounting: grams of CO2e as the integral of power x PUE x grid intensity over time. Times are Unix
 * milliseconds. Nothing here talks to Kubernetes.
 */
import { DEFAULT_GRID_GRAMS_PER_KWH, type IntensityPoint, type IntensityReading } from "./intensity.ts";

export const JOULES_PER_KWH = 3.6e6;
const HOUR_MS = 3_600_000;

/** Grams for energy drawn at an intensity; PUE scales the pods' draw to the facility's, once, here. */
export function gramsOf(joules: number, gramsPerKWh: number, pue: number): number {
  return (joules / JOULES_PER_KWH) * pue * gramsPerKWh;
}

/**
 * The intensity over [from, to) as steps: the previous value holds until the new one's observedAt (the source's
 * own time for when it took effect), the new one after it. Accounting each step at its own intensity is what makes
 * a change of intensity mid-interval count from when it happened, not from when the operator looked.
 */
export function intensitySteps(
  from: number,
  to: number,
  current: { gramsPerKWh: number; observedAt: number },
  previous?: { gramsPerKWh: number },
): IntensityPoint[] {
  if (to <= from) return [];
  const change = Math.min(Math.max(current.observedAt, from), to);
  if (!previous || change === from) return [{ start: from, end: to, gramsPerKWh: current.gramsPerKWh }];
  const steps = [{ start: from, end: change, gramsPerKWh: previous.gramsPerKWh }];
  if (change < to) steps.push({ start: change, end: to, gramsPerKWh: current.gramsPerKWh });
  return steps;
}

export type Staleness = "SourceFailing" | "DataOutdated";

/** The intensity accounting and actions use, and why it is not the source's fresh value when it is not. */
export interface EffectiveIntensity {
  gramsPerKWh: number;
  /** The source's name, or "default" when neither a fresh nor a recent value exists. */
  source: string;
  region: string;
  observedAt: number;
  stale?: { reason: Staleness; message: string };
}

/**
 * Fails safe: a fresh reading is used as it is; when the source fails, the last value goes on being used until it
 * is staleAfterMs old, and then the default (400 g/kWh); a reading the source reports that is itself older than
 * staleAfterMs is replaced by the default at once. Each case but the first says so (stale).
 */
export function effectiveIntensity(opts: {
  source: string;
  region: string;
  reading: { ok: true; value: IntensityReading } | { ok: false; message: string };
  last?: { gramsPerKWh: number; source: string; observedAt: number };
  now: number;
  staleAfterMs: number;
}): EffectiveIntensity {
  const { source, region, reading, last, now, staleAfterMs } = opts;
  const fallback = (reason: Staleness, message: string): EffectiveIntensity => ({
    gramsPerKWh: DEFAULT_GRID_GRAMS_PER_KWH,
    source: "default",
    region,
    observedAt: now,
    stale: { reason, message: `${message}; using the default of ${DEFAULT_GRID_GRAMS_PER_KWH} g/kWh.` },
  });
  if (reading.ok) {
    const r = reading.value;
    if (now - r.observedAt > staleAfterMs)
      return fallback("DataOutdated", `${source} reports ${region}'s intensity as of ${iso(r.observedAt)}, too old`);
    return { gramsPerKWh: r.gramsPerKWh, source, region, observedAt: r.observedAt };
  }
  if (last && last.source === source && now - last.observedAt <= staleAfterMs)
    return {
      gramsPerKWh: last.gramsPerKWh,
      source,
      region,
      observedAt: last.observedAt,
      stale: {
        reason: "SourceFailing",
        message: `${reading.message}; using the last value, ${last.gramsPerKWh} g/kWh as of ${iso(last.observedAt)}.`,
      },
    };
  return fallback("SourceFailing", reading.message);
}

export interface Projection {
  projectedGrams: number;
  remainingGrams: number;
  /** When the budget was or will be spent, within the window; absent when it will last. */
  exhaustionTime?: number;
}

/** Where the window ends at the latest rate (grams per ms over the last accounting). */
export function project(opts: {
  consumedGrams: number;
  budgetGrams: number;
  gramsPerMs: number;
  now: number;
  windowEnd: number;
  /** When the budget was first seen spent in this window, kept so that it does not move. */
  exhaustedAt?: number;
}): Projection {
  const { consumedGrams, budgetGrams, gramsPerMs, now, windowEnd } = opts;
  const projectedGrams = consumedGrams + gramsPerMs * Math.max(0, windowEnd - now);
  const remainingGrams = Math.max(0, budgetGrams - consumedGrams);
  let exhaustionTime: number | undefined;
  if (consumedGrams >= budgetGrams) exhaustionTime = opts.exhaustedAt ?? now;
  else if (gramsPerMs > 0 && now + remainingGrams / gramsPerMs < windowEnd)
    exhaustionTime = now + remainingGrams / gramsPerMs;
  return { projectedGrams, remainingGrams, exhaustionTime };
}

export interface Bucket {
  start: number;
  grams: number;
  energyKWh: number;
}

/**
 * Adds an interval's grams and energy to hourly buckets (split in proportion to time across hour boundaries) and
 * drops buckets that ended before windowStart: what a Rolling window keeps to know its total after a restart.
 */
export function addToBuckets(
  buckets: Bucket[],
  interval: { start: number; end: number; grams: number; energyKWh: number },
  windowStart: number,
): Bucket[] {
  const byStart = new Map(buckets.map((b) => [b.start, { ...b }]));
  const length = interval.end - interval.start;
  for (let t = interval.start; t < interval.end;) {
    const hour = Math.floor(t / HOUR_MS) * HOUR_MS;
    const until = Math.min(hour + HOUR_MS, interval.end);
    const share = length > 0 ? (until - t) / length : 0;
    const b = byStart.get(hour) ?? { start: hour, grams: 0, energyKWh: 0 };
    b.grams += interval.grams * share;
    b.energyKWh += interval.energyKWh * share;
    byStart.set(hour, b);
    t = until;
  }
  return [...byStart.values()].filter((b) => b.start + HOUR_MS > windowStart).sort((a, b) => a.start - b.start);
}

/** The cap in force: the band with the highest threshold the intensity is above, if any. */
export function capFor(
  bands: Array<{ aboveGramsPerKWh: number; maxReplicas: number }>,
  gramsPerKWh: number,
): number | undefined {
  const applying = bands.filter((b) => gramsPerKWh > b.aboveGramsPerKWh);
  if (!applying.length) return undefined;
  return applying.reduce((a, b) => (b.aboveGramsPerKWh > a.aboveGramsPerKWh ? b : a)).maxReplicas;
}

export interface PodDraw {
  cores: number;
  gpus: number;
}

/**
 * Estimated draw of pods where nothing measures it, as Cloud Carbon Footprint estimates: each requested core
 * draws idle + (busy - idle) x utilization, each GPU its rated watts.
 */
export function estimateWatts(
  pods: PodDraw[],
  model: { wattsPerCore: number; idleWattsPerCore: number; wattsPerGPU: number; utilization: number },
): number {
  const perCore = model.idleWattsPerCore + (model.wattsPerCore - model.idleWattsPerCore) * model.utilization;
  return pods.reduce((w, p) => w + p.cores * perCore + p.gpus * model.wattsPerGPU, 0);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
