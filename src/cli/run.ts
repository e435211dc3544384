import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { controllers } from "../controllers/index.ts";
import { alertStore, nodeGateLimits } from "../controllers/remediationpolicy/controller.ts";
import {
  ALLOWED_ENDPOINTS_FLAG,
  type AllowedEndpoint,
  allowedEndpoints,
  parseAllowedEndpoints,
} from "../controllers/shared/endpoints.ts";
import { remediationMetrics } from "../controllers/remediationpolicy/metrics.ts";
import { parseDuration } from "../crds/duration.ts";
import { alertWebhookHandler } from "../remediation/alerts.ts";
import { LEADER_ELECTION_ID, OPERATOR_NAMESPACE } from "../runtime/identity.ts";
import { KubeClient } from "../runtime/client.ts";
import { LOG_LEVELS, type LogLevel, Logger } from "../runtime/log.ts";
import { Manager } from "../runtime/manager.ts";
import { UsageError, parse } from "./args.ts";

export const FIELD_MANAGER = "nextgen-operator";

export const runHelp = `Usage: nextgen-operator run [flags]

Runs the operator's manager: every controller, leader election, metrics and health probes.

Flags (each also read from the environment variable in brackets; a flag wins):
  --kubeconfig PATH                  kubeconfig to use [KUBECONFIG]; default: in-cluster service account
  --metrics-bind-address ADDR        where /metrics listens, "0" to disable (default ":8443") [NEXTGEN_METRICS_BIND_ADDRESS]
  --metrics-secure BOOL              serve /metrics over HTTPS to authenticated, authorized readers only (TokenReview,
                                     SubjectAccessReview); false: plain HTTP to anyone (default true) [NEXTGEN_METRICS_SECURE]
  --metrics-cert-dir DIR             tls.crt and tls.key for /metrics (a mounted Secret); default: self-signed [NEXTGEN_METRICS_CERT_DIR]
  --health-probe-bind-address ADDR   where /healthz and /readyz listen (default ":8081") [NEXTGEN_HEALTH_PROBE_BIND_ADDRESS]
  --leader-elect                     elect a leader on a Lease before reconciling [NEXTGEN_LEADER_ELECT=true]
  --leader-election-namespace NS     namespace of the Lease (default: the pod's namespace, else ${OPERATOR_NAMESPACE}) [NEXTGEN_LEADER_ELECTION_NAMESPACE]
  --namespace NS                     watch only this namespace; repeatable (default: all) [NEXTGEN_NAMESPACES, comma-separated]
  --concurrency NAME=N               MaxConcurrentReconciles of one controller; repeatable [NEXTGEN_CONCURRENCY, comma-separated]
  --alert-webhook-token-file PATH    serve Alertmanager's webhook (POST /alerts) for RemediationPolicy alert triggers,
                                     guarded by the bearer token in this file (a mounted Secret) [NEXTGEN_ALERT_WEBHOOK_TOKEN_FILE]
  --alert-webhook-bind-address ADDR  where the webhook listens, over HTTPS (default ":8082") [NEXTGEN_ALERT_WEBHOOK_BIND_ADDRESS]
  --alert-webhook-cert-dir DIR       tls.crt and tls.key for the webhook (a mounted Secret); default: self-signed
                                     [NEXTGEN_ALERT_WEBHOOK_CERT_DIR]
  --alert-webhook-expiry DURATION    a firing alert the webhook has not repeated for this long is dropped: above
                                     Alertmanager's repeat_interval + group_interval (default "4h10m") [NEXTGEN_ALERT_WEBHOOK_EXPIRY]
  --max-unschedulable-nodes N|P%     RemediationPolicy drainNode never leaves more Nodes unschedulable than this, whoever
                                     cordoned them (default "10%", rounded up) [NEXTGEN_MAX_UNSCHEDULABLE_NODES]
  --node-storm-threshold P%          drainNode stops while this share of Nodes or more is not Ready (default "30%")
                                     [NEXTGEN_NODE_STORM_THRESHOLD]
  --allowed-endpoints URL,...        the only URLs CarbonBudgets and RemediationPolicies may have the operator send requests
                                     to: prefixes scheme://host[:port|:*][/path] (no port: the scheme's default; * any);
                                     repeatable; default: none, so an object naming a URL is reported EndpointNotAllowed
                                     [NEXTGEN_ALLOWED_ENDPOINTS, comma-separated]
  --log-level LEVEL                  ${LOG_LEVELS.join(" | ")} (default "info") [NEXTGEN_LOG_LEVEL]
  -h, --help                         show this help`;

const SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

