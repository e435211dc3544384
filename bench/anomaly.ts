import { type PodObservation, featureRows } from "../src/anomaly/features.ts";
import { type DefaultModelName, loadDefaultModel } from "../src/anomaly/model.ts";
import { percentile } from "../src/edge/health.ts";

const PODS = 1000;
const WARM_UP_RUNS = 50;
const RUNS = 200;

/**
 * 1 000 pods as varied as a fleet: most healthy at assorted loads, some without Prometheus metrics or a memory
 * limit, one in twenty crash-looping with its memory near the limit. Deterministic, so runs compare.
 */
function fleet(): PodObservation[] {
  return Array.from({ length: PODS }, (_, i): PodObservation => {
    const load = ((i * 37) % 100) / 100;
    const sick = i % 20 === 0;
    const metrics = i % 10 !== 5;
    return {
      restarts: sick ? 5 : i % 97 === 0 ? 1 : 0,
      oomKills: sick && i % 40 === 0 ? 1 : 0,
      notReadySeconds: sick ? 400 : 0,
      windowSeconds: 600,
      ...(metrics && {
        cpuUsageCores: 0.05 + 0.6 * load,
        cpuLimitCores: 1,
        memoryWorkingSetBytes: (sick ? 0.97 : 0.3 + 0.3 * load) * 2 ** 30,
        memoryLimitBytes: i % 7 === 0 ? undefined : 2 ** 30,
        errorRatio: i % 3 === 0 ? undefined : 0.001 + 0.004 * load,
      }),
    };
  });
}

/** Milliseconds per call of work, over RUNS calls after WARM_UP_RUNS, ascending. */
async function time(work: () => Promise<unknown> | unknown): Promise<number[]> {
  for (let i = 0; i < WARM_UP_RUNS; i++) await work();
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    await work();
    samples.push(performance.now() - start);
  }
  return samples;
}

/**
 * Scoring 1 000 pods in one batch with each default model, as the anomaly trigger does on every evaluation (the
 * target: under 10 ms), and building their feature rows. No cluster: the arithmetic alone, on one ONNX Runtime
 * thread as the operator runs it.
 */
export async function benchAnomaly(): Promise<Record<string, string | number>> {
  const pods = fleet();
  const rows = featureRows(pods);
  const figures: Record<string, string | number> = {
    // What is timed is ONNX Runtime's own run and the feature rows' arithmetic: no operator overhead to take away.
    "ratio = operator / floor": "n/a (the scoring itself, nothing of the operator around it)",
  };
  const features = await time(() => featureRows(pods));
  const over = `${PODS} pods (${RUNS} runs after ${WARM_UP_RUNS} to warm up)`;
  figures[`featureRows, ${over}: p50 ms`] = percentile(features, 50)?.toFixed(3) as string;
  figures[`featureRows, ${over}: p99 ms`] = percentile(features, 99)?.toFixed(3) as string;
  for (const name of ["autoencoder", "failure"] satisfies DefaultModelName[]) {
    const { model, metadata } = await loadDefaultModel(name);
    try {
      const scores = await model.score(rows);
      const flagged = scores.filter((s) => s >= metadata.threshold).length;
      const samples = await time(() => model.score(rows));
      const row = `${name} model scoring ${over} in one batch`;
      figures[`${row}: p50 ms`] = percentile(samples, 50)?.toFixed(3) as string;
      figures[`${row}: p99 ms`] = percentile(samples, 99)?.toFixed(3) as string;
      figures[`${row}: max ms`] = Math.max(...samples).toFixed(3);
      figures[`${name} model: pods of the ${PODS} at or above its threshold ${metadata.threshold}`] = flagged;
    } finally {
      await model.close();
    }
  }
  return figures;
}
