import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ControlPlane } from "../controlplane/control-plane.ts";
import { KwokNodes } from "../controlplane/kwok.ts";
import { OperatorProcess } from "../controlplane/operator-process.ts";
import { crds } from "../crds/index.ts";
import { LEADER_ELECTION_ID, OPERATOR_NAMESPACE } from "../manifests/generate.ts";
import { KubeClient } from "../runtime/client.ts";
import { findCondition } from "../runtime/conditions.ts";
import type { Condition, KubeObject } from "../runtime/objects.ts";
import { waitUntil } from "../runtime/wait.ts";
import { parse } from "./args.ts";
import { applyObjects, installPrerequisites, readManifests } from "./install.ts";

export const demoHelp = `Usage: nextgen-operator demo [--once] [--timeout SECONDS]

Brings up a local control plane (etcd, kube-apiserver, controller-manager, scheduler, and KWOK for simulated
Nodes; the version from NEXTGEN_K8S_VERSION, default the newest pinned), installs the CRDs and RBAC,
runs the operator under its own ServiceAccount's permissions, applies config/samples and prints the status of every
resource as it converges. Runs until Ctrl-C; --once exits 0 as soon as everything has converged (non-zero on timeout).`;

const ROOT = join(import.meta.dirname, "..", "..");

type Row = { kind: string; name: string; ready: string; reason: string; message: string; settled: boolean };

/**
 * The condition that says a sample has converged: jobs run to completion; a backend has settled once it says
 * whether it is usable (the IBM sample stays Unavailable for lack of credentials, and says so); the rest are Ready.
 */
const CONVERGED: Record<string, { condition: string; settled: (status: string) => boolean }> = {
  QuantumJob: { condition: "Complete", settled: (s) => s === "True" },
  QuantumBackend: { condition: "Ready", settled: (s) => s !== "Unknown" },
};
const READY = { condition: "Ready", settled: (s: string) => s === "True" };

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
  let operator: OperatorProcess | undefined;
  try {
    say(`control plane up at ${cp.apiserverUrl}; kubeconfig: ${cp.adminKubeconfig}`);
    const admin = KubeClient.load(cp.adminKubeconfig, "nextgen-demo");
    const nodes = new KwokNodes(admin);
    await installPrerequisites(admin, ROOT);
    say(`installed ${crds.length} CRDs and the operator's RBAC`);

    const logFile = join(cp.dir, "operator.log");
    operator = await OperatorProcess.start({
      kubeconfig: cp.operatorKubeconfig,
      args: ["--leader-elect", "--leader-election-namespace", OPERATOR_NAMESPACE],
      logFile,
    });
    await operator.waitReady();
    const op = operator;
    await waitUntil("the operator to lead", async () => (await op.state()) === "leading", { timeoutMs: 60_000 });
    say(`operator running as system:serviceaccount:${OPERATOR_NAMESPACE}:nextgen-operator (logs: ${logFile})`);
    say(`leading on Lease ${OPERATOR_NAMESPACE}/${LEADER_ELECTION_ID}; metrics at ${operator.metricsUrl}`);

    const samples = await readManifests(join(ROOT, "config/samples")).catch(() => [] as KubeObject[]);
    // No kubelets run here: two KWOK Nodes per sample site stand in, labelled to join it.
    const sites = samples.filter((o) => o.kind === "EdgeNode").map((o) => o.metadata.name);
    for (const site of sites) {
      for (const i of [1, 2])
        await nodes.register(`${site}-node-${i}`, { labels: { "nextgen.itechsmart.io/site": site } });
    }
    await applyObjects(admin, samples);
    say(`applied ${samples.length} samples from config/samples; ${sites.length * 2} KWOK Nodes serve the sites`);

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
    await cp.stop();
    say("stopped the operator and the control plane");
  }
}

async function statusRows(client: KubeClient): Promise<Row[]> {
  const rows: Row[] = [];
  for (const crd of crds) {
    const list = await client.list<KubeObject & { status?: { conditions?: Condition[] } }>(crd.kind);
    for (const o of list.items) {
      const converged = CONVERGED[crd.kind.kind] ?? READY;
      const ready = findCondition(o.status?.conditions, converged.condition);
      rows.push({
        kind: crd.kind.kind,
        name: o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name,
        ready: ready?.status ?? "Unknown",
        reason: ready?.reason ?? "",
        message: ready?.message ?? "",
        settled: converged.settled(ready?.status ?? "Unknown"),
      });
    }
  }
  return rows;
}

function formatTable(rows: Row[]): string {
  if (!rows.length) return "(no resources)";
  const head: Row = {
    kind: "KIND",
    name: "NAME",
    ready: "READY/COMPLETE",
    reason: "REASON",
    message: "MESSAGE",
    settled: true,
  };
  const cols = ["kind", "name", "ready", "reason"] as const;
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(...[head, ...rows].map((r) => r[c].length))]));
  return [head, ...rows]
    .map((r) => [...cols.map((c) => r[c].padEnd(width[c] as number)), r.message.slice(0, 80)].join("  "))
    .join("\n");
}
