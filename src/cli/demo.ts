import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ControlPlane } from "../controlplane/control-plane.ts";
import { type FakeElectricityMaps, startElectricityMaps } from "../controlplane/electricity-maps.ts";
import { KwokNodes, POD_FAULT_LABEL } from "../controlplane/kwok.ts";
import { OperatorProcess } from "../controlplane/operator-process.ts";
import { ALLOWED_ENDPOINTS_FLAG } from "../controllers/shared/endpoints.ts";
import { crds } from "../crds/index.ts";
import { LEADER_ELECTION_ID, OPERATOR_NAMESPACE } from "../runtime/identity.ts";
import { KubeClient } from "../runtime/client.ts";
import { findCondition } from "../runtime/conditions.ts";
import type { Condition, KubeObject } from "../runtime/objects.ts";
import { waitUntil } from "../runtime/wait.ts";
import { parse } from "./args.ts";
import { applyObjects, installPrerequisites, readManifests } from "../runtime/install.ts";

export const demoHelp = `Usage: nextgen-operator demo [--once] [--timeout SECONDS]

Brings up a local control plane (etcd, kube-apiserver, controller-manager, scheduler, and KWOK for simulated
Nodes; the version from NEXTGEN_K8S_VERSION, default the newest pinned), installs the CRDs and RBAC,
runs the operator under its own ServiceAccount's permissions, applies config/samples with workloads for them to act
on and prints the status of every resource as it converges. Runs until Ctrl-C; --once exits 0 as soon as everything
has converged (non-zero on timeout). What only a real installation has (a provider's token, a GPU, Kepler) is named
in the table's DETAIL column ("NEEDS ...").`;

const ROOT = join(import.meta.dirname, "..", "..");

type Status = { conditions?: Condition[]; consumedGrams?: number; targets?: number };
type Resource = KubeObject & { status?: Status };
type Row = {
  kind: string;
  name: string;
  ready: string;
  reason: string;
  detail: string;
  message: string;
  settled: boolean;
};

/**
 * When a sample has converged: jobs have run to completion, a budget has accounted some emissions, a policy watches
 * its workloads; the rest are Ready. A backend has settled once it says whether it is usable.
 */
const CONVERGED: Record<string, { condition: string; settled: (status: string, o: Resource) => boolean }> = {
  QuantumJob: { condition: "Complete", settled: (s) => s === "True" },
  QuantumBackend: { condition: "Ready", settled: (s) => s !== "Unknown" },
  CarbonBudget: { condition: "Ready", settled: (s, o) => s === "True" && (o.status?.consumedGrams ?? 0) > 0 },
  RemediationPolicy: { condition: "Ready", settled: (s, o) => s === "True" && (o.status?.targets ?? 0) > 0 },
};
const READY = { condition: "Ready", settled: (s: string) => s === "True" };

/**
 * Samples that need what a local cluster cannot have. They settle when one of their conditions gives one of these
 * reasons, and the table says what is missing; any other reason (a bug) keeps --once waiting.
 */
const NEEDS: Record<string, { conditions: Record<string, string[]>; needs: string }> = {
  "QuantumBackend/ibm-kingston": { conditions: { Ready: ["MissingCredentials"] }, needs: "an IBM Quantum API key" },
  "QuantumBackend/gpu-simulator-eu-west": {
    conditions: { Ready: ["InsufficientCapacity"] },
    needs: "a Node with an nvidia.com/gpu",
  },
  "CarbonBudget/research": {
    // The intensity source fails first; Kepler's Prometheus is asked only once there is an interval to account.
    conditions: { IntensityDataStale: ["SourceFailing"], Ready: ["PrometheusUnreachable"] },
    needs: "Kepler, its Prometheus and the Carbon Aware SDK as in-cluster Services",
  },
};

/** The zone the `batch` sample reads, and a plausible intensity for it (France's grid is mostly nuclear). */
const BATCH_ZONE = { zone: "FR", gramsPerKWh: 56 };

