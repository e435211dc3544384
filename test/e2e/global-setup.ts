import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { cacheRoot } from "../../src/controlplane/assets.ts";
import { ControlPlane } from "../../src/controlplane/control-plane.ts";
import { KUBELET_TUNABLES } from "../../src/controlplane/real-node.ts";

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

declare module "vitest" {
  export interface ProvidedContext {
    hostSysctls: Record<string, string>;
  }
}

/**
 * One control plane with a real node for the e2e tests. Its folder is fixed, not a fresh temporary one, so that what
 * a run killed before its teardown left (processes, the node's cgroups and network namespace) is found and stopped
 * here by the next.
 */
export default async function setup(project: TestProject) {
  const dir = join(cacheRoot(), "e2e-control-plane");
  const log = (l: string) => process.stderr.write(`[control-plane] ${l}\n`);
  if (await ControlPlane.stopFromState(dir)) log(`stopped what a previous run left in ${dir}`);
  project.provide("hostSysctls", readSysctls());
  const cp = await ControlPlane.start({ dir, realNode: true, kwok: false, log });
  project.provide("controlPlane", {
    dir: cp.dir,
    apiserverUrl: cp.apiserverUrl,
    adminKubeconfig: cp.adminKubeconfig,
    operatorKubeconfig: cp.operatorKubeconfig,
  });
  return () => cp.stop();
}
