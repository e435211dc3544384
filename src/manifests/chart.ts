import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dump, load, loadAll } from "js-yaml";
import { pinnedVersions } from "../controlplane/assets.ts";
import { ALLOWED_ENDPOINTS_FLAG } from "../controllers/shared/endpoints.ts";
import { LOG_LEVELS } from "../runtime/log.ts";

/**
 * The Helm chart charts/nextgen-operator, generated from what config/ is made of: the CRDs, RBAC and monitoring the
 * generator writes (passed in as `config`, the paths and contents it wrote) and the hand-written kustomize bases it
 * reads (config/manager, config/alert-webhook). A change to either reaches the chart with the next
 * `npm run manifests`, and the same drift check covers both.
 *
 * Templates are built as objects and dumped as YAML, with markers where Helm's template actions go (`action`,
 * `block`, ...), replaced in the dumped text by `helmTemplate`: the YAML stays the generator's, only the values become Helm's.
 */

export const CHART_DIR = "charts/nextgen-operator";
const NAME = "nextgen-operator";
const ALLOWED_ENDPOINTS_ARG = `${ALLOWED_ENDPOINTS_FLAG}=`;

type Leaf = { default: unknown; description: string; schema: Record<string, unknown> };
type ValuesTree = { [key: string]: Leaf | ValuesTree };
const isLeaf = (v: Leaf | ValuesTree): v is Leaf => "description" in v && typeof v.description === "string";

/** The chart's values: defaults (some read from config/manager), what each does, and the schema Helm checks them with. */
function valuesTree(manager: Deployment, webhookPatch: JsonPatchOp[]): ValuesTree {
  const container = manager.spec.template.spec.containers[0]!;
  const [repository, tag] = container.image.split(":") as [string, string];
  const webhookVolume = webhookPatch.find((op) => op.path.endsWith("/volumes/-"))?.value as {
    secret: { secretName: string };
  };
  const object = { type: "object" };
  const list = { type: "array" };
  return {
    replicaCount: {
      default: manager.spec.replicas,
      description:
        "Operator pods. With leader election only the Lease holder reconciles; a second replica stands by, ready, and takes over when the leader stops renewing.",
      schema: { type: "integer", minimum: 1 },
    },
    image: {
      repository: {
        default: repository,
        description: "The operator's image (also the image job-mode QuantumBackends run circuits in).",
        schema: { type: "string", minLength: 1 },
      },
      tag: {
        default: "",
        description: `The image's tag; empty: the chart's appVersion (${tag}).`,
        schema: { type: "string" },
      },
      digest: {
        default: "",
        description: "A digest (sha256:...) to pin the image by; wins over the tag.",
        schema: { type: "string", pattern: "^(sha256:[0-9a-f]{64})?$" },
      },
      pullPolicy: {
        default: "IfNotPresent",
        description: "The container's imagePullPolicy.",
        schema: { enum: ["Always", "IfNotPresent", "Never"] },
      },
    },
    imagePullSecrets: {
      default: [],
      description: "Secrets to pull the image with, as `[{name: regcred}]`.",
      schema: { ...list, items: { type: "object", required: ["name"] } },
    },
    leaderElection: {
      enabled: {
        default: true,
        description:
          "Elect a leader on a Lease (`--leader-elect`) before reconciling; needed for more than one replica.",
        schema: { type: "boolean" },
      },
    },
    watchNamespaces: {
      default: [],
      description: "Namespaces to watch (`--namespace`, one each); empty: all namespaces.",
      schema: { ...list, items: { type: "string", minLength: 1 } },
    },
    allowedEndpoints: {
      default: container.args
        .filter((a) => a.startsWith(ALLOWED_ENDPOINTS_ARG))
        .map((a) => a.slice(ALLOWED_ENDPOINTS_ARG.length)),
      description:
        "The only URLs CarbonBudgets and RemediationPolicies may have the operator send requests to (`--allowed-endpoints`, one each): prefixes `scheme://host[:port|:*][/path]`. Empty: none; an object naming another URL reports `EndpointNotAllowed` and nothing is sent.",
      schema: { ...list, items: { type: "string", pattern: "^https?://" } },
    },
    logLevel: {
      default: "info",
      description: "`--log-level`.",
      schema: { enum: LOG_LEVELS },
    },
    resources: {
      default: container.resources,
      description: "The operator container's resources (README, Sizing: raise memory with the fleet).",
      schema: object,
    },
    podAnnotations: { default: {}, description: "Annotations on the operator's pods.", schema: object },
    nodeSelector: { default: {}, description: "The operator pods' nodeSelector.", schema: object },
    tolerations: { default: [], description: "The operator pods' tolerations.", schema: list },
    affinity: { default: {}, description: "The operator pods' affinity.", schema: object },
    networkPolicy: {
      enabled: {
        default: true,
        description:
          "NetworkPolicies admitting only scrapes of the metrics port from namespaces labelled `metrics: enabled` (and `helm test`'s pod), and with the alert webhook, Alertmanager's posts from namespaces labelled `alerts: enabled`.",
        schema: { type: "boolean" },
      },
    },
    crds: {
      enabled: {
        default: true,
        description:
          "Install and upgrade the CRDs with the release. They carry `helm.sh/resource-policy: keep`: uninstalling never deletes them, so the objects stored in them stay.",
        schema: { type: "boolean" },
      },
    },
    alertWebhook: {
      enabled: {
        default: false,
        description:
          "Serve Alertmanager's webhook (port 8082, Service nextgen-operator-alerts) for RemediationPolicy alert triggers.",
        schema: { type: "boolean" },
      },
      secretName: {
        default: webhookVolume.secret.secretName,
        description: "The Secret (key `token`) holding the bearer token Alertmanager must send; create it first.",
        schema: { type: "string", minLength: 1 },
      },
    },
    monitoring: {
      serviceMonitor: {
        enabled: {
          default: false,
          description: "A ServiceMonitor for the operator's metrics (needs the Prometheus Operator's CRDs).",
          schema: { type: "boolean" },
        },
      },
      rules: {
        enabled: {
          default: false,
          description: "The alerting and SLO rules as a PrometheusRule (needs the Prometheus Operator's CRDs).",
          schema: { type: "boolean" },
        },
      },
      dashboard: {
        enabled: {
          default: false,
          description: 'The Grafana dashboard as a ConfigMap labelled `grafana_dashboard: "1"` for Grafana\'s sidecar.',
          schema: { type: "boolean" },
        },
      },
      labels: {
        default: { release: "kube-prometheus-stack" },
        description:
          "Labels on the ServiceMonitor and PrometheusRule: kube-prometheus-stack selects them by its release's name.",
        schema: object,
      },
    },
  };
}

