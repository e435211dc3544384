import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export interface PQKeySetMetrics {
  rotations: Counter<"algorithm" | "reason">;
  keygenSeconds: Histogram<"algorithm">;
  nextRotation: Gauge<"namespace" | "name">;
}

const byRegistry = new WeakMap<Registry, PQKeySetMetrics>();

/** The controller's metrics in a manager's registry (created once per registry). */
export function pqKeySetMetrics(registry: Registry): PQKeySetMetrics {
  let m = byRegistry.get(registry);
  if (!m) {
    m = {
      rotations: new Counter({
        name: "nextgen_pqkeyset_rotations_total",
        help: "Keys generated and stored, by algorithm and the reason for the rotation",
        labelNames: ["algorithm", "reason"],
        registers: [registry],
      }),
      keygenSeconds: new Histogram({
        name: "nextgen_pqkeyset_key_generation_seconds",
        help: "Time to generate and self-test one key pair (and sign its succession statement)",
        labelNames: ["algorithm"],
        buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30],
        registers: [registry],
      }),
      nextRotation: new Gauge({
        name: "nextgen_pqkeyset_next_rotation_timestamp_seconds",
        help: "When each key set's next scheduled rotation is due (Unix seconds)",
        labelNames: ["namespace", "name"],
        registers: [registry],
      }),
    };
    byRegistry.set(registry, m);
  }
  return m;
}
