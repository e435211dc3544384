import { AppsV1Api, CoreV1Api, KubeConfig, VersionApi } from "@kubernetes/client-node";
import { expect, test } from "vitest";
import { selectVersion } from "../../src/controlplane/assets.ts";
import { ControlPlane } from "../../src/controlplane/control-plane.ts";
import { waitUntil } from "../../src/runtime/wait.ts";

function kubeConfig(file: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

// The first run on a machine may build the binaries (several minutes), hence the generous timeout.
test(
  "a local control plane of the selected version serves the API, enforces RBAC, runs controllers and survives an apiserver restart",
  { timeout: 30 * 60_000 },
  async () => {
    const cp = await ControlPlane.start({ log: (line) => console.error(line), kwok: false });
    const pids = new Set<number>();
    const recordPids = () => Object.values(ControlPlane.runningState(cp.dir)!.pids).forEach((pid) => pids.add(pid!));
    try {
      recordPids();
      expect(pids.size).toBe(4);
      // The binaries are the release NEXTGEN_K8S_VERSION picks (default the newest pinned), stamped as upstream does.
      const version = await kubeConfig(cp.adminKubeconfig).makeApiClient(VersionApi).getCode();
      expect(version.gitVersion).toBe(`v${selectVersion()}`);
      expect(cp.version).toBe(selectVersion());
      const core = kubeConfig(cp.adminKubeconfig).makeApiClient(CoreV1Api);
      const namespace = "cp-test";
      await core.createNamespace({ body: { metadata: { name: namespace } } });
      await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "kept" }, data: { answer: "42" } } });

      const operator = kubeConfig(cp.operatorKubeconfig).makeApiClient(CoreV1Api);
      await expect(operator.listSecretForAllNamespaces()).rejects.toMatchObject({ code: 403 });

      // Pods are creatable without kubelets, the controllers act on a Deployment and the scheduler sees no node.
      await kubeConfig(cp.adminKubeconfig)
        .makeApiClient(AppsV1Api)
        .createNamespacedDeployment({
          namespace,
          body: {
            metadata: { name: "web" },
            spec: {
              selector: { matchLabels: { app: "web" } },
              template: {
                metadata: { labels: { app: "web" } },
                spec: { containers: [{ name: "web", image: "nginx" }] },
              },
            },
          },
        });
      await waitUntil(
        "the Deployment's Pod to be reported unschedulable",
        async () => {
          const pods = await core.listNamespacedPod({ namespace });
          return pods.items[0]?.status?.conditions?.find(
            (c) => c.type === "PodScheduled" && c.reason === "Unschedulable",
          );
        },
        { timeoutMs: 60_000, intervalMs: 250 },
      );

      await cp.stopApiserver();
      await expect(core.readNamespacedConfigMap({ name: "kept", namespace })).rejects.toThrow();
      await cp.startApiserver();
      recordPids();
      const kept = await core.readNamespacedConfigMap({ name: "kept", namespace });
      expect(kept.data).toEqual({ answer: "42" });
    } finally {
      await cp.stop();
    }
    expect(pids.size).toBe(5);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: "ESRCH" }));
  },
);