function leaves(tree: ValuesTree, prefix = ""): Array<[string, Leaf]> {
  return Object.entries(tree).flatMap(([k, v]) =>
    isLeaf(v) ? [[`${prefix}${k}`, v] as [string, Leaf]] : leaves(v, `${prefix}${k}.`),
  );
}

function valuesYaml(tree: ValuesTree, indent = ""): string {
  return Object.entries(tree)
    .map(([key, v]) => {
      if (!isLeaf(v)) return `${indent}${key}:\n${valuesYaml(v, `${indent}  `)}`;
      const comment = `${indent}# -- ${v.description}\n`;
      const value = dump({ [key]: v.default }, { lineWidth: -1 })
        .trimEnd()
        .split("\n")
        .map((l) => indent + l)
        .join("\n");
      return `${comment}${value}\n`;
    })
    .join("");
}

function valuesSchema(tree: ValuesTree): Record<string, unknown> {
  return {
    type: "object",
    additionalProperties: false,
    properties: Object.fromEntries(
      Object.entries(tree).map(([k, v]) => [
        k,
        isLeaf(v) ? { description: v.description, ...v.schema } : valuesSchema(v),
      ]),
    ),
  };
}

/** The values table of the chart's README (and of the README's install section). */
export function valuesTable(tree: ValuesTree): string {
  const cell = (s: string) => s.replaceAll("|", "\\|");
  const rows = leaves(tree).map(
    ([path, leaf]) => `| \`${path}\` | \`${cell(JSON.stringify(leaf.default))}\` | ${cell(leaf.description)} |`,
  );
  return ["| Value | Default | What it does |", "| --- | --- | --- |", ...rows].join("\n");
}

