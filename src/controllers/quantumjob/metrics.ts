import { Counter, Histogram, type Registry } from "prom-client";

export interface QuantumJobMetrics {
  finished: Counter<"phase" | "reason">;
  queueWait: Histogram<"backend_type">;
  placement: Histogram;
}

const byRegistry = new WeakMap<Registry, QuantumJobMetrics>();

/** Outcomes, waits and placement time; labels are bounded (phases, reasons of the controller's own, types). */
export function quantumJobMetrics(registry: Registry): QuantumJobMetrics {
  let m = byRegistry.get(registry);
  if (m) return m;
  m = {
    finished: new Counter({
      name: "nextgen_quantumjob_finished_total",
      help: "QuantumJobs that ended, by phase (Succeeded, Failed, Cancelled) and reason",
      labelNames: ["phase", "reason"],
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: "nextgen_quantumjob_queue_wait_seconds",
      help: "From a QuantumJob's creation to its first run starting (placement, deferral and queueing)",
      labelNames: ["backend_type"],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14_400, 86_400],
      registers: [registry],
    }),
    placement: new Histogram({
      name: "nextgen_quantum_placement_decision_seconds",
      help: "Time to score every backend and choose one for a QuantumJob",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers: [registry],
    }),
  };
  byRegistry.set(registry, m);
  return m;
}