export async function demoCommand(args: string[]): Promise<number> {
  const { values } = parse("demo", args, { once: { type: "boolean" }, timeout: { type: "string" } });
  if (values.help) return (console.log(demoHelp), 0);
  const timeoutMs = Number(values.timeout ?? 600) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`--timeout must be a positive number of seconds`);

  const say = (line: string) => console.log(`[demo] ${line}`);
  const stop = new AbortController();
  process.on("SIGINT", () => stop.abort());
  process.on("SIGTERM", () => stop.abort());

  say("starting the control plane (the first run builds it from the Go modules in hack/, several minutes)");
  const cp = await ControlPlane.start({ log: (l) => say(l) });
  let maps: FakeElectricityMaps | undefined;
  let operator: OperatorProcess | undefined;
  try {
    // No Electricity Maps account here: a local stand-in of its API serves the `batch` budget's intensity.
    const mapsToken = randomBytes(16).toString("hex");
    maps = await startElectricityMaps({ token: mapsToken });
    maps.setIntensity(BATCH_ZONE.zone, BATCH_ZONE.gramsPerKWh);
    const mapsUrl = maps.url;
    say(`control plane up at ${cp.apiserverUrl}; kubeconfig: ${cp.adminKubeconfig}`);
    const admin = KubeClient.load(cp.adminKubeconfig, "nextgen-demo");
    const nodes = new KwokNodes(admin);
    await installPrerequisites(admin, ROOT);
    say(`installed ${crds.length} CRDs and the operator's RBAC`);

    const logFile = join(cp.dir, "operator.log");
    // The shipped install's allow list (the samples' endpoints), and the stand-in the `batch` budget reads instead.
    const allowed = [...(await shippedAllowedEndpoints()), `${ALLOWED_ENDPOINTS_FLAG}=${mapsUrl}`];
    operator = await OperatorProcess.start({
      kubeconfig: cp.operatorKubeconfig,
      metricsKubeconfig: cp.adminKubeconfig,
      args: ["--leader-elect", "--leader-election-namespace", OPERATOR_NAMESPACE, ...allowed],
      logFile,
    });
    await operator.waitReady();
    const op = operator;
    await waitUntil("the operator to lead", async () => (await op.state()) === "leading", { timeoutMs: 60_000 });
    say(`operator running as system:serviceaccount:${OPERATOR_NAMESPACE}:nextgen-operator (logs: ${logFile})`);
    say(`leading on Lease ${OPERATOR_NAMESPACE}/${LEADER_ELECTION_ID}; metrics at ${operator.metricsUrl}`);

    const samples = await readManifests(join(ROOT, "config/samples"));
    // No kubelets run here: two KWOK Nodes per sample site stand in, labelled to join it.
    const sites = samples.filter((o) => o.kind === "EdgeNode").map((o) => o.metadata.name);
    for (const site of sites) {
      for (const i of [1, 2])
        await nodes.register(`${site}-node-${i}`, {
          labels: { "nextgen.itechsmart.io/site": site },
          allocatable: { cpu: "8", memory: "32Gi", pods: "110" },
        });
    }
    say(`${sites.length * 2} KWOK Nodes serve the sample sites (${sites.join(", ")})`);
    await applyObjects(admin, workloads());
    say(
      "workloads for the policies and budgets: Deployment web (3 pods), batch-worker (2 pods of 1 CPU), batch-flaky (crash-looping)",
    );
    await applyObjects(admin, [
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "electricity-maps", namespace: "default" },
        stringData: { token: mapsToken },
      } as KubeObject,
    ]);
    await applyObjects(
      admin,
      samples.map((o) => pointBatchAtStandIn(o, mapsUrl)),
    );
    say(`applied ${samples.length} samples from config/samples`);
    say(
      `CarbonBudget batch reads Electricity Maps' API v3 from the demo's local stand-in at ${mapsUrl} ` +
        `(zone ${BATCH_ZONE.zone} at ${BATCH_ZONE.gramsPerKWh} g/kWh, token in Secret default/electricity-maps), refreshed every 10s`,
    );

    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (!stop.signal.aborted) {
      const rows = await statusRows(admin);
      const table = formatTable(rows);
      if (table !== last) console.log(`\n${new Date().toISOString()}\n${table}`);
      last = table;
      if (operator.child.exitCode !== null)
        throw new Error(`the operator exited (${operator.child.exitCode}); see ${logFile}`);
      if (values.once && rows.every((r) => r.settled)) {
        say(`all ${rows.length} resources converged; operator healthy`);
        return 0;
      }
      if (values.once && Date.now() > deadline) {
        say(`not everything converged within ${timeoutMs / 1000}s`);
        return 1;
      }
      await sleep(1000, undefined, { signal: stop.signal }).catch(() => undefined);
    }
    return 0;
  } finally {
    await operator?.stop();
    await maps?.close();
    await cp.stop();
    say("stopped the operator and the control plane");
  }
}