// --- markers, replaced by Helm's template actions in the dumped YAML ---

/** A scalar: the output of a template action. */
const action = (expr: string) => `__V:${expr}__`;
/** A key whose value is the YAML of a value, the key left out when that value is empty. */
const block = (valuesPath: string) => `__BLOCK:${valuesPath}__`;
/** List items between `open` and `close` are rendered under a template action (if, range). */
const open = (act: string) => `__BEGIN:${act}__`;
const close = "__END__";
/** A map key (its value unused): the named template's YAML lines, merged into that map. */
const include = (template: string) => `__INCLUDE:${template}__`;
/** A map key (its value unused): a values map's entries, merged into that map. */
const merge = (valuesPath: string) => `__MERGE:${valuesPath}__`;
/** A key's value: a file of the chart, as YAML. */
const file = (path: string) => `__FILE:${path}__`;
/** A key's value: a file of the chart, as a literal block of text. */
const textFile = (path: string) => `__TEXTFILE:${path}__`;

function helmTemplate(obj: unknown, condition?: string): string {
  const text = dump(obj, { lineWidth: -1, noRefs: true })
    .split("\n")
    .flatMap((line): string[] => {
      const indentOf = (m: RegExpExecArray) => m[1]!.length;
      let m: RegExpExecArray | null;
      if ((m = /^(\s*)(\S+): '?__BLOCK:(.+?)__'?$/.exec(line))) {
        const [pad, key, path] = [m[1]!, m[2]!, m[3]!];
        return [
          `${pad}{{- with .Values.${path} }}`,
          `${pad}${key}:`,
          `${pad}  {{- toYaml . | nindent ${indentOf(m) + 2} }}`,
          `${pad}{{- end }}`,
        ];
      }
      if ((m = /^(\s*)- '?__BEGIN:(.+?)__'?$/.exec(line))) return [`${m[1]}{{- ${m[2]} }}`];
      if ((m = /^(\s*)- '?__END__'?$/.exec(line))) return [`${m[1]}{{- end }}`];
      if ((m = /^(\s*)'?__INCLUDE:(.+?)__'?: .*$/.exec(line))) {
        return [`${m[1]}{{- include "${m[2]}" . | nindent ${indentOf(m)} }}`];
      }
      if ((m = /^(\s*)'?__MERGE:(.+?)__'?: .*$/.exec(line))) {
        return [
          `${m[1]}{{- with .Values.${m[2]} }}`,
          `${m[1]}{{- toYaml . | nindent ${indentOf(m)} }}`,
          `${m[1]}{{- end }}`,
        ];
      }
      if ((m = /^(\s*)(\S+): '?__FILE:(.+?)__'?$/.exec(line))) {
        return [`${m[1]}${m[2]}:`, `${m[1]}  {{- .Files.Get "${m[3]}" | nindent ${indentOf(m) + 2} }}`];
      }
      if ((m = /^(\s*)(\S+): '?__TEXTFILE:(.+?)__'?$/.exec(line))) {
        return [`${m[1]}${m[2]}: |-`, `${m[1]}  {{- .Files.Get "${m[3]}" | nindent ${indentOf(m) + 2} }}`];
      }
      return [line.replace(/'?__V:(.+?)__'?/g, (_, expr: string) => `{{ ${expr.replaceAll("''", "'")} }}`)];
    })
    .join("\n")
    .trimEnd();
  const body = `${text}\n`;
  return header + (condition ? `{{- if ${condition} }}\n${body}{{- end }}\n` : body);
}

const header = "# Generated by `npm run manifests` from src/ and config/. Do not edit by hand.\n";

type Container = {
  image: string;
  args: string[];
  env: Array<{ name: string; value?: string }>;
  ports: unknown[];
  volumeMounts: unknown[];
  resources: unknown;
  [k: string]: unknown;
};
type Deployment = {
  metadata: { namespace?: string; labels: Record<string, string>; [k: string]: unknown };
  spec: {
    replicas: number;
    template: {
      metadata: { labels: Record<string, string>; [k: string]: unknown };
      spec: { containers: Container[]; volumes: unknown[]; [k: string]: unknown };
    };
    [k: string]: unknown;
  };
  [k: string]: unknown;
};
type Obj = {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string | null> };
  [k: string]: unknown;
};
type JsonPatchOp = { op: string; path: string; value: unknown };

