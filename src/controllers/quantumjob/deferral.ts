import { bestStart } from "../../carbon/deferral.ts";
import { type CarbonBudget, CarbonBudgetKind } from "../../crds/carbonbudget.ts";
import type { QuantumJob } from "../../crds/quantumjob.ts";
import type { Cache } from "../../runtime/cache.ts";
import { gridSignals } from "../carbonbudget/grid-signals.ts";

/** How long a deferrable job waits for its budget's first forecast after an operator start. */
const FORECAST_WAIT_MS = 2_000;
/** A start this close is now: waiting less than this saves nothing and costs a reconcile. */
const START_SLACK_MS = 500;

export type Timing =
  | {
      wait: true;
      until: number;
      reason: "NotBefore" | "Deferred" | "WaitingForForecast";
      message: string;
      gramsPerKWh?: number;
    }
  | { wait: false; reason?: string; message?: string; gramsPerKWh?: number };

/**
 * When a job may start. schedule.notBefore always holds. A deferrable job in a namespace whose CarbonBudget defers
 * QuantumJobs (Enforce mode) starts at the lowest forecast intensity in [notBefore, notAfter]; at notAfter it starts
 * whatever the forecast says, and without a usable forecast it starts at once (the budget's IntensityDataStale
 * says why). A time once given (status.schedule.deferredUntil) holds across operator restarts until a forecast
 * is back.
 */
export function jobTiming(job: QuantumJob, now: number, cache: Cache): Timing {
  const schedule = job.spec.schedule;
  const notBefore = schedule?.notBefore ? Date.parse(schedule.notBefore) : 0;
  const notAfter = schedule?.notAfter ? Date.parse(schedule.notAfter) : Infinity;
  const ns = job.metadata.namespace as string;
  const deferring = cache
    .list<CarbonBudget>(CarbonBudgetKind, { namespace: ns })
    .some((b) => b.spec.mode === "Enforce" && b.spec.actions?.deferQuantumJobs && !b.metadata.deletionTimestamp);
  const grid = gridSignals.forNamespace(ns);
  if (!schedule?.deferrable || !deferring || (grid && !grid.deferQuantumJobs))
    return notBefore > now ? waitForNotBefore(notBefore) : { wait: false };
  if (now >= notAfter)
    return { wait: false, reason: "Deadline", message: `schedule.notAfter (${iso(notAfter)}) reached: starting now.` };
  if (!grid) {
    const given = job.status?.schedule?.deferredUntil ? Date.parse(job.status.schedule.deferredUntil) : undefined;
    if (given !== undefined && given > now)
      return {
        wait: true,
        until: Math.min(given, notAfter),
        reason: "Deferred",
        message: `Deferred until ${iso(given)}.`,
      };
    return {
      wait: true,
      until: Math.min(now + FORECAST_WAIT_MS, notAfter),
      reason: "WaitingForForecast",
      message: "Waiting for the namespace's CarbonBudget to read its forecast.",
    };
  }
  if (!grid.forecast)
    return notBefore > now
      ? waitForNotBefore(notBefore)
      : {
          wait: false,
          reason: "NoForecast",
          message: `CarbonBudget ${grid.budget} has no usable forecast: starting now.`,
        };
  const best = bestStart(grid.forecast, { notBefore, notAfter }, now);
  if (best.startAt > now + START_SLACK_MS)
    return {
      wait: true,
      until: best.startAt,
      reason: "Deferred",
      gramsPerKWh: best.gramsPerKWh,
      message:
        `Deferred by CarbonBudget ${grid.budget} to ${iso(best.startAt)}, the lowest forecast intensity ` +
        `(${best.gramsPerKWh} g/kWh) before ${iso(notAfter)}.`,
    };
  return {
    wait: false,
    reason: best.reason,
    gramsPerKWh: best.gramsPerKWh,
    message:
      best.reason === "LowestForecast"
        ? `Starting at the lowest forecast intensity in its window (${best.gramsPerKWh} g/kWh).`
        : `CarbonBudget ${grid.budget}'s forecast does not cover the window: starting now.`,
  };
}

function waitForNotBefore(notBefore: number): Timing {
  return {
    wait: true,
    until: notBefore,
    reason: "NotBefore",
    message: `Starts at schedule.notBefore, ${iso(notBefore)}.`,
  };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