/**
 * The `batch` sample as applied here: its intensity from the local stand-in instead of api.electricitymaps.com, read
 * every 10 s instead of 5 min so that the table shows grams accounted within the demo's first minute.
 */
/** config/manager's --allowed-endpoints arguments. */
async function shippedAllowedEndpoints(): Promise<string[]> {
  const manager = (await readManifests(join(ROOT, "config/manager/manager.yaml"))).find((o) => o.kind === "Deployment");
  const spec = (manager as KubeObject & { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } })
    .spec;
  return (spec.template.spec.containers[0]?.args ?? []).filter((a) => a.startsWith(`${ALLOWED_ENDPOINTS_FLAG}=`));
}

function pointBatchAtStandIn(o: KubeObject, url: string): KubeObject {
  if (o.kind !== "CarbonBudget" || o.metadata.name !== "batch") return o;
  const spec = (o as KubeObject & { spec: { intensity: { electricityMaps: object } } }).spec;
  const intensity = {
    ...spec.intensity,
    electricityMaps: { ...spec.intensity.electricityMaps, url },
    refreshInterval: "10s",
  };
  return { ...o, spec: { ...spec, intensity } } as KubeObject;
}

/**
 * What the samples act on: `web` under the RemediationPolicy of that name; `batch-worker` and `batch-flaky` under the
 * DryRun policy and the budget that select tier=batch. KWOK runs their pods (Running, or crash-looping on the fault
 * label); CPU requests are what the budget's estimate draws from.
 */
function workloads(): KubeObject[] {
  const deployment = (name: string, replicas: number, cpu: string, labels: Record<string, string>) => ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: "default", labels },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { ...labels, app: name } },
        spec: {
          containers: [{ name, image: `example.com/${name}:1`, resources: { requests: { cpu, memory: "256Mi" } } }],
        },
      },
    },
  });
  return [
    deployment("web", 3, "250m", { app: "web" }),
    deployment("batch-worker", 2, "1", { tier: "batch" }),
    deployment("batch-flaky", 1, "100m", { tier: "batch", [POD_FAULT_LABEL]: "crashloop" }),
  ] as KubeObject[];
}

async function statusRows(client: KubeClient): Promise<Row[]> {
  const rows: Row[] = [];
  for (const crd of crds) {
    const list = await client.list<Resource>(crd.kind);
    for (const o of list.items) {
      const kind = crd.kind.kind;
      const converged = CONVERGED[kind] ?? READY;
      const condition = findCondition(o.status?.conditions, converged.condition);
      const status = condition?.status ?? "Unknown";
      const needs = NEEDS[`${kind}/${o.metadata.name}`];
      const missing = Object.entries(needs?.conditions ?? {}).some(([type, reasons]) =>
        reasons.includes(findCondition(o.status?.conditions, type)?.reason ?? ""),
      );
      rows.push({
        kind,
        name: o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name,
        ready: status,
        reason: condition?.reason ?? "",
        detail: missing ? `NEEDS ${needs?.needs}` : detail(kind, o),
        message: condition?.message ?? "",
        settled: missing || converged.settled(status, o),
      });
    }
  }
  return rows;
}

/** The figure that shows a resource at work. */
function detail(kind: string, o: Resource): string {
  if (kind === "CarbonBudget" && o.status?.consumedGrams !== undefined) return `${o.status.consumedGrams} g CO2e`;
  if (kind === "RemediationPolicy" && o.status?.targets !== undefined) return `${o.status.targets} workload(s)`;
  return "";
}

function formatTable(rows: Row[]): string {
  if (!rows.length) return "(no resources)";
  const head: Row = {
    kind: "KIND",
    name: "NAME",
    ready: "READY/COMPLETE",
    reason: "REASON",
    detail: "DETAIL",
    message: "MESSAGE",
    settled: true,
  };
  const cols = ["kind", "name", "ready", "reason", "detail"] as const;
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(...[head, ...rows].map((r) => r[c].length))]));
  return [head, ...rows]
    .map((r) => [...cols.map((c) => r[c].padEnd(width[c] as number)), r.message.slice(0, 80)].join("  "))
    .join("\n");
}
