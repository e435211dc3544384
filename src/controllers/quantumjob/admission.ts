import { type QuantumJob, QuantumJobKind } from "../../crds/quantumjob.ts";
import type { Cache } from "../../runtime/cache.ts";
import { objectKey, splitKey } from "../../runtime/objects.ts";
import { FINISHED, HOLDS_SLOT, activeJobsOn, queueOrder } from "./indexes.ts";

/**
 * Slots taken on each backend by jobs this process admitted. The cache shows a job's admission only once its
 * status write comes back; until then this ledger stops two concurrent reconciles taking the same free slot.
 */
const ledger = new Map<string, Set<string>>();

/** Whether job may take one of backend's slots now (it takes it), or waits in the backend's queue. */
export function admit(cache: Cache, backend: string, maxConcurrent: number, job: QuantumJob): boolean {
  const key = objectKey(job);
  const active = activeJobsOn(cache, backend);
  const held = ledger.get(backend) ?? new Set<string>();
  ledger.set(backend, held);
  // An entry whose job is gone or finished was released by a path that did not run here (e.g. a crash).
  for (const k of held) {
    const { namespace, name } = splitKey(k);
    const obj = cache.get<QuantumJob>(QuantumJobKind, namespace, name);
    if (k !== key && (!obj || FINISHED.includes(obj.status?.phase ?? "Pending"))) held.delete(k);
  }
  for (const j of active) if (HOLDS_SLOT.includes(j.status?.phase ?? "Pending")) held.add(objectKey(j));
  if (held.has(key)) return true;
  const queue = active.filter((j) => j.status?.phase === "Queued" && !held.has(objectKey(j)));
  if (!queue.some((j) => objectKey(j) === key)) queue.push(job);
  queue.sort(queueOrder);
  const free = Math.max(0, maxConcurrent - held.size);
  const index = queue.findIndex((j) => objectKey(j) === key);
  if (index >= free) return false;
  held.add(key);
  return true;
}

/** Gives back the slot a job held (it finished, failed, was cancelled or deleted). */
export function release(key: string): void {
  for (const held of ledger.values()) held.delete(key);
}
