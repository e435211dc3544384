/**
 * The features an anomaly model scores a pod by: what the operator sees of it from the API server (restarts, OOM
 * kills, readiness) and from Prometheus (CPU, memory, the application's error ratio) over the last
 * FEATURE_WINDOW_SECONDS, each on a fixed dimensionless scale so that one model serves pods of any size. Pure
 * arithmetic, no API calls.
 *
 * The order of FEATURES is the column order of a model's input. The default models in ./models were trained on
 * exactly these (hack/models/train.py keeps a copy; the unit tests check the two agree), and a model a user brings
 * receives the same rows.
 */

/** The window the counts and fractions are taken over: the default models were trained on 10-minute windows. */
export const FEATURE_WINDOW_SECONDS = 600;

export interface Feature {
  name: string;
  /** What the value measures, and how it is made dimensionless. */
  description: string;
  /** The range the value is clipped to. */
  min: number;
  max: number;
  /**
   * The value used when the operator cannot observe the feature (no metrics, no limit set, no application
   * metrics): a typical healthy value, so that an unobserved signal neither raises nor lowers the score. The
   * default models were trained with the same values standing in for a share of each one's rows.
   */
  fill?: number;
}

export const FEATURES: readonly Feature[] = [
  {
    name: "restarts",
    description:
      "container restarts in the window, summed over the pod's containers, divided by 5 (a crash-looping " +
      "container's back-off allows about 5 restarts in 10 minutes)",
    min: 0,
    max: 1,
  },
  {
    name: "oomKills",
    description: "containers terminated with reason OOMKilled in the window, divided by 3",
    min: 0,
    max: 1,
  },
  {
    name: "notReadyFraction",
    description: "the fraction of the window the pod's Ready condition was not True",
    min: 0,
    max: 1,
  },
  {
    name: "cpuRatio",
    description:
      "CPU usage (cores, rate over the window) divided by the pod's CPU limit, or its request where no limit is " +
      "set: near 1 at a limit means throttling",
    min: 0,
    max: 2,
    fill: 0.3,
  },
  {
    name: "memoryRatio",
    description:
      "memory working set divided by the pod's memory limit, where the OOM killer acts; absent without a limit, " +
      "since a request is no cliff",
    min: 0,
    max: 1,
    fill: 0.45,
  },
  {
    name: "errorRatio",
    description: "failed requests divided by all requests in the window, from the application's own metrics",
    min: 0,
    max: 1,
    fill: 0.002,
  },
];

/** What the operator observed of one pod over the window; Prometheus-derived fields are absent when unknown. */
export interface PodObservation {
  restarts: number;
  oomKills: number;
  /** Seconds of the window the pod was not Ready. */
  notReadySeconds: number;
  windowSeconds: number;
  cpuUsageCores?: number;
  cpuLimitCores?: number;
  cpuRequestCores?: number;
  memoryWorkingSetBytes?: number;
  memoryLimitBytes?: number;
  /** Failed over total requests; absent when the application exports none, or served none in the window. */
  errorRatio?: number;
}

const clip = (value: number, feature: Feature) => Math.min(feature.max, Math.max(feature.min, value));

/** The feature value at index i: the observation scaled and clipped, or the feature's fill when unobserved. */
function featureValue(i: number, value: number | undefined): number {
  const feature = FEATURES[i] as Feature;
  if (value === undefined || !Number.isFinite(value)) return feature.fill ?? feature.min;
  return clip(value, feature);
}

const ratio = (numerator: number | undefined, denominator: number | undefined) =>
  numerator === undefined || !denominator ? undefined : numerator / denominator;

/** A pod's features before scaling and clipping, in FEATURES order; undefined where the operator has no value. */
function rawFeatures(o: PodObservation): Array<number | undefined> {
  return [
    o.restarts / 5,
    o.oomKills / 3,
    ratio(o.notReadySeconds, o.windowSeconds) ?? 0,
    ratio(o.cpuUsageCores, o.cpuLimitCores || o.cpuRequestCores),
    ratio(o.memoryWorkingSetBytes, o.memoryLimitBytes),
    o.errorRatio,
  ];
}

/** The features a pod's row takes its fill for, because the observation lacks what they are made of. */
export function defaultedFeatures(o: PodObservation): string[] {
  return rawFeatures(o).flatMap((v, i) =>
    v === undefined || !Number.isFinite(v) ? [(FEATURES[i] as Feature).name] : [],
  );
}

/** Writes a pod's features into rows at row (rows is N × FEATURES.length, row-major), so a batch needs no copies. */
export function writeFeatureRow(observation: PodObservation, rows: Float32Array, row: number): void {
  const at = row * FEATURES.length;
  rawFeatures(observation).forEach((v, i) => {
    rows[at + i] = featureValue(i, v);
  });
}

/** One pod's features as a model's input row. */
export function featureRow(observation: PodObservation): Float32Array {
  const row = new Float32Array(FEATURES.length);
  writeFeatureRow(observation, row, 0);
  return row;
}

/** Many pods' features as one batch: N × FEATURES.length, row-major, as a model takes it. */
export function featureRows(observations: readonly PodObservation[]): Float32Array {
  const rows = new Float32Array(observations.length * FEATURES.length);
  observations.forEach((o, i) => writeFeatureRow(o, rows, i));
  return rows;
}