const RELEASE_NAMESPACE = action(".Release.Namespace");
const IMAGE = action(`include "${NAME}.image" .`);

/** Standard labels on top of the object's own (selectors keep config/'s, so a kustomize install can be adopted). */
function withChartLabels<T extends Obj>(obj: T, namespaced: boolean): T {
  const { name, namespace: _namespace, labels, ...rest } = obj.metadata;
  return {
    ...obj,
    metadata: {
      name,
      ...(namespaced && { namespace: RELEASE_NAMESPACE }),
      ...rest,
      labels: { ...labels, [include(`${NAME}.labels`)]: null },
    },
  };
}

/** config/manager's Deployment, its values from the chart's values, and config/alert-webhook's patch behind alertWebhook.enabled. */
function deploymentTemplate(manager: Deployment, webhookPatch: JsonPatchOp[]): unknown {
  const podSpec = manager.spec.template.spec;
  const container = podSpec.containers[0]!;
  const webhook = (list: string) =>
    webhookPatch.filter((op) => op.op === "add" && op.path.endsWith(`/${list}/-`)).map((op) => op.value);
  const conditional = (items: unknown[]) =>
    items.length ? [open("if .Values.alertWebhook.enabled"), ...items, close] : [];
  const args = container.args
    .filter((arg) => !arg.startsWith(ALLOWED_ENDPOINTS_ARG))
    .flatMap((arg) => (arg === "--leader-elect" ? [open("if .Values.leaderElection.enabled"), arg, close] : [arg]));
  const volumes = webhook("volumes").map((v) => {
    const volume = v as { secret?: { secretName: string } };
    return volume.secret
      ? { ...volume, secret: { ...volume.secret, secretName: action(".Values.alertWebhook.secretName") } }
      : v;
  });
  const labelled = withChartLabels(manager as unknown as Obj, true) as unknown as Deployment;
  return {
    ...labelled,
    spec: {
      ...manager.spec,
      replicas: action(".Values.replicaCount"),
      template: {
        metadata: {
          annotations: block("podAnnotations"),
          labels: manager.spec.template.metadata.labels,
        },
        spec: {
          imagePullSecrets: block("imagePullSecrets"),
          ...podSpec,
          nodeSelector: block("nodeSelector"),
          tolerations: block("tolerations"),
          affinity: block("affinity"),
          containers: [
            {
              ...container,
              image: IMAGE,
              imagePullPolicy: action(".Values.image.pullPolicy"),
              args: [
                ...args,
                open("range .Values.allowedEndpoints"),
                ALLOWED_ENDPOINTS_ARG + action("."),
                close,
                "--log-level=" + action(".Values.logLevel"),
                open("range .Values.watchNamespaces"),
                "--namespace=" + action("."),
                close,
                ...conditional(webhook("args")),
              ],
              env: container.env.map((e) => (e.value === container.image ? { ...e, value: IMAGE } : e)),
              ports: [...container.ports, ...conditional(webhook("ports"))],
              resources: block("resources"),
              volumeMounts: [...container.volumeMounts, ...conditional(webhook("volumeMounts"))],
            },
            ...podSpec.containers.slice(1),
          ],
          volumes: [...podSpec.volumes, ...conditional(volumes)],
        },
      },
    },
  };
}

/**
 * What `helm test` runs: a pod whose ServiceAccount is bound to the metrics-reader ClusterRole scrapes the metrics
 * Service as Prometheus does (HTTPS with its token), so the test proves the authentication and authorization too.
 */