export interface RunConfig {
  kubeconfig?: string;
  metricsAddress: string;
  metricsSecure: boolean;
  metricsCertDir?: string;
  probeAddress: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  namespaces?: string[];
  concurrency: Record<string, number>;
  /** The Alertmanager webhook: served only when a token file is given. */
  alertWebhook?: { address: string; tokenFile: string; expiryMs: number; certDir?: string };
  /** Bounds on RemediationPolicy's node actions. */
  nodeGate: { maxUnschedulable: string; stormThreshold: string };
  /** Where tenants' objects may have the operator send requests (src/controllers/shared/endpoints.ts). */
  allowedEndpoints: AllowedEndpoint[];
  logLevel: LogLevel;
}

export function parseRunConfig(args: string[], env: NodeJS.ProcessEnv): RunConfig | "help" {
  const { values } = parse("run", args, {
    kubeconfig: { type: "string" },
    "metrics-bind-address": { type: "string" },
    "metrics-secure": { type: "string" },
    "metrics-cert-dir": { type: "string" },
    "health-probe-bind-address": { type: "string" },
    "leader-elect": { type: "boolean" },
    "leader-election-namespace": { type: "string" },
    namespace: { type: "string", multiple: true },
    concurrency: { type: "string", multiple: true },
    "log-level": { type: "string" },
    "alert-webhook-token-file": { type: "string" },
    "alert-webhook-bind-address": { type: "string" },
    "alert-webhook-expiry": { type: "string" },
    "alert-webhook-cert-dir": { type: "string" },
    "max-unschedulable-nodes": { type: "string" },
    "node-storm-threshold": { type: "string" },
    "allowed-endpoints": { type: "string", multiple: true },
  });
  if (values.help) return "help";
  const list = (v: string | undefined) =>
    v
      ?.split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  const logLevel = values["log-level"] ?? env.NEXTGEN_LOG_LEVEL ?? "info";
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    throw new UsageError(`run: --log-level must be one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`);
  }
  const concurrency: Record<string, number> = {};
  for (const item of values.concurrency ?? list(env.NEXTGEN_CONCURRENCY) ?? []) {
    const m = /^([a-z0-9-]+)=([1-9][0-9]*)$/.exec(item);
    if (!m) throw new UsageError(`run: --concurrency takes NAME=N with N a positive integer, got "${item}"`);
    concurrency[m[1] as string] = Number(m[2]);
  }
  const addr = (flag: string, v: string) => {
    if (v !== "0" && !/^[^:]*:\d{1,5}$/.test(v))
      throw new UsageError(`run: ${flag} must be HOST:PORT, :PORT or 0, got "${v}"`);
    return v;
  };
  let podNamespace: string | undefined;
  try {
    podNamespace = readFileSync(SA_NAMESPACE_FILE, "utf8").trim();
  } catch {
    // not in a pod
  }
  const alertTokenFile = values["alert-webhook-token-file"] ?? env.NEXTGEN_ALERT_WEBHOOK_TOKEN_FILE;
  if (alertTokenFile) readToken(alertTokenFile); // a missing or empty file is a usage error now, not a 401 later
  const metricsSecure = values["metrics-secure"] ?? env.NEXTGEN_METRICS_SECURE ?? "true";
  if (!["true", "false"].includes(metricsSecure)) {
    throw new UsageError(`run: --metrics-secure must be true or false, got "${metricsSecure}"`);
  }
  const leaderEnv = env.NEXTGEN_LEADER_ELECT;
  if (leaderEnv !== undefined && !["true", "false"].includes(leaderEnv)) {
    throw new UsageError(`run: NEXTGEN_LEADER_ELECT must be true or false, got "${leaderEnv}"`);
  }
  return {
    kubeconfig: values.kubeconfig ?? env.KUBECONFIG,
    metricsAddress: addr(
      "--metrics-bind-address",
      values["metrics-bind-address"] ?? env.NEXTGEN_METRICS_BIND_ADDRESS ?? ":8443",
    ),
    metricsSecure: metricsSecure === "true",
    metricsCertDir: values["metrics-cert-dir"] ?? env.NEXTGEN_METRICS_CERT_DIR,
    probeAddress: addr(
      "--health-probe-bind-address",
      values["health-probe-bind-address"] ?? env.NEXTGEN_HEALTH_PROBE_BIND_ADDRESS ?? ":8081",
    ),
    leaderElect: values["leader-elect"] ?? leaderEnv === "true",
    leaderElectionNamespace:
      values["leader-election-namespace"] ??
      env.NEXTGEN_LEADER_ELECTION_NAMESPACE ??
      podNamespace ??
      OPERATOR_NAMESPACE,
    namespaces: values.namespace ?? list(env.NEXTGEN_NAMESPACES),
    concurrency,
    alertWebhook: alertTokenFile
      ? {
          tokenFile: alertTokenFile,
          address: addr(
            "--alert-webhook-bind-address",
            values["alert-webhook-bind-address"] ?? env.NEXTGEN_ALERT_WEBHOOK_BIND_ADDRESS ?? ":8082",
          ),
          expiryMs: duration(
            "--alert-webhook-expiry",
            values["alert-webhook-expiry"] ?? env.NEXTGEN_ALERT_WEBHOOK_EXPIRY ?? "4h10m",
          ),
          certDir: values["alert-webhook-cert-dir"] ?? env.NEXTGEN_ALERT_WEBHOOK_CERT_DIR,
        }
      : undefined,
    nodeGate: {
      maxUnschedulable: percent(
        "--max-unschedulable-nodes",
        values["max-unschedulable-nodes"] ?? env.NEXTGEN_MAX_UNSCHEDULABLE_NODES ?? "10%",
        true,
      ),
      stormThreshold: percent(
        "--node-storm-threshold",
        values["node-storm-threshold"] ?? env.NEXTGEN_NODE_STORM_THRESHOLD ?? "30%",
      ),
    },
    allowedEndpoints: endpoints(
      values["allowed-endpoints"]?.flatMap((v) => list(v) ?? []) ?? list(env.NEXTGEN_ALLOWED_ENDPOINTS) ?? [],
    ),
    logLevel: logLevel as LogLevel,
  };
}

