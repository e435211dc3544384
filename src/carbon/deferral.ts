/**
 * When a deferrable job of a CarbonBudget should start, given a forecast of grid intensity. Pure arithmetic on
 * IntensityPoint steps; nothing here talks to Kubernetes.
 */
import type { IntensityPoint } from "./intensity.ts";

/** Why a job starts when it does. */
export type StartReason = "LowestForecast" | "NoForecast" | "Deadline";

/** When to start a job, and the intensity the forecast gives for that instant when it gives one. */
export interface StartDecision {
  startAt: number;
  gramsPerKWh?: number;
  reason: StartReason;
}

/**
 * The instant at which a job allowed to start within [notBefore, notAfter] should start, decided at now.
 *
 * The job may start at any instant of [from, notAfter], from = max(now, notBefore), both ends included. Each step of
 * the forecast offers its first instant within that interval (max(step.start, from), so a step that began before the
 * interval counts from its start) with the step's intensity. The decision is the instant with the lowest intensity,
 * the earliest of those tied for it (reason LowestForecast): waiting longer for the same intensity only risks the
 * deadline. Instants no step covers (gaps, beyond the forecast) are unknown, so they are never chosen however
 * high the known intensities are. The steps may come in any order.
 *
 * - now at or after notAfter: start now (reason Deadline), forecast or not.
 * - No step covers any instant of the interval: start at from (reason NoForecast), as soon as allowed, since
 *   waiting on nothing known cannot be shown to save anything.
 * - notBefore after notAfter: the deadline wins, and the interval is the single instant notAfter.
 */
export function bestStart(
  forecast: IntensityPoint[],
  window: { notBefore: number; notAfter: number },
  now: number,
): StartDecision {
  const { notBefore, notAfter } = window;
  if (now >= notAfter) return { startAt: now, reason: "Deadline" };
  const from = Math.min(Math.max(now, notBefore), notAfter);
  let best: { startAt: number; gramsPerKWh: number } | undefined;
  for (const step of forecast) {
    const startAt = Math.max(step.start, from);
    // An empty step, one that ended before from or one that begins after notAfter offers no instant.
    if (startAt >= step.end || startAt > notAfter) continue;
    if (
      !best ||
      step.gramsPerKWh < best.gramsPerKWh ||
      (step.gramsPerKWh === best.gramsPerKWh && startAt < best.startAt)
    ) {
      best = { startAt, gramsPerKWh: step.gramsPerKWh };
    }
  }
  if (!best) return { startAt: from, reason: "NoForecast" };
  return { ...best, reason: "LowestForecast" };
}
