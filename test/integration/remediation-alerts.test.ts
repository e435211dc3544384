import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { KwokNodes } from "../../src/controlplane/kwok.ts";
import { Alertmanager, Prometheus } from "../../src/controlplane/monitoring.ts";
import { RemediationPolicyKind } from "../../src/crds/remediationpolicy.ts";
import { OPERATOR_NAMESPACE } from "../../src/runtime/identity.ts";
import { DeploymentKind, NodeKind, PodKind } from "../../src/runtime/kinds.ts";
import {
  type KubeObject,
  cluster,
  createNamespace,
  deleteAfterFile,
  kwokDeployment,
  startOperator,
  waitUntil,
} from "./harness.ts";
import {
  HIGH_ERROR_RATE_RULES,
  hasHistory,
  remediationPolicy,
  startSeriesExporter,
  waitForPolicy,
  webhookToken,
} from "./remediation-helpers.ts";

// Two operator replicas under leader election and a real Prometheus and Alertmanager whose webhook reaches only the
// standby, as a Service may route every notification to the pod that is not leading: the leader's decisions must
// see the alert, and its resolution, all the same.

type Pod = KubeObject & { status?: { conditions?: Array<{ type: string; status: string }> } };

const { admin, operatorKubeconfig } = cluster();
const FILE = { "test.nextgen.itechsmart.io/file": "remediation-alerts" };
const POOL = "test.nextgen.itechsmart.io/pool";
const nodes = new KwokNodes(admin, FILE);
const { token, file: tokenFile, remove: removeToken } = webhookToken();

type Operator = Awaited<ReturnType<typeof startOperator>>;
let leader: Operator;
let standby: Operator;
let prometheus: Prometheus;
let alertmanager: Alertmanager;
let exporter: Awaited<ReturnType<typeof startSeriesExporter>>;

beforeAll(async () => {
  const args = [
    "--leader-elect",
    "--leader-election-namespace",
    OPERATOR_NAMESPACE,
    "--alert-webhook-token-file",
    tokenFile,
    "--alert-webhook-bind-address",
    "127.0.0.1:0",
  ];
  leader = await startOperator(operatorKubeconfig, args);
  await waitUntil("the first replica to lead", async () => (await leader.state()) === "leading", {
    timeoutMs: 60_000,
  });
  standby = await startOperator(operatorKubeconfig, args);
  expect(await standby.state()).not.toBe("leading");
  const webhook = await waitUntil("the standby's webhook to listen", async () => standby.addresses["alert webhook"], {
    timeoutMs: 30_000,
  });
  deleteAfterFile(admin, FILE, [RemediationPolicyKind, DeploymentKind, PodKind, NodeKind]);
  await nodes.register("rpa-1", { labels: { [POOL]: "remediation-alerts" } });
  exporter = await startSeriesExporter();
  const log = (line: string) => process.stderr.write(`[monitoring] ${line}\n`);
  alertmanager = await Alertmanager.start({ webhookUrl: `https://${webhook}/alerts`, bearerToken: token }, log);
  prometheus = await Prometheus.start(
    { scrapeJobs: { app: [exporter.address] }, ruleFiles: [HIGH_ERROR_RATE_RULES], alertmanagerUrl: alertmanager.url },
    log,
  );
});
afterAll(async () => {
  await prometheus?.stop();
  await alertmanager?.stop();
  await exporter?.close();
  removeToken();
});

describe("alerts with two operator replicas", () => {
  test("an alert, and its resolution, delivered to the standby drive the leader's incident through Alertmanager's API", async () => {
    const ns = await createNamespace(admin, "rpa");
    await admin.create(
      DeploymentKind,
      kwokDeployment({
        namespace: ns,
        name: "web",
        replicas: 2,
        nodeSelector: { [POOL]: "remediation-alerts" },
        labels: FILE,
      }),
    );
    const [sick, healthy] = await waitUntil(
      "2 Ready pods",
      async () => {
        const pods = (await admin.list<Pod>(PodKind, { namespace: ns, labelSelector: "app=web" })).items.filter((p) =>
          p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
        );
        return pods.length === 2 ? pods : undefined;
      },
      { timeoutMs: 60_000 },
    );
    await admin.create(
      RemediationPolicyKind,
      remediationPolicy(ns, "web", FILE, {
        alertmanager: { url: alertmanager.url, interval: "1s" },
        triggers: [{ name: "errors", alert: { alertname: "HighErrorRate", matchLabels: { service: "web" } } }],
      }),
    );
    const labels = (pod: Pod | undefined) => ({ namespace: ns, pod: pod?.metadata.name as string, service: "web" });
    exporter.set("app_errors", labels(healthy), 0);
    exporter.set("app_errors", labels(sick), 5);
    const acted = await waitForPolicy(admin, ns, "web", "RestartPod of the pod the alert names", (p) =>
      hasHistory(p, "RestartPod", "Succeeded"),
    );
    expect(acted.status?.history?.[0]?.message).toBe(`deleted pod ${sick?.metadata.name}`);

    // Every notification goes to the standby; the leader learns of the alert from Alertmanager's API, possibly
    // before Alertmanager's first notification: the alert stays firing until the standby has had it, for a
    // resolution that comes before any notification is never sent (nothing was notified to resolve).
    const accepted = (op: Operator) =>
      op.metric("nextgen_remediation_alert_webhook_requests_total", { outcome: "accepted" });
    const standbyReceived = (what: string, count: number) =>
      waitUntil(`the standby to have received ${what}`, async () => (await accepted(standby)) >= count, {
        timeoutMs: 30_000,
      }).catch((e: Error) => {
        throw new Error(`${e.message}; Alertmanager's log:\n${alertmanager.output()}`);
      });
    await standbyReceived("the firing alert", 1);

    exporter.set("app_errors", labels(sick), undefined);
    const resolved = await waitForPolicy(admin, ns, "web", "Resolved", (p) => hasHistory(p, "RestartPod", "Resolved"));
    expect(resolved.status?.incidents ?? []).toEqual([]);
    await standbyReceived("the resolution", 2);
    // The leader received none.
    expect(await accepted(leader)).toBe(0);
    // Alertmanager (Go) posted over TLS 1.3 with the hybrid post-quantum key exchange the webhook prefers.
    const handshakes = (group: string) =>
      standby.metric("nextgen_tls_handshakes_total", { peer: "alert webhook client", group, protocol: "TLSv1.3" });
    expect(await handshakes("X25519MLKEM768")).toBeGreaterThanOrEqual(1);
    expect(await handshakes("X25519")).toBe(0);
    expect(await leader.state()).toBe("leading");
  });
});
