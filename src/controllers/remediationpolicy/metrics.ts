import { Counter, Histogram, type Registry } from "prom-client";

export interface RemediationMetrics {
  actions: Counter<"namespace" | "policy" | "action" | "result">;
  detectionToAction: Histogram<"action">;
  scoring: Histogram<"model">;
  webhookRequests: Counter<"outcome">;
}

const byRegistry = new WeakMap<Registry, RemediationMetrics>();

export function remediationMetrics(registry: Registry): RemediationMetrics {
  let m = byRegistry.get(registry);
  if (m) return m;
  m = {
    actions: new Counter({
      name: "nextgen_remediation_actions_total",
      help: "Remediation actions by policy, action and result (Succeeded, Failed, DryRun, Held, Reverted, Restored)",
      labelNames: ["namespace", "policy", "action", "result"],
      registers: [registry],
    }),
    detectionToAction: new Histogram({
      name: "nextgen_remediation_detection_to_action_seconds",
      help: "From an incident opening to its first action",
      labelNames: ["action"],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    scoring: new Histogram({
      name: "nextgen_remediation_model_scoring_seconds",
      help: "Time to score one workload's pods with an ONNX model",
      labelNames: ["model"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers: [registry],
    }),
    webhookRequests: new Counter({
      name: "nextgen_remediation_alert_webhook_requests_total",
      help: "Requests to the Alertmanager webhook receiver by outcome (accepted, unauthorized, bad_request, not_found)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
  };
  byRegistry.set(registry, m);
  return m;
}