function testTemplates(
  manager: Deployment,
  metricsService: Obj & { spec: { ports: Array<{ port: number }> } },
  metricsReader: Obj,
): unknown[] {
  const podSpec = manager.spec.template.spec;
  const container = podSpec.containers[0]!;
  const name = `${NAME}-test-metrics`;
  const hook = (weight: string) => ({
    "helm.sh/hook": "test",
    "helm.sh/hook-weight": weight,
    "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
  });
  const labels = { "app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "test" };
  // The Service's address from the variables the kubelet sets for the Services of the pod's namespace: no cluster DNS needed.
  const service = metricsService.metadata.name.toUpperCase().replaceAll("-", "_");
  const url = `https://\${process.env.${service}_SERVICE_HOST}:\${process.env.${service}_SERVICE_PORT}/metrics`;
  // The serving certificate is self-signed unless --metrics-cert-dir names one: not verified, as by the ServiceMonitor.
  const script =
    `const { readFileSync } = process.getBuiltinModule("node:fs"); const https = process.getBuiltinModule("node:https"); ` +
    `const url = \`${url}\`; ` +
    `const token = readFileSync("/var/run/secrets/kubernetes.io/serviceaccount/token", "utf8"); ` +
    `https.get(url, { rejectUnauthorized: false, headers: { authorization: \`Bearer \${token}\` } }, (r) => { ` +
    `let text = ""; r.setEncoding("utf8"); r.on("data", (c) => (text += c)); r.on("end", () => { ` +
    `if (r.statusCode !== 200 || !text.includes("nextgen_")) { console.error(url, r.statusCode, text.slice(0, 500)); process.exit(1); } ` +
    `console.log("metrics served at", url, "to a metrics reader"); }); ` +
    `}).on("error", (e) => { console.error(url, e.message); process.exit(1); });`;
  const serviceAccount = withChartLabels(
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name, labels, annotations: hook("-1") } } as Obj,
    true,
  );
  const binding = withChartLabels(
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      // Cluster-scoped: one per release namespace.
      metadata: { name: `${name}-${RELEASE_NAMESPACE}`, labels, annotations: hook("-1") },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: metricsReader.metadata.name },
      subjects: [{ kind: "ServiceAccount", name, namespace: RELEASE_NAMESPACE }],
    } as Obj,
    false,
  );
  const pod = withChartLabels(
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, labels, annotations: hook("0") } as Obj["metadata"],
      spec: {
        restartPolicy: "Never",
        serviceAccountName: name,
        imagePullSecrets: block("imagePullSecrets"),
        securityContext: podSpec.securityContext,
        nodeSelector: block("nodeSelector"),
        tolerations: block("tolerations"),
        containers: [
          {
            name: "metrics",
            image: IMAGE,
            imagePullPolicy: action(".Values.image.pullPolicy"),
            command: ["node", "--input-type=module", "-e", script],
            securityContext: container.securityContext,
          },
        ],
      },
    } as Obj,
    true,
  );
  return [serviceAccount, binding, pod];
}

