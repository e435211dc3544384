import { Gauge, type Registry } from "prom-client";

export interface BackendReading {
  queued: number;
  running: number;
  /** Jobs the backend runs at once (spec.capacity.maxConcurrentJobs). */
  capacity: number;
  ready: boolean;
}

export interface QuantumBackendMetrics {
  record(backend: string, reading: BackendReading): void;
  forget(backend: string): void;
}

const byRegistry = new WeakMap<Registry, QuantumBackendMetrics>();

/**
 * Per-backend load and readiness, set by each reconcile (on the leader only, so a standby exports no second copy)
 * from the live job index rather than the status, whose load is written at most every few seconds.
 */
export function quantumBackendMetrics(registry: Registry): QuantumBackendMetrics {
  let m = byRegistry.get(registry);
  if (m) return m;
  const perBackend = (name: string, help: string) =>
    new Gauge({ name, help, labelNames: ["backend"] as const, registers: [registry] });
  const queued = perBackend("nextgen_quantumbackend_queued_jobs", "QuantumJobs queued for a slot of the backend");
  const running = perBackend("nextgen_quantumbackend_running_jobs", "QuantumJobs holding a slot of the backend");
  const capacity = perBackend(
    "nextgen_quantumbackend_capacity_jobs",
    "QuantumJobs the backend runs at once (spec.capacity.maxConcurrentJobs)",
  );
  const ready = perBackend(
    "nextgen_quantumbackend_ready",
    "1 while the backend is Ready for work, 0 while Unavailable",
  );
  const gauges = [queued, running, capacity, ready];
  m = {
    record(backend, reading) {
      queued.set({ backend }, reading.queued);
      running.set({ backend }, reading.running);
      capacity.set({ backend }, reading.capacity);
      ready.set({ backend }, reading.ready ? 1 : 0);
    },
    forget(backend) {
      for (const g of gauges) g.remove({ backend });
    },
  };
  byRegistry.set(registry, m);
  return m;
}
