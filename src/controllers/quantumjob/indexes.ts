import { type JobPhase, type QuantumJob, QuantumJobKind } from "../../crds/quantumjob.ts";
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

/** A backend's load: the jobs holding its slots, and the jobs queued for one. */
export function backendLoad(cache: Cache, backend: string): { running: number; queued: number } {
  const active = activeJobsOn(cache, backend);
  return {
    running: active.filter((j) => HOLDS_SLOT.includes(j.status?.phase ?? "Pending")).length,
    queued: active.filter((j) => j.status?.phase === "Queued").length,
  };
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
