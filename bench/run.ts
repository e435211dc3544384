import { ControlPlane } from "../src/controlplane/control-plane.ts";
import { benchAnomaly } from "./anomaly.ts";
import { benchCarbon } from "./carbon.ts";
import { benchCarbonDeferral } from "./carbon-deferral.ts";
import { benchEdgeNodes } from "./edgenode.ts";
import { benchErrorModel } from "./error-model.ts";
import { benchPQKeySets } from "./pqkeyset.ts";
import { benchQuantum } from "./quantum.ts";
import { benchRemediation } from "./remediation.ts";
import { benchGpu, benchSimulators } from "./simulators.ts";

/** `npm run bench`: every benchmark, each reported as a table; those that need a cluster on a fresh control plane. */
const benches: Record<string, (cp: ControlPlane) => Promise<Record<string, string | number>>> = {
  pqkeyset: benchPQKeySets,
  edgenode: benchEdgeNodes,
  quantum: benchQuantum,
  remediation: benchRemediation,
  carbon: benchCarbon,
};

/** Benchmarks whose workloads need Pods: KWOK runs them, the scheduler binds them, ReplicaSets replace them. */
const needPods = new Set(["remediation", "carbon"]);

/** Benchmarks without a control plane, whose own load would blur them: the operator's arithmetic, the runners. */
const localBenches: Record<string, () => Promise<Record<string, string | number> | Record<string, string | number>[]>> =
  {
    anomaly: benchAnomaly,
    "carbon-deferral": benchCarbonDeferral,
    "error-model": benchErrorModel,
    simulators: benchSimulators,
  };
/** Run only when named: it needs a GPU node (and downloads Aer's CUDA build). */
const onRequest: Record<string, () => Promise<Record<string, string | number>[]>> = { gpu: benchGpu };

const only = process.argv[2];
if (only && only in onRequest) {
  console.log(`\n## ${only}`);
  console.table(await onRequest[only]?.());
}
for (const [name, bench] of Object.entries(localBenches)) {
  if (only && only !== name) continue;
  console.log(`\n## ${name}`);
  console.table(await bench());
}
for (const [name, bench] of Object.entries(benches)) {
  if (only && only !== name) continue;
  // The controller-manager and scheduler are left out unless a benchmark needs Pods: their own traffic would blur
  // the numbers; so is KWOK where no Nodes are needed. Its Leases last an hour,
  // renewed every 15 minutes: 10 000 Nodes renewing every 10 s as kubelets do would take this machine's API server
  // from what is measured.
  const cp = await ControlPlane.start({
    controllerManager: needPods.has(name),
    scheduler: needPods.has(name),
    kwok: name === "edgenode" || needPods.has(name),
    // Benchmarks with Pods run the node-lifecycle controller, which marks every Pod of a Node not Ready once its
    // Lease is older than 40 s: their few Nodes keep kubelets' own 40 s Leases.
    nodeLeaseDurationSeconds: needPods.has(name) ? 40 : 3600,
  });
  try {
    console.log(`\n## ${name}`);
    console.table(await bench(cp));
  } finally {
    await cp.stop();
  }
}
