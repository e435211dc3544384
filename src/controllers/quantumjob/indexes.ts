import { type JobPhase, type QuantumJob, QuantumJobKind } from "../../crds/quantumjob.ts";
import type { QueuedJob } from "../../crds/quantumbackend.ts";
import type { Cache } from "../../runtime/cache.ts";

/** QuantumJobs placed on a backend and not finished, by backend name: its running jobs and its queue. */
const ACTIVE_BY_BACKEND = "quantumjob-active-backend";
/** QuantumJobs by the QuantumBackend or ConfigMap they refer to, so changes of those reach them. */
const BY_REFERENCE = "quantumjob-reference";
/** QuantumJobs not placed yet (new, Pending, or between attempts): what a backend's change may unblock. */
const WAITING = "quantumjob-waiting";

const ACTIVE_PHASES: readonly JobPhase[] = ["Queued", "Scheduled", "Running"];
export const HOLDS_SLOT: readonly JobPhase[] = ["Scheduled", "Running"];
export const FINISHED: readonly JobPhase[] = ["Succeeded", "Failed", "Cancelled"];

/** Adds the QuantumJob indexes both quantum controllers read (idempotent: each controller's setup calls it). */
export function addQuantumJobIndexes(cache: Cache): void {
  const informer = cache.informer<QuantumJob>(QuantumJobKind);
  informer.addIndex(ACTIVE_BY_BACKEND, (j) => {
    const backend = j.status?.placement?.backend;
    return backend && j.status?.phase && ACTIVE_PHASES.includes(j.status.phase) ? [backend] : [];
  });
  informer.addIndex(WAITING, (j) => (!j.status?.phase || j.status.phase === "Pending" ? ["waiting"] : []));
  informer.addIndex(BY_REFERENCE, (j) => {
    const refs: string[] = [];
    if (j.spec.backend?.name) refs.push(`backend/${j.spec.backend.name}`);
    if (j.spec.noise?.fromBackend) refs.push(`backend/${j.spec.noise.fromBackend}`);
    if (j.spec.circuit?.configMapRef)
      refs.push(`configmap/${j.metadata.namespace}/${j.spec.circuit.configMapRef.name}`);
    return refs;
  });
}

export function activeJobsOn(cache: Cache, backend: string): QuantumJob[] {
  return cache.byIndex<QuantumJob>(QuantumJobKind, ACTIVE_BY_BACKEND, backend);
}

/** How many of a backend's queue its status shows. */
const QUEUE_HEAD_LENGTH = 10;

/** A backend's load: the jobs holding its slots, the jobs queued for one, and the first of those in order. */
export function backendLoad(
  cache: Cache,
  backend: string,
): { running: number; queued: number; queueHead: QueuedJob[] } {
  const active = activeJobsOn(cache, backend);
  const queue = queueOf(active);
  return {
    running: active.filter((j) => HOLDS_SLOT.includes(j.status?.phase ?? "Pending")).length,
    queued: queue.length,
    queueHead: queue.slice(0, QUEUE_HEAD_LENGTH).map((j, i) => ({
      position: i + 1,
      namespace: j.metadata.namespace as string,
      name: j.metadata.name,
      priority: j.spec.priority ?? 0,
    })),
  };
}

/** The first jobs of a backend's queue, in the order they will be served. */
export function queueHead(cache: Cache, backend: string, count: number): QuantumJob[] {
  return queueOf(activeJobsOn(cache, backend)).slice(0, count);
}

function queueOf(active: QuantumJob[]): QuantumJob[] {
  return active.filter((j) => j.status?.phase === "Queued").sort(queueOrder);
}

export function jobsReferring(cache: Cache, ref: string): QuantumJob[] {
  return cache.byIndex<QuantumJob>(QuantumJobKind, BY_REFERENCE, ref);
}

/** A backend's queue in the order it is served: priority (higher first), then age, then name. */
export function queueOrder(a: QuantumJob, b: QuantumJob): number {
  return (
    (b.spec.priority ?? 0) - (a.spec.priority ?? 0) ||
    (a.metadata.creationTimestamp ?? "").localeCompare(b.metadata.creationTimestamp ?? "") ||
    `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`)
  );
}

export function waitingJobs(cache: Cache): QuantumJob[] {
  return cache.byIndex<QuantumJob>(QuantumJobKind, WAITING, "waiting");
}
