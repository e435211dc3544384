import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { QueueObserver } from "./queue.ts";

const exponentialBuckets = (start: number, factor: number, count: number) =>
  Array.from({ length: count }, (_, i) => start * factor ** i);

/** The runtime's metrics, under controller-runtime's names so existing dashboards and alerts work unchanged. */
export class RuntimeMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({
    name: "controller_runtime_reconcile_total",
    help: "Total number of reconciliations per controller",
    labelNames: ["controller", "result"],
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: "controller_runtime_reconcile_errors_total",
    help: "Total number of reconciliation errors per controller",
    labelNames: ["controller"],
    registers: [this.registry],
  });
  readonly terminalReconcileErrors = new Counter({
    name: "controller_runtime_terminal_reconcile_errors_total",
    help: "Total number of terminal reconciliation errors per controller",
    labelNames: ["controller"],
    registers: [this.registry],
  });
  readonly reconcileTime = new Histogram({
    name: "controller_runtime_reconcile_time_seconds",
    help: "Length of time per reconciliation per controller",
    labelNames: ["controller"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly activeWorkers = new Gauge({
    name: "controller_runtime_active_workers",
    help: "Number of currently used workers per controller",
    labelNames: ["controller"],
    registers: [this.registry],
  });
  readonly maxConcurrentReconciles = new Gauge({
    name: "controller_runtime_max_concurrent_reconciles",
    help: "Maximum number of concurrent reconciles per controller",
    labelNames: ["controller"],
    registers: [this.registry],
  });
  /** Shows, per peer, that connections negotiate the hybrid post-quantum key exchange (README, TLS). */
  readonly tlsHandshakes = new Counter({
    name: "nextgen_tls_handshakes_total",
    help: "TLS connections opened, by peer and the key-exchange group and protocol they negotiated",
    labelNames: ["peer", "group", "protocol"],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: "workqueue_depth",
    help: "Current depth of workqueue",
    labelNames: ["name", "controller"],
    registers: [this.registry],
  });
  readonly queueAdds = new Counter({
    name: "workqueue_adds_total",
    help: "Total number of adds handled by workqueue",
    labelNames: ["name", "controller"],
    registers: [this.registry],
  });
  readonly queueDuration = new Histogram({
    name: "workqueue_queue_duration_seconds",
    help: "How long in seconds an item stays in workqueue before being requested",
    labelNames: ["name", "controller"],
    buckets: exponentialBuckets(1e-8, 10, 12),
    registers: [this.registry],
  });
  readonly workDuration = new Histogram({
    name: "workqueue_work_duration_seconds",
    help: "How long in seconds processing an item from workqueue takes",
    labelNames: ["name", "controller"],
    buckets: exponentialBuckets(1e-8, 10, 12),
    registers: [this.registry],
  });
  readonly queueRetries = new Counter({
    name: "workqueue_retries_total",
    help: "Total number of retries handled by workqueue",
    labelNames: ["name", "controller"],
    registers: [this.registry],
  });
  readonly restRequests = new Counter({
    name: "rest_client_requests_total",
    help: "Number of HTTP requests to the API server, partitioned by method and status code",
    labelNames: ["method", "code"],
    registers: [this.registry],
  });
  readonly leaderElection = new Gauge({
    name: "leader_election_master_status",
    help: "1 while this process leads, 0 while it stands by",
    labelNames: ["name"],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  queueObserver(controller: string): QueueObserver {
    const l = { name: controller, controller };
    // Each controller's series exist from the start: a queue that never backs up (its workers take keys as they
    // come) would otherwise never show a depth, and dashboards and alerts would see no queue at all.
    this.queueDepth.set(l, 0);
    this.queueAdds.inc(l, 0);
    this.queueRetries.inc(l, 0);
    return {
      added: () => this.queueAdds.inc(l),
      depth: (n) => this.queueDepth.set(l, n),
      queued: (s) => this.queueDuration.observe(l, s),
      worked: (s) => this.workDuration.observe(l, s),
      retried: () => this.queueRetries.inc(l),
    };
  }
}
