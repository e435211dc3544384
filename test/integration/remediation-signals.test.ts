import { request } from "node:https";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { KwokNodes, POD_FAULT_LABEL } from "../../src/controlplane/kwok.ts";
import { Alertmanager, Prometheus } from "../../src/controlplane/monitoring.ts";
import {
  type RemediationPolicy,
  RemediationPolicyKind,
  type RemediationPolicySpec,
} from "../../src/crds/remediationpolicy.ts";
import { findCondition } from "../../src/runtime/conditions.ts";
import { ConfigMapKind, DeploymentKind, NodeKind, PodKind } from "../../src/runtime/kinds.ts";
import type { Condition } from "../../src/runtime/objects.ts";
import { floatInitializer, identity, onnxModel } from "../fixtures/onnx.ts";
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

// RemediationPolicy's signals from the real programs: a Prometheus scraping an exporter the test drives, evaluating
// an alerting rule; an Alertmanager posting to the operator's webhook; ONNX models scoring KWOK pods.

type Pod = KubeObject & { status?: { conditions?: Condition[] } };
type Deployment = KubeObject & { spec: { replicas: number } };

const { admin, operatorKubeconfig } = cluster();
const FILE = { "test.nextgen.itechsmart.io/file": "remediation-signals" };
const POOL = "test.nextgen.itechsmart.io/pool";
const nodes = new KwokNodes(admin, FILE);
const { token, file: tokenFile, remove: removeToken } = webhookToken();
/** Per-pod series the test sets: `app_errors` and `app_latency_seconds`, each labelled with namespace and pod. */
let exporter: Awaited<ReturnType<typeof startSeriesExporter>>;
const set: typeof exporter.set = (...args) => exporter.set(...args);

let operator: Awaited<ReturnType<typeof startOperator>>;
let prometheus: Prometheus;
let alertmanager: Alertmanager;
let webhook: string;

