import { join } from "node:path";
import { parse, UsageError } from "./args.ts";
import {
  cacheRoot,
  ensureAssets,
  ensureGpuRunnerPython,
  ensureTool,
  pinnedVersions,
  TOOL_NAMES,
} from "../controlplane/assets.ts";
import { ControlPlane, controlPlaneEnv } from "../controlplane/control-plane.ts";
import { ensureRealNodeAssets, POD_CIDR, REAL_NODE_NAME } from "../controlplane/real-node.ts";

// A function: the pinned versions are read from hack/, which the operator image does not carry.
const overview = () => `Usage: nextgen-operator control-plane <up|down|env|assets> [--dir DIR] [--k8s-version VERSION]

A local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and KWOK on
loopback ports, for development. Its files live in DIR (default ${join(cacheRoot(), "control-plane")}).
VERSION is a pinned minor or release (hack/k8s/<minor>: ${pinnedVersions().join(", ")}); default NEXTGEN_K8S_VERSION,
else the newest.

  up     start it in the background and print the shell exports to reach it: eval "$(nextgen-operator control-plane up)"
  down   stop it (succeeds when none runs)
  env    print the shell exports for the running one
  assets locate (KUBEBUILDER_ASSETS) or build and cache the binaries, and print their folder`;

const usage: Record<string, string> = {
  up: `Usage: nextgen-operator control-plane up [--dir DIR] [--k8s-version VERSION] [--real-node]

Starts the control plane, leaves it running after this command exits and prints export lines for KUBECONFIG
(admin), NEXTGEN_OPERATOR_KUBECONFIG (the operator's ServiceAccount identity) and NEXTGEN_CONTROL_PLANE_DIR.
The first run builds the binaries (several minutes) unless KUBEBUILDER_ASSETS names a folder holding them.

--real-node also starts a real node, ${REAL_NODE_NAME}: containerd, a kubelet and kube-proxy in a network namespace
of their own, running Pods for real (needs root; one per machine). Its pods' addresses (${POD_CIDR}) are routed
from this machine.`,
  down: `Usage: nextgen-operator control-plane down [--dir DIR]

Stops the control plane started by 'up'; succeeds quietly when none runs.`,
  assets: `Usage: nextgen-operator control-plane assets [--k8s-version VERSION] [--real-node]

Finds the control-plane binaries in KUBEBUILDER_ASSETS, or builds them once from the Go modules pinned in
hack/k8s/<minor> into the cache folder (several minutes; quiet when cached), builds KWOK and the test tools from
hack/tools, Prometheus and Alertmanager from hack/monitoring the same way, and the GPU runner's Python
environment from runners/gpu/requirements.txt, and prints the control plane's folder. 'up', the tests and the demo do the same on first use.

--real-node also builds the real node's kubelet, kube-proxy and images (see 'up').`,
  env: `Usage: nextgen-operator control-plane env [--dir DIR]

Prints the export lines for the running control plane; exits 1 when none runs.`,
};

const say = (text: string) => process.stdout.write(`${text}\n`);
const warn = (text: string) => process.stderr.write(`${text}\n`);
const exportLines = (env: Record<string, string>) =>
  Object.entries(env)
    .map(([k, v]) => `export ${k}='${v.replaceAll("'", `'\\''`)}'`)
    .join("\n");

export async function controlPlaneCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "--help" || sub === "-h") return (say(overview()), 0);
  if (sub === undefined || !(sub in usage)) {
    throw new UsageError(
      `control-plane: ${sub === undefined ? "missing subcommand" : `unknown subcommand "${sub}"`}; expected up, down, env or assets`,
    );
  }
  const { values } = parse(`control-plane ${sub}`, rest, {
    dir: { type: "string" },
    "k8s-version": { type: "string" },
    "real-node": { type: "boolean" },
  });
  const version = values["k8s-version"];
  if (values.help) return (say(usage[sub]!), 0);
  const dir = values.dir ?? join(cacheRoot(), "control-plane");
  const running = ControlPlane.runningState(dir);

  if (sub === "assets") {
    const assets = await ensureAssets(warn, version);
    if (values["real-node"]) {
      if (!assets.version)
        throw new UsageError("--real-node builds the kubelet of a pinned version: unset KUBEBUILDER_ASSETS");
      await ensureRealNodeAssets(warn, assets.version);
    }
    for (const tool of TOOL_NAMES) await ensureTool(tool, warn);
    await ensureGpuRunnerPython(warn);
    return (say(assets.dir), 0);
  }
  if (sub === "down") {
    if (await ControlPlane.stopFromState(dir)) warn(`stopped the control plane in ${dir}`);
    return 0;
  }
  if (sub === "env") {
    if (running) return (say(exportLines(controlPlaneEnv(running))), 0);
    warn(`no control plane is running in ${dir}; start one with: nextgen-operator control-plane up`);
    return 1;
  }
  if (running) {
    warn(`a control plane is already running in ${dir} (${running.apiserverUrl})`);
    return (say(exportLines(controlPlaneEnv(running))), 0);
  }
  const cp = await ControlPlane.start({ dir, detached: true, log: warn, version, realNode: values["real-node"] });
  say(exportLines(cp.env()));
  return 0;
}
