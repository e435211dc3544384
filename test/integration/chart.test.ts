import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { load, loadAll } from "js-yaml";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { readManifests } from "../../src/runtime/install.ts";
import { ensureNodeAssets, selectVersion } from "../../src/controlplane/assets.ts";
import { crds } from "../../src/crds/index.ts";
import { NamespaceKind } from "../../src/runtime/kinds.ts";
import type { KubeObject } from "../../src/runtime/objects.ts";
import { kubectl } from "../e2e/harness.ts";
import { CHART, helmRunner } from "../helm.ts";
import { cluster, createNamespace } from "./harness.ts";

/*
 * The Helm chart with the real Helm: linted, rendered with its defaults and with every value set, and what it renders
 * checked by the API server (kubectl apply --server-side --dry-run=server) in a namespace enforcing the restricted
 * Pod Security Standard, as a user's would.
 */

const { admin, adminKubeconfig } = cluster();
const ROOT = resolve(import.meta.dirname, "../..");
const log = (line: string) => process.stderr.write(`[chart] ${line}\n`);
let helm: (...args: string[]) => string;
let kubectlBin: string;
let namespace: string;
const scratch = mkdtempSync(join(tmpdir(), "nextgen-chart-"));

type Container = { image: string; args: string[]; imagePullPolicy: string; resources: unknown; env: unknown[] };
type Deployment = KubeObject & {
  spec: {
    replicas: number;
    template: {
      metadata: { annotations?: Record<string, string> };
      spec: {
        containers: Container[];
        volumes: Array<{ name: string; secret?: { secretName: string } }>;
        nodeSelector?: unknown;
        tolerations?: unknown;
        affinity?: unknown;
        imagePullSecrets?: unknown;
      };
    };
  };
};

/** Every value the chart takes, set to something other than its default. */
const EVERY_VALUE = [
  "replicaCount=2",
  "image.repository=registry.example.com/team/nextgen-operator",
  "image.digest=sha256:" + "ab".repeat(32),
  "image.pullPolicy=Always",
  "imagePullSecrets[0].name=regcred",
  "leaderElection.enabled=true",
  "watchNamespaces={team-a,team-b}",
  "allowedEndpoints={http://prometheus.team-a:9090,https://api.electricitymaps.com}",
  "logLevel=debug",
  "resources.requests.memory=512Mi",
  "resources.limits.memory=768Mi",
  "podAnnotations.example\\.com/owner=platform",
  "nodeSelector.kubernetes\\.io/os=linux",
  "tolerations[0].key=dedicated",
  "tolerations[0].operator=Exists",
  "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=kubernetes.io/arch",
  "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
  "alertWebhook.enabled=true",
  "alertWebhook.secretName=my-webhook-token",
  "monitoring.serviceMonitor.enabled=true",
  "monitoring.rules.enabled=true",
  "monitoring.dashboard.enabled=true",
  "monitoring.labels.release=prom",
].flatMap((v) => ["--set", v]);

beforeAll(async () => {
  helm = await helmRunner(log);
  kubectlBin = (await ensureNodeAssets(log, selectVersion())).kubectl;
  namespace = await createNamespace(admin, "chart");
  await admin.patch(NamespaceKind, undefined, namespace, "merge", {
    metadata: { labels: { "pod-security.kubernetes.io/enforce": "restricted" } },
  });
}, 900_000);

afterAll(async () => {
  await admin.delete(NamespaceKind, undefined, namespace).catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
});

const render = (...args: string[]) =>
  (loadAll(helm("template", "nextgen-operator", CHART, "--namespace", namespace, ...args)) as KubeObject[]).filter(
    Boolean,
  );

/**
 * kubectl apply --server-side --dry-run=server of `objects`: the API server validates, defaults and admits them. The
 * setup installed the CRDs and RBAC for the other tests (as another field manager, bound to another namespace):
 * taken over, as `helm install --take-ownership` would, in this dry run only.
 */