beforeAll(async () => {
  operator = await startOperator(operatorKubeconfig, [
    "--alert-webhook-token-file",
    tokenFile,
    "--alert-webhook-bind-address",
    "127.0.0.1:0",
  ]);
  webhook = `https://${operator.addresses["alert webhook"]}/alerts`;
  deleteAfterFile(admin, FILE, [RemediationPolicyKind, DeploymentKind, PodKind, ConfigMapKind, NodeKind]);
  for (const i of [1, 2]) await nodes.register(`rps-${i}`, { labels: { [POOL]: "remediation-signals" } });
  exporter = await startSeriesExporter();
  const log = (line: string) => process.stderr.write(`[monitoring] ${line}\n`);
  alertmanager = await Alertmanager.start({ webhookUrl: webhook, bearerToken: token }, log);
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

const deployment = (ns: string, name: string, replicas: number, podLabels: Record<string, string> = {}) =>
  kwokDeployment({
    namespace: ns,
    name,
    replicas,
    nodeSelector: { [POOL]: "remediation-signals" },
    labels: FILE,
    podLabels,
  });
const policy = (ns: string, name: string, spec: Partial<RemediationPolicySpec>) =>
  remediationPolicy(ns, name, FILE, spec);
const waitPolicy = (ns: string, name: string, what: string, pred: (p: RemediationPolicy) => boolean) =>
  waitForPolicy(admin, ns, name, what, pred, 90_000);
const has = hasHistory;
const condition = (p: RemediationPolicy, type: string) => findCondition(p.status?.conditions, type);
const podsOf = async (ns: string, app: string) =>
  (await admin.list<Pod>(PodKind, { namespace: ns, labelSelector: `app=${app}` })).items;
const readyPods = async (ns: string, app: string, n: number) =>
  waitUntil(
    `${n} Ready pods of ${app}`,
    async () => {
      const pods = (await podsOf(ns, app)).filter(
        (p) => !p.metadata.deletionTimestamp && findCondition(p.status?.conditions, "Ready")?.status === "True",
      );
      return pods.length === n ? pods : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );

/** A model under the operator's contract whose score is one feature (by its index in FEATURES). */
const oneFeatureModel = (feature: number) =>
  onnxModel({
    inputs: [{ name: "features", shape: ["N", 6] }],
    outputs: [{ name: "score", shape: ["N", 1] }],
    nodes: [{ op: "MatMul", inputs: ["features", "w"], output: "score" }],
    initializers: [
      floatInitializer(
        "w",
        [6, 1],
        [0, 1, 2, 3, 4, 5].map((i) => (i === feature ? 1 : 0)),
      ),
    ],
  });
const modelConfigMap = (ns: string, name: string, model: Uint8Array) =>
  admin.create(ConfigMapKind, {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: ns, labels: FILE },
    binaryData: { "model.onnx": Buffer.from(model).toString("base64") },
  } as KubeObject);

describe("RemediationPolicy signals", () => {
  test("an alert from a real Prometheus and Alertmanager restarts the pod it names; its resolution closes the incident", async () => {
    const ns = await createNamespace(admin, "rps");
    await admin.create(DeploymentKind, deployment(ns, "web", 2));
    const [sick, healthy] = await readyPods(ns, "web", 2);
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "web", {
        triggers: [{ name: "errors", alert: { alertname: "HighErrorRate", matchLabels: { service: "web" } } }],
      }),
    );
    const labels = (pod: Pod | undefined) => ({ namespace: ns, pod: pod?.metadata.name as string, service: "web" });
    set("app_errors", labels(healthy), 0);
    set("app_errors", labels(sick), 5);
    const acted = await waitPolicy(ns, "web", "RestartPod of the pod the alert names", (p) =>
      has(p, "RestartPod", "Succeeded"),
    );
    expect(acted.status?.history?.[0]?.message).toBe(`deleted pod ${sick?.metadata.name}`);
    expect(acted.status?.incidents?.[0]).toMatchObject({ trigger: "errors", pods: [sick?.metadata.name] });
    expect((await podsOf(ns, "web")).map((p) => p.metadata.uid)).toContain(healthy?.metadata.uid);

    set("app_errors", labels(sick), undefined);
    const resolved = await waitPolicy(ns, "web", "Resolved", (p) => has(p, "RestartPod", "Resolved"));
    expect(resolved.status?.incidents ?? []).toEqual([]);
    expect(
      await operator.metric("nextgen_remediation_alert_webhook_requests_total", { outcome: "accepted" }),
    ).toBeGreaterThanOrEqual(2);
  });

  test("minAvailable: of three pods an alert names, only as many restart as leave 75% available; the brake is reported", async () => {
    const ns = await createNamespace(admin, "rps");
    await admin.create(DeploymentKind, deployment(ns, "api", 4));
    const pods = await readyPods(ns, "api", 4);
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "api", {
        triggers: [{ name: "errors", alert: { alertname: "HighErrorRate", matchLabels: { service: "api" } } }],
        actions: [{ restartPod: {}, timeout: "5m" }],
        safety: { minAvailable: "75%" } as never,
      }),
    );
    // Replacements stay Pending while the Nodes are cordoned: what a restart takes away stays away, as it does while
    // a real pod starts, however fast KWOK would make one Ready.
    const cordon = (unschedulable: boolean) =>
      Promise.all(
        [1, 2].map((i) => admin.patch(NodeKind, undefined, `rps-${i}`, "merge", { spec: { unschedulable } })),
      );
    await cordon(true);
    for (const p of pods.slice(0, 3)) set("app_errors", { namespace: ns, pod: p.metadata.name, service: "api" }, 5);
    const held = await waitPolicy(ns, "api", "held by MinAvailable", (p) =>
      (p.status?.history ?? []).some((h) => h.result === "Held" && h.message?.startsWith("MinAvailable")),
    ).finally(() => cordon(false));
    const first = held.status?.history?.find((h) => h.result === "Succeeded");
    expect(first?.message).toMatch(/^deleted pod [a-z0-9-]+$/);
    expect(held.status?.history?.find((h) => h.result === "Held")?.message).toMatch(
      /^MinAvailable: 3 of 4 pods available; acting would leave 2, below minAvailable 3\.$/,
    );
    for (const p of pods) set("app_errors", { namespace: ns, pod: p.metadata.name, service: "api" }, undefined);
  });

  test("the webhook refuses a wrong token and a payload that is not Alertmanager's, and counts both", async () => {
    const unauthorized = () =>
      operator.metric("nextgen_remediation_alert_webhook_requests_total", { outcome: "unauthorized" });
    const bad = () => operator.metric("nextgen_remediation_alert_webhook_requests_total", { outcome: "bad_request" });
    const [u0, b0] = [await unauthorized(), await bad()];
    // HTTPS with the operator's self-signed certificate, as Alertmanager posts with insecure_skip_verify.
    const post = (authorization: string, body: string) =>
      new Promise<number | undefined>((resolve, reject) => {
        const headers = { authorization, "content-type": "application/json" };
        request(webhook, { method: "POST", headers, rejectUnauthorized: false, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode);
        })
          .on("error", reject)
          .end(body);
      });
    expect(await post("Bearer wrong", JSON.stringify({ version: "4", alerts: [] }))).toBe(401);
    expect(await post(`Bearer ${token}`, JSON.stringify({ version: "3" }))).toBe(400);
    expect(await unauthorized()).toBe(u0 + 1);
    expect(await bad()).toBe(b0 + 1);
    // Neither the token nor the payload reaches the log.
    expect(operator.logs).not.toContain(token);
  });

  test("a PromQL trigger scales out when the workload's latency is high, and the count is restored exactly once healthy", async () => {
    const ns = await createNamespace(admin, "rps");
    await admin.create(DeploymentKind, deployment(ns, "slow", 2));
    await readyPods(ns, "slow", 2);
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "slow", {
        prometheus: { url: prometheus.url, interval: "1s" },
        triggers: [
          {
            name: "latency",
            prometheus: { query: `max(app_latency_seconds{namespace="${ns}"})`, above: "0.5", for: "1s" },
          },
        ],
        actions: [{ scale: { by: 1, max: 4 }, timeout: "5s" }],
        safety: { cooldown: "3s" } as never,
      }),
    );
    // No series yet: no data is Unknown, never firing.
    const blind = await waitPolicy(ns, "slow", "NoData", (p) => condition(p, "SignalsAvailable")?.reason === "NoData");
    expect(blind.status?.incidents ?? []).toEqual([]);

    set("app_latency_seconds", { namespace: ns }, 0.9);
    const scaled = await waitPolicy(ns, "slow", "scaled out", (p) => has(p, "Scale", "Succeeded"));
    expect(scaled.status?.scaled).toEqual([{ target: "Deployment/slow", field: "replicas", original: 2, current: 3 }]);
    expect((await admin.get<Deployment>(DeploymentKind, ns, "slow"))?.spec.replicas).toBe(3);

    set("app_latency_seconds", { namespace: ns }, 0.1);
    await waitPolicy(ns, "slow", "restored", (p) => has(p, "Scale", "Restored"));
    expect((await admin.get<Deployment>(DeploymentKind, ns, "slow"))?.spec.replicas).toBe(2);
    set("app_latency_seconds", { namespace: ns }, undefined);
  });

  test("a forecast fires on a rising trend before the bound is crossed", async () => {
    const ns = await createNamespace(admin, "rps");
    await admin.create(DeploymentKind, deployment(ns, "rising", 1));
    await readyPods(ns, "rising", 1);
    // Rises by 1 a second from 0: it would reach 100 after 100 s.
    const start = Date.now();
    const rise = setInterval(() => set("queue_depth", { namespace: ns }, (Date.now() - start) / 1000), 200);
    try {
      await admin.create(
        RemediationPolicyKind,
        policy(ns, "rising", {
          prometheus: { url: prometheus.url, interval: "1s" },
          triggers: [
            {
              name: "queue",
              prometheus: {
                query: `queue_depth{namespace="${ns}"}`,
                above: "100",
                for: "0s",
                forecast: { horizon: "5m", lookback: "20s" },
              },
            },
          ],
          actions: [{ scale: { by: 1, max: 2 }, timeout: "1m" }],
        }),
      );
      await waitPolicy(ns, "rising", "scaled ahead of the overload", (p) => has(p, "Scale", "Succeeded"));
      const [now] = await prometheus.query(`queue_depth{namespace="${ns}"}`);
      expect(now?.value).toBeLessThan(100);
    } finally {
      clearInterval(rise);
      set("queue_depth", { namespace: ns }, undefined);
    }
  });

  test("ONNX models: the default autoencoder, the failure model and a model from a ConfigMap flag a crash-looping pod; a model of the wrong shape is ModelInvalid", async () => {
    const ns = await createNamespace(admin, "rps");
    await admin.create(DeploymentKind, deployment(ns, "ae", 1, { [POD_FAULT_LABEL]: "crashloop" }));
    await admin.create(DeploymentKind, deployment(ns, "fail", 1, { [POD_FAULT_LABEL]: "crashloop" }));
    await admin.create(DeploymentKind, deployment(ns, "mine", 1));
    await admin.create(DeploymentKind, deployment(ns, "theirs", 1, { [POD_FAULT_LABEL]: "crashloop" }));
    // A model a user brings, under the contract: its score is the restarts feature (restarts / 5).
    await modelConfigMap(ns, "restarts", oneFeatureModel(0));
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "theirs", {
        triggers: [
          {
            name: "theirs",
            anomaly: { model: { configMapRef: { name: "restarts", key: "model.onnx" } }, threshold: "0.1", for: "0s" },
          },
        ],
      }),
    );
    await modelConfigMap(ns, "model", identity({ name: "x", shape: ["N", 5] }, { name: "score", shape: ["N", 5] }));
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "ae", {
        triggers: [{ name: "anomaly", anomaly: { model: { default: true }, threshold: "0.95", for: "0s" } }],
      }),
    );
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "fail", {
        triggers: [{ name: "failure", anomaly: { model: { builtin: "failure" }, threshold: "0.8", for: "0s" } }],
      }),
    );
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "mine", {
        triggers: [
          {
            name: "mine",
            anomaly: { model: { configMapRef: { name: "model", key: "model.onnx" } }, threshold: "0.5", for: "0s" },
          },
        ],
      }),
    );
    const invalid = await waitPolicy(
      ns,
      "mine",
      "ModelInvalid",
      (p) => condition(p, "SignalsAvailable")?.reason === "ModelInvalid",
    );
    expect(condition(invalid, "SignalsAvailable")?.message).toMatch(
      /^mine: the model's input does not match: expected one float32 input \[N, 6\] .*, found x: float32 \[N, 5\]$/,
    );
    expect(invalid.status?.triggers?.[0]).toMatchObject({ state: "Unknown", reason: "ModelInvalid" });
    for (const name of ["ae", "fail"]) {
      const p = await waitPolicy(ns, name, "the crash-looping pod scored and restarted", (x) =>
        has(x, "RestartPod", "Succeeded"),
      );
      expect(p.status?.history?.[0]?.trigger).toBe(name === "ae" ? "anomaly" : "failure");
    }
    expect(
      await operator.metric("nextgen_remediation_model_scoring_seconds_count", { model: "autoencoder" }),
    ).toBeGreaterThan(0);
  });

  test("errorRatio is measured by the trigger's own query and scored; status says which features were defaulted", async () => {
    const ns = await createNamespace(admin, "rps");
    await admin.create(DeploymentKind, deployment(ns, "errors", 2));
    const [failing, fine] = await readyPods(ns, "errors", 2);
    // A model a user brings, under the contract: its score is the errorRatio feature.
    await modelConfigMap(ns, "errors", oneFeatureModel(5));
    const model = { configMapRef: { name: "errors", key: "model.onnx" } };
    set("app_error_ratio", { namespace: ns, pod: failing?.metadata.name as string }, 0.9);
    set("app_error_ratio", { namespace: ns, pod: fine?.metadata.name as string }, 0.01);
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "errors", {
        prometheus: { url: prometheus.url, interval: "1s" },
        triggers: [
          {
            name: "errors",
            anomaly: {
              model,
              threshold: "0.5",
              for: "0s",
              errorRatio: { query: `app_error_ratio{namespace="${ns}"}` },
            },
          },
        ],
      }),
    );
    const p = await waitPolicy(ns, "errors", "the failing pod restarted", (x) => has(x, "RestartPod", "Succeeded"));
    expect(p.status?.history?.[0]?.message).toBe(`deleted pod ${failing?.metadata.name}`);
    expect((await podsOf(ns, "errors")).map((x) => x.metadata.uid)).toContain(fine?.metadata.uid);
    // No cAdvisor series and no limits: CPU and memory were not observed (nor, for the replacement pod, errors).
    expect(p.status?.triggers?.[0]?.defaultedFeatures).toEqual(expect.arrayContaining(["cpuRatio", "memoryRatio"]));

    // Without the query the feature takes its typical healthy value: the same model finds nothing, and status says
    // the error ratio was not measured.
    await admin.create(DeploymentKind, deployment(ns, "unmeasured", 1));
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "unmeasured", {
        triggers: [{ name: "errors", anomaly: { model, threshold: "0.5", for: "0s" } }],
      }),
    );
    const q = await waitPolicy(ns, "unmeasured", "scored", (x) => Boolean(x.status?.triggers?.[0]?.defaultedFeatures));
    expect(q.status?.triggers?.[0]).toMatchObject({
      state: "Clear",
      defaultedFeatures: ["cpuRatio", "errorRatio", "memoryRatio"],
    });
  });
});
