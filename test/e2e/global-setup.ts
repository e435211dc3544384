import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { cacheRoot, ensureNodeAssets } from "../../src/controlplane/assets.ts";
import { ControlPlane } from "../../src/controlplane/control-plane.ts";
import { buildImages, ensureProbeImage } from "../../src/controlplane/images.ts";
import { containerdSocket, KUBELET_TUNABLES, REAL_NODE_NAME } from "../../src/controlplane/real-node.ts";
import type { ControlPlaneInfo } from "../integration/global-setup.ts";

/** Kernel tunables the kubelet and kube-proxy would set, which the node must leave as the host has them. */
export const WATCHED_SYSCTLS = [
  ...Object.keys(KUBELET_TUNABLES),
  "net/netfilter/nf_conntrack_max",
  "net/netfilter/nf_conntrack_tcp_timeout_established",
  "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
];

export function readSysctls(): Record<string, string> {
  return Object.fromEntries(WATCHED_SYSCTLS.map((s) => [s, readFileSync(`/proc/sys/${s}`, "utf8").trim()]));
}

export interface RealNodeInfo {
  name: string;
  /** The node's containerd, as `ctr --address` names it. */
  containerdSocket: string;
  /** kubectl of the cluster's own release. */
  kubectl: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    controlPlane: ControlPlaneInfo;
    hostSysctls: Record<string, string>;
    realNode: RealNodeInfo;
    /** References of the images the node holds: the operator's and the runner's (built from their Dockerfiles), node-probe. */
    images: { operator: string; runner: string; probe: string };
  }
}

/**
 * One control plane with a real node for the e2e tests, its containerd holding the operator's and the runner's
 * images built from their Dockerfiles. Its folder is fixed, not a fresh temporary one, so that what a run killed
 * before its teardown left (processes, the node's cgroups and network namespace) is found and stopped here by the next.
 */
export default async function setup(project: TestProject) {
  const dir = join(cacheRoot(), "e2e-control-plane");
  const log = (l: string) => process.stderr.write(`[control-plane] ${l}\n`);
  if (await ControlPlane.stopFromState(dir)) log(`stopped what a previous run left in ${dir}`);
  project.provide("hostSysctls", readSysctls());
  const images = await buildImages((l) => process.stderr.write(`[images] ${l}\n`));
  const probe = await ensureProbeImage(log);
  const cp = await ControlPlane.start({
    dir,
    realNode: true,
    kwok: false,
    nodeImages: [images.operator, images.runner],
    log,
  });
  project.provide("controlPlane", {
    dir: cp.dir,
    apiserverUrl: cp.apiserverUrl,
    adminKubeconfig: cp.adminKubeconfig,
    operatorKubeconfig: cp.operatorKubeconfig,
  });
  project.provide("realNode", {
    name: REAL_NODE_NAME,
    containerdSocket: containerdSocket(cp.dir),
    kubectl: (await ensureNodeAssets(log, cp.version as string)).kubectl,
  });
  project.provide("images", {
    operator: images.operator.reference,
    runner: images.runner.reference,
    probe: probe.reference,
  });
  return () => cp.stop();
}