function serverDryRun(objects: KubeObject[]): string {
  const file = join(scratch, `rendered-${Date.now()}.yaml`);
  writeFileSync(file, objects.map((o) => JSON.stringify(o)).join("\n---\n"));
  return kubectl(
    kubectlBin,
    adminKubeconfig,
    "apply",
    "--server-side",
    "--force-conflicts",
    "--dry-run=server",
    "-f",
    file,
  );
}

const byKind = (objects: KubeObject[], kind: string) => objects.filter((o) => o.kind === kind);
const deploymentOf = (objects: KubeObject[]) => byKind(objects, "Deployment")[0] as Deployment;

describe("the chart", () => {
  test("helm lint passes with the defaults and with every value set", () => {
    expect(helm("lint", "--strict", CHART)).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(helm("lint", "--strict", CHART, ...EVERY_VALUE)).toMatch(/0 chart\(s\) failed/);
  });

  test("with its defaults it renders what config/default installs, and the API server accepts all of it", async () => {
    const objects = render();
    const kustomized = [
      ...(await readManifests(join(ROOT, "config/crd"))),
      ...(await readManifests(join(ROOT, "config/rbac"))),
      ...(await readManifests(join(ROOT, "config/network-policy"))),
    ].map((o) => `${o.kind}/${o.metadata.name}`);
    const managerDocs = loadAll(readFileSync(join(ROOT, "config/manager/manager.yaml"), "utf8")) as KubeObject[];
    const expected = [...kustomized, ...managerDocs.map((o) => `${o.kind}/${o.metadata.name}`)];
    // The Namespace is Helm's (--create-namespace) or the user's; the test's pod, account and binding are `helm test`'s.
    const isTest = (o: KubeObject) => o.metadata.annotations?.["helm.sh/hook"] === "test";
    expect(
      objects
        .filter((o) => !isTest(o))
        .map((o) => `${o.kind}/${o.metadata.name}`)
        .sort(),
    ).toEqual(expected.sort());
    for (const crd of byKind(objects, "CustomResourceDefinition")) {
      expect(crd.metadata.annotations?.["helm.sh/resource-policy"]).toBe("keep");
    }
    // The Deployment is config/manager's with the chart's labels: its spec is the same but for the image's tag source.
    const [managerDeployment] = managerDocs as Deployment[];
    const rendered = deploymentOf(objects);
    const manager = (d: Deployment) => d.spec.template.spec.containers[0]!;
    expect(manager(rendered).image).toBe(manager(managerDeployment!).image);
    expect(manager(rendered).resources).toEqual(manager(managerDeployment!).resources);
    expect(manager(rendered).args).toEqual([...manager(managerDeployment!).args, "--log-level=info"]);
    expect(rendered.spec.replicas).toBe(managerDeployment!.spec.replicas);
    expect(rendered.metadata.labels).toMatchObject({
      ...managerDeployment!.metadata.labels,
      "app.kubernetes.io/managed-by": "Helm",
      "app.kubernetes.io/instance": "nextgen-operator",
    });
    const out = serverDryRun(objects);
    expect(out).toMatch(/deployment\.apps\/nextgen-operator serverside-applied \(server dry run\)/);
    expect(out).toMatch(/pod\/nextgen-operator-test-metrics serverside-applied \(server dry run\)/);
  });

  test("every value reaches the Deployment, and the API server accepts what they render", () => {
    const objects = render(...EVERY_VALUE);
    const deployment = deploymentOf(objects);
    const pod = deployment.spec.template.spec;
    const [container] = pod.containers;
    expect(deployment.spec.replicas).toBe(2);
    expect(container!.image).toBe(`registry.example.com/team/nextgen-operator@sha256:${"ab".repeat(32)}`);
    expect(container!.env).toContainEqual({ name: "NEXTGEN_RUNNER_IMAGE", value: container!.image });
    expect(container!.imagePullPolicy).toBe("Always");
    expect(container!.args).toEqual(
      expect.arrayContaining([
        "--leader-elect",
        "--log-level=debug",
        "--namespace=team-a",
        "--namespace=team-b",
        "--alert-webhook-token-file=/var/run/secrets/nextgen/alert-webhook/token",
      ]),
    );
    // The list replaces config/manager's, entry for entry.
    expect(container!.args.filter((a) => a.startsWith("--allowed-endpoints="))).toEqual([
      "--allowed-endpoints=http://prometheus.team-a:9090",
      "--allowed-endpoints=https://api.electricitymaps.com",
    ]);
    expect(container!.resources).toEqual({ requests: { cpu: "100m", memory: "512Mi" }, limits: { memory: "768Mi" } });
    expect(pod.imagePullSecrets).toEqual([{ name: "regcred" }]);
    expect(pod.nodeSelector).toEqual({ "kubernetes.io/os": "linux" });
    expect(pod.tolerations).toEqual([{ key: "dedicated", operator: "Exists" }]);
    expect(pod.affinity).toMatchObject({ nodeAffinity: {} });
    expect(deployment.spec.template.metadata.annotations).toEqual({ "example.com/owner": "platform" });
    expect(pod.volumes).toContainEqual({ name: "alert-webhook-token", secret: { secretName: "my-webhook-token" } });
    expect(byKind(objects, "Service").map((s) => s.metadata.name)).toContain("nextgen-operator-alerts");
    expect(
      byKind(objects, "NetworkPolicy")
        .map((p) => p.metadata.name)
        .sort(),
    ).toEqual(["nextgen-operator-allow-alert-webhook-traffic", "nextgen-operator-allow-metrics-traffic"]);

    // The Prometheus Operator's kinds are not served here: they are compared with config/monitoring's instead.
    const monitoringKinds = ["ServiceMonitor", "PrometheusRule"];
    for (const kind of monitoringKinds) {
      const [rendered] = byKind(objects, kind) as Array<KubeObject & { spec: unknown }>;
      const file = kind === "ServiceMonitor" ? "service-monitor.yaml" : "prometheus-rule.yaml";
      const configured = load(readFileSync(join(ROOT, "config/monitoring", file), "utf8")) as { spec: unknown };
      expect(rendered?.spec, kind).toEqual(configured.spec);
      expect(rendered?.metadata.labels?.release).toBe("prom");
    }
    const [dashboard] = byKind(objects, "ConfigMap") as Array<KubeObject & { data: Record<string, string> }>;
    expect(JSON.parse(dashboard!.data["nextgen-operator.json"]!)).toEqual(
      JSON.parse(readFileSync(join(ROOT, "config/monitoring/grafana-dashboard.json"), "utf8")),
    );
    expect(dashboard!.metadata.labels?.grafana_dashboard).toBe("1");
    serverDryRun(objects.filter((o) => !monitoringKinds.includes(o.kind)));
  });

  test("crds.enabled=false leaves the CRDs out, networkPolicy.enabled=false the NetworkPolicies; bad values are refused by the values schema", () => {
    const objects = render(
      "--set",
      "crds.enabled=false",
      "--set",
      "networkPolicy.enabled=false",
      "--set",
      "alertWebhook.enabled=true",
    );
    expect(byKind(objects, "CustomResourceDefinition")).toEqual([]);
    expect(byKind(objects, "NetworkPolicy")).toEqual([]);
    expect(byKind(objects, "Deployment")).toHaveLength(1);
    expect(() => render("--set", "logLevel=loud")).toThrow(/logLevel/);
    expect(() => render("--set", "replicaCount=0")).toThrow(/replicaCount/);
    expect(() => render("--set", "image.digest=latest")).toThrow(/digest/);
    expect(() => render("--set", "unknownValue=1")).toThrow(/unknownValue/);
  });

  test("the CRDs it renders are config/crd's", async () => {
    const rendered = byKind(render(), "CustomResourceDefinition") as Array<KubeObject & { spec: unknown }>;
    expect(rendered.map((c) => c.metadata.name).sort()).toEqual(
      crds.map((d) => `${d.kind.plural}.${d.kind.group}`).sort(),
    );
    for (const crd of (await readManifests(join(ROOT, "config/crd"))) as Array<KubeObject & { spec: unknown }>) {
      expect(rendered.find((c) => c.metadata.name === crd.metadata.name)?.spec).toEqual(crd.spec);
    }
  });
});
