import { MAX_COUNTS_IN_STATUS, type QuantumJob, type QuantumJobStatus } from "../../crds/quantumjob.ts";
import { topCountEntries } from "../../quantum/counts.ts";
import type { ReconcileContext } from "../../runtime/controller.ts";
import { ConfigMapKind } from "../../runtime/kinds.ts";
import { type KubeObject, isControlledBy } from "../../runtime/objects.ts";
import type { Observation } from "./execution.ts";
import { JOB_LABEL } from "./batch-job.ts";

const RESULT_KEY = "counts.json";
/** A ConfigMap holds at most 1 MiB; the histogram keeps its most frequent bitstrings within this. */
const MAX_HISTOGRAM_BYTES = 900_000;

/**
 * status.result for a finished run: the most frequent bitstrings, and a ConfigMap (owned by the job) with the
 * whole histogram when it has more than status shows.
 */
export async function recordResult(
  ctx: ReconcileContext,
  job: QuantumJob,
  run: Extract<Observation, { state: "Succeeded" }>,
): Promise<NonNullable<QuantumJobStatus["result"]>> {
  const distinct = run.distinct ?? Object.keys(run.counts).length;
  // Entries, not a record: JavaScript lists integer-like keys ("11", "101") first, whatever their counts.
  const top = topCountEntries(run.counts, MAX_COUNTS_IN_STATUS);
  const counts = Object.fromEntries(top);
  const [bits, topCount] = top[0] ?? ["", 0];
  const result: NonNullable<QuantumJobStatus["result"]> = {
    shots: run.shots,
    counts,
    distinct,
    topResult: run.shots ? `${bits} (${((100 * topCount) / run.shots).toFixed(1)}%)` : "",
    ...(run.failedShots ? { failedShots: run.failedShots } : {}),
    ...(run.device ? { device: run.device } : {}),
    ...(run.precision ? { precision: run.precision } : {}),
  };
  const name = `${job.metadata.name.slice(0, 246)}-result`;
  const existing = ctx.cache.get(ConfigMapKind, job.metadata.namespace, name);
  // A ConfigMap of that name that is not this job's is left alone: the histogram is not worth someone's data.
  if (existing && !isControlledBy(existing, job))
    ctx.events.warning(
      job,
      "ResultNotStored",
      `ConfigMap ${name} exists and is not this job's; the full histogram is not stored.`,
    );
  else if (Object.keys(run.counts).length > MAX_COUNTS_IN_STATUS) {
    await ctx.apply<KubeObject & { data: Record<string, string> }>(
      ConfigMapKind,
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name, namespace: job.metadata.namespace, labels: { [JOB_LABEL]: job.metadata.name } },
        data: { [RESULT_KEY]: histogramJson(run.counts) },
      },
      { owner: job },
    );
    result.resultRef = { name, key: RESULT_KEY };
  }
  return result;
}

/** Counts as JSON, most frequent first, cut to what a ConfigMap holds. */
function histogramJson(counts: Record<string, number>): string {
  const kept: Record<string, number> = {};
  let bytes = 2;
  for (const [bits, n] of topCountEntries(counts, Number.MAX_SAFE_INTEGER)) {
    bytes += bits.length + String(n).length + 4;
    if (bytes > MAX_HISTOGRAM_BYTES) break;
    kept[bits] = n;
  }
  return JSON.stringify(kept);
}