function endpoints(entries: string[]): AllowedEndpoint[] {
  try {
    return parseAllowedEndpoints(entries);
  } catch (e) {
    throw new UsageError(`run: ${ALLOWED_ENDPOINTS_FLAG}: ${(e as Error).message}`);
  }
}

function duration(flag: string, v: string): number {
  try {
    return parseDuration(v);
  } catch {
    throw new UsageError(`run: ${flag} must be a duration such as 4h10m, got "${v}"`);
  }
}

/** A percentage from 0% to 100%, or with counts allowed a whole number too. */
function percent(flag: string, v: string, counts = false): string {
  if (!/^(100|[1-9]?[0-9])%$/.test(v) && !(counts && /^[0-9]+$/.test(v)))
    throw new UsageError(`run: ${flag} must be a ${counts ? "count or a " : ""}percentage (0% to 100%), got "${v}"`);
  return v;
}

/** The token in a file, trimmed (Secrets mounted from `kubectl create secret --from-literal` have no newline; others may). */
function readToken(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, "utf8").trim();
  } catch (e) {
    throw new UsageError(`run: --alert-webhook-token-file: ${(e as Error).message}`);
  }
  if (!token) throw new UsageError(`run: --alert-webhook-token-file ${file} is empty`);
  return token;
}

export async function runCommand(args: string[]): Promise<number> {
  const cfg = parseRunConfig(args, process.env);
  if (cfg === "help") return (console.log(runHelp), 0);
  const unknown = Object.keys(cfg.concurrency).filter((n) => !controllers.some((c) => c.name === n));
  if (unknown.length) throw new UsageError(`run: --concurrency names unknown controllers: ${unknown.join(", ")}`);

  const log = new Logger(cfg.logLevel, { logger: "manager" });
  const client = KubeClient.load(cfg.kubeconfig, FIELD_MANAGER);
  const identity = `${process.env.POD_NAME ?? hostname()}_${randomUUID()}`;
  const manager = new Manager({
    client,
    log,
    namespaces: cfg.namespaces,
    metricsAddress: cfg.metricsAddress,
    metricsSecure: cfg.metricsSecure,
    metricsCertDir: cfg.metricsCertDir,
    probeAddress: cfg.probeAddress,
    concurrency: cfg.concurrency,
    leaderElection: cfg.leaderElect
      ? { namespace: cfg.leaderElectionNamespace, name: LEADER_ELECTION_ID, identity }
      : undefined,
  });
  for (const c of controllers) manager.add(c);
  Object.assign(nodeGateLimits, cfg.nodeGate);
  allowedEndpoints.push(...cfg.allowedEndpoints);
  const hook = cfg.alertWebhook;
  if (hook) {
    alertStore.expireAfterMs = hook.expiryMs;
    const requests = remediationMetrics(manager.metrics.registry).webhookRequests;
    const handle = alertWebhookHandler(
      alertStore,
      () => readToken(hook.tokenFile),
      (outcome) => requests.inc({ outcome }),
    );
    manager.serve("alert webhook", hook.address, handle, hook.certDir);
  }

  const stop = new AbortController();
  const onSignal = (sig: string) => {
    if (stop.signal.aborted) {
      log.warn("second signal: exiting without draining", { signal: sig });
      process.exit(1);
    }
    log.info("shutting down: draining reconciles in flight", { signal: sig });
    stop.abort();
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  log.info("starting", {
    identity,
    namespaces: cfg.namespaces ?? "all",
    leaderElect: cfg.leaderElect,
    allowedEndpoints: cfg.allowedEndpoints.map((a) => a.entry),
  });
  const reason = await manager.run(stop.signal);
  await client.close();
  return reason === "signal" ? 0 : 1;
}
