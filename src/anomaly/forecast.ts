/**
 * When a metric will cross its threshold, from its recent trend: a least-squares line through the samples,
 * extended forward. A prometheus trigger with a forecast uses it to act (scale) before an overload rather than
 * after. Pure arithmetic.
 */

export interface MetricSample {
  /** Seconds, on any clock the samples share (Prometheus's Unix timestamps). */
  time: number;
  value: number;
}

export interface Forecast {
  /** The trend's change per second. */
  slope: number;
  /** The trend's value at the last sample: less noisy than the last sample itself. */
  valueNow: number;
  /** Seconds after the last sample at which the trend reaches the threshold: 0 if it already has, undefined if it
   *  does not rise. */
  secondsUntilCrossing?: number;
  /** Whether it reaches the threshold within the horizon. */
  crossesWithinHorizon: boolean;
}

/**
 * The trend of samples against a threshold the metric must stay below (CPU per replica, queue depth, p99 latency),
 * looking horizonSeconds ahead of the last sample. Undefined when the samples cannot fix a line: fewer than two
 * distinct times.
 */
export function forecastCrossing(
  samples: readonly MetricSample[],
  threshold: number,
  horizonSeconds: number,
): Forecast | undefined {
  const n = samples.length;
  if (n < 2) return undefined;
  // Times are centred on their mean before squaring: Unix seconds squared would lose the fractions to rounding.
  let meanTime = 0;
  let meanValue = 0;
  for (const s of samples) {
    meanTime += s.time / n;
    meanValue += s.value / n;
  }
  let covariance = 0;
  let variance = 0;
  let lastTime = -Infinity;
  for (const s of samples) {
    covariance += (s.time - meanTime) * (s.value - meanValue);
    variance += (s.time - meanTime) ** 2;
    lastTime = Math.max(lastTime, s.time);
  }
  if (variance === 0) return undefined;
  const slope = covariance / variance;
  const valueNow = meanValue + slope * (lastTime - meanTime);
  const secondsUntilCrossing = valueNow >= threshold ? 0 : slope > 0 ? (threshold - valueNow) / slope : undefined;
  return {
    slope,
    valueNow,
    secondsUntilCrossing,
    crossesWithinHorizon: secondsUntilCrossing !== undefined && secondsUntilCrossing <= horizonSeconds,
  };
}