/** config/'s NetworkPolicy for the metrics port, also admitting `helm test`'s pod (the release's namespace need not be labelled). */
function metricsNetworkPolicy(policy: Obj & { spec: { ingress: unknown[] } }): Obj {
  return withChartLabels(
    {
      ...policy,
      spec: {
        ...policy.spec,
        ingress: policy.spec.ingress.map((rule) => {
          const r = rule as { from: unknown[] };
          return {
            ...r,
            from: [
              ...r.from,
              {
                podSelector: { matchLabels: { "app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "test" } },
              },
            ],
          };
        }),
      },
    },
    true,
  );
}

const helpers = (appVersion: string) => `{{/* Generated by \`npm run manifests\`. Do not edit by hand. */}}

{{/* The labels Helm's conventions add to every object (selectors keep config/'s). */}}
{{- define "${NAME}.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
{{- end }}

{{/* The operator's image: by digest when one is given, else by tag (default: the appVersion, ${appVersion}). */}}
{{- define "${NAME}.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}
`;

function oldestMinor(): string {
  return pinnedVersions().at(-1)!.split(".").slice(0, 2).join(".");
}

const readYaml = (root: string, path: string) => loadAll(readFileSync(join(root, path), "utf8")) as unknown[];

/**
 * The chart's files by path relative to the repository root, from `config` (what the generator writes into config/)
 * and the hand-written bases under `root`/config.
 */
export function chartFiles(root: string, config: Map<string, string>, version: string): Map<string, string> {
  const files = new Map<string, string>();
  const [manager, metricsService] = readYaml(root, "config/manager/manager.yaml") as [
    Deployment,
    Obj & { spec: { ports: Array<{ port: number }> } },
  ];
  const webhookPatch = load(
    readFileSync(join(root, "config/alert-webhook/manager-patch.yaml"), "utf8"),
  ) as JsonPatchOp[];
  const [webhookService] = readYaml(root, "config/alert-webhook/service.yaml") as [Obj];
  const configObjects = (dir: string) =>
    [...config]
      .filter(([path]) => path.startsWith(`${dir}/`) && path.endsWith(".yaml") && !path.endsWith("kustomization.yaml"))
      .map(([path, text]) => [path.slice(dir.length + 1), loadAll(text) as Obj[]] as const);
  const tree = valuesTree(manager, webhookPatch);
  const put = (path: string, content: string) => files.set(`${CHART_DIR}/${path}`, content);

  put(
    "Chart.yaml",
    header +
      dump(
        {
          apiVersion: "v2",
          name: NAME,
          description:
            "A Kubernetes operator for post-quantum keys, quantum workload placement, edge sites, self-healing and carbon budgets",
          type: "application",
          version,
          appVersion: version,
          // The oldest minor the tests run (hack/k8s): what the chart is known to work on.
          kubeVersion: `>=${oldestMinor()}.0-0`,
          home: "https://github.com/itechsmart/nextgen-operator",
          sources: ["https://github.com/itechsmart/nextgen-operator"],
          keywords: ["operator", "post-quantum", "quantum", "edge", "carbon"],
          annotations: { "artifacthub.io/license": "Apache-2.0" },
        },
        { lineWidth: -1 },
      ),
  );
  put("values.yaml", header + valuesYaml(tree));
  put(
    "values.schema.json",
    JSON.stringify({ $schema: "http://json-schema.org/draft-07/schema#", ...valuesSchema(tree) }, null, 2) + "\n",
  );
  put(".helmignore", "# Generated by `npm run manifests`.\nREADME.md.gotmpl\n*.orig\n*.tmp\n");
  put("templates/_helpers.tpl", helpers(version));

  for (const [name, docs] of configObjects("config/crd")) {
    const [crd] = docs;
    put(
      `templates/crds/${name}`,
      helmTemplate(
        withChartLabels(
          { ...crd!, metadata: { ...crd!.metadata, annotations: { "helm.sh/resource-policy": "keep" } } },
          false,
        ),
        ".Values.crds.enabled",
      ),
    );
  }
  for (const [name, docs] of configObjects("config/rbac")) {
    put(
      `templates/rbac/${name}`,
      docs
        .map((d) => {
          const namespaced = d.kind !== "ClusterRole" && d.kind !== "ClusterRoleBinding";
          const obj = withChartLabels(d, namespaced) as Obj & { subjects?: Array<{ namespace?: string }> };
          if (obj.subjects) obj.subjects = obj.subjects.map((s) => ({ ...s, namespace: RELEASE_NAMESPACE }));
          return helmTemplate(obj).slice(header.length);
        })
        .reduce((all, doc, i) => all + (i ? "---\n" : "") + doc, header),
    );
  }
  put("templates/deployment.yaml", helmTemplate(deploymentTemplate(manager, webhookPatch)));
  put("templates/metrics-service.yaml", helmTemplate(withChartLabels(metricsService, true)));
  put(
    "templates/alert-webhook-service.yaml",
    helmTemplate(withChartLabels(webhookService, true), ".Values.alertWebhook.enabled"),
  );

  const monitoringLabels = (obj: Obj) => {
    const { release: _release, ...own } = obj.metadata.labels ?? {};
    return { ...obj, metadata: { ...obj.metadata, labels: { ...own, [merge("monitoring.labels")]: null } } };
  };
  const [[, [serviceMonitor]], [, [prometheusRule]]] = [
    configObjects("config/monitoring").find(([n]) => n === "service-monitor.yaml")!,
    configObjects("config/monitoring").find(([n]) => n === "prometheus-rule.yaml")!,
  ];
  put(
    "templates/monitoring/service-monitor.yaml",
    helmTemplate(withChartLabels(monitoringLabels(serviceMonitor!), true), ".Values.monitoring.serviceMonitor.enabled"),
  );
  // The rules and the dashboard hold Go templates of their own ({{ $labels.x }}, {{instance}}): read as files, not templated.
  put("files/nextgen-operator.rules.yaml", config.get("config/monitoring/nextgen-operator.rules.yaml")!);
  put("files/grafana-dashboard.json", config.get("config/monitoring/grafana-dashboard.json")!);
  put(
    "templates/monitoring/prometheus-rule.yaml",
    helmTemplate(
      withChartLabels({ ...monitoringLabels(prometheusRule!), spec: file("files/nextgen-operator.rules.yaml") }, true),
      ".Values.monitoring.rules.enabled",
    ),
  );
  put(
    "templates/monitoring/dashboard.yaml",
    helmTemplate(
      withChartLabels(
        {
          apiVersion: "v1",
          kind: "ConfigMap",
          // As config/monitoring's configMapGenerator names and labels it.
          metadata: { name: `${NAME}-dashboard`, labels: { "app.kubernetes.io/name": NAME, grafana_dashboard: "1" } },
          data: { [`${NAME}.json`]: textFile("files/grafana-dashboard.json") },
        } as Obj,
        true,
      ),
      ".Values.monitoring.dashboard.enabled",
    ),
  );
  const generated = <T = Obj>(path: string) => loadAll(config.get(path)!)[0] as T;
  const metricsReader = generated("config/rbac/metrics_reader_role.yaml");
  put(
    "templates/tests/test-metrics.yaml",
    testTemplates(manager, metricsService, metricsReader)
      .map((d) => helmTemplate(d).slice(header.length))
      .reduce((all, doc, i) => all + (i ? "---\n" : "") + doc, header),
  );
  const metricsPolicy = generated<Obj & { spec: { ingress: unknown[] } }>(
    "config/network-policy/allow-metrics-traffic.yaml",
  );
  put(
    "templates/network-policy.yaml",
    helmTemplate(metricsNetworkPolicy(metricsPolicy), ".Values.networkPolicy.enabled"),
  );
  const webhookPolicy = generated("config/alert-webhook/network-policy.yaml");
  put(
    "templates/alert-webhook-network-policy.yaml",
    helmTemplate(
      withChartLabels(webhookPolicy, true),
      "and .Values.networkPolicy.enabled .Values.alertWebhook.enabled",
    ),
  );
  put(
    "templates/NOTES.txt",
    `{{/* Generated by \`npm run manifests\`. Do not edit by hand. */ -}}
nextgen-operator {{ .Chart.AppVersion }} is installed in {{ .Release.Namespace }} (image {{ include "${NAME}.image" . }}).

  kubectl -n {{ .Release.Namespace }} rollout status deployment/nextgen-operator
  helm test {{ .Release.Name }} -n {{ .Release.Namespace }}

Examples: config/samples in the repository; every field: docs/api.md, or kubectl explain pqkeysets.spec.

The CRDs stay when the release is uninstalled (helm.sh/resource-policy: keep), and so do your objects.
`,
  );
  put("README.md", chartReadme(tree));
  return files;
}

function chartReadme(tree: ValuesTree): string {
  return `<!-- Generated by \`npm run manifests\` from src/manifests/chart.ts. Do not edit by hand. -->
# nextgen-operator Helm chart

Generated from the same sources as \`config/\` (\`npm run manifests\` writes both). Install from scratch:

\`\`\`sh
kubectl create namespace itechsmart-nextgen
kubectl label namespace itechsmart-nextgen pod-security.kubernetes.io/enforce=restricted
helm install nextgen-operator oci://ghcr.io/itechsmart/charts/nextgen-operator -n itechsmart-nextgen \\
  --set image.repository=registry.example.com/nextgen-operator --set image.tag=0.1.0
helm test nextgen-operator -n itechsmart-nextgen
\`\`\`

## CRDs

The CRDs are templates with \`helm.sh/resource-policy: keep\`, not Helm's \`crds/\` folder: Helm installs \`crds/\`
once and never upgrades it, so a new schema would not reach the cluster with \`helm upgrade\`. As templates they are
upgraded with the release; the keep policy means \`helm uninstall\` leaves them, and with them every PQKeySet,
QuantumJob and other object users made. Delete them yourself (\`kubectl delete crd -l app.kubernetes.io/name=nextgen-operator\`)
only to remove all of it. \`crds.enabled=false\` leaves CRDs to another tool (installed from \`config/crd\`).

## Values

${valuesTable(tree)}
`;
}
