import type { TestProject } from "vitest/node";
import { installPrerequisites } from "../../src/runtime/install.ts";
import { ControlPlane } from "../../src/controlplane/control-plane.ts";
import { KubeClient } from "../../src/runtime/client.ts";

export interface ControlPlaneInfo {
  dir: string;
  apiserverUrl: string;
  adminKubeconfig: string;
  operatorKubeconfig: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    controlPlane: ControlPlaneInfo;
  }
}

/** One real control plane for the integration tests, with the operator's CRDs and RBAC installed as an admin would. */
export default async function setup(project: TestProject) {
  const cp = await ControlPlane.start({
    log: (l) => process.stderr.write(`[control-plane] ${l}\n`),
    // kwok renews Node Leases every 2.5 s, so tests see a stopped heartbeat go stale within seconds.
    nodeLeaseDurationSeconds: 10,
  });
  const admin = KubeClient.load(cp.adminKubeconfig, "nextgen-test-admin");
  await installPrerequisites(admin, process.cwd());
  await admin.close();
  project.provide("controlPlane", {
    dir: cp.dir,
    apiserverUrl: cp.apiserverUrl,
    adminKubeconfig: cp.adminKubeconfig,
    operatorKubeconfig: cp.operatorKubeconfig,
  });
  return async () => {
    await cp.stop();
  };
}
