import { chmodSync, copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { applyCrds, applyObjects, readManifests } from "../runtime/install.ts";
import { KubeClient } from "../runtime/client.ts";
import type { KindRef } from "../runtime/kinds.ts";
import type { KubeObject } from "../runtime/objects.ts";
import { waitUntil } from "../runtime/wait.ts";
import { ensureTool, moduleSource } from "./assets.ts";
import {
  type Component,
  START_TIMEOUT_MS,
  exited,
  freePort,
  healthy,
  mkdir,
  startComponent,
  terminate,
} from "./host-process.ts";

/*
 * A minimal real Argo CD beside the control plane, for the e2e tests: its application-controller and repo-server
 * (one binary, built from hack/argocd, choosing the component by ARGOCD_BINARY_NAME) and Redis (Debian's
 * redis-server) as host processes on loopback ports, as Argo CD's own Procfile runs them for its development and
 * e2e tests (ARGOCD_FAKE_IN_CLUSTER: the in-cluster destination is the kubeconfig's cluster). In the cluster: Argo
 * CD's CRDs (from its module's manifests/crds), argocd-cm and argocd-secret, and the `default` AppProject, which
 * only argocd-server, not run here, would create. No argocd-server, Dex or UI: Applications are objects written
 * with the Kubernetes API, as declarative setups do.
 */

export const ARGOCD_NAMESPACE = "argocd";
const ARGOCD_MODULE = resolve(import.meta.dirname, "../../hack/argocd");
/** The label by which Argo CD's settings manager finds argocd-cm and argocd-secret. */
const PART_OF = { "app.kubernetes.io/part-of": "argocd" };

const argo = (kind: string, plural: string): KindRef => ({
  group: "argoproj.io",
  version: "v1alpha1",
  kind,
  plural,
  namespaced: true,
});
export const ApplicationKind = argo("Application", "applications");
export const AppProjectKind = argo("AppProject", "appprojects");

type Health = { status: string; message?: string };
/** What an Application's status says about one of its resources. */
export type ResourceStatus = {
  group?: string;
  kind: string;
  namespace?: string;
  name: string;
  status?: string;
  health?: Health;
};
export type Application = KubeObject & {
  spec: Record<string, unknown>;
  /** A sync requested and not yet finished. */
  operation?: Record<string, unknown>;
  status?: {
    sync?: { status: string; revision?: string };
    health?: Health;
    resources?: ResourceStatus[];
    conditions?: { type: string; message: string }[];
    operationState?: {
      phase: string;
      message?: string;
      startedAt: string;
      finishedAt?: string;
      /** The operation; a self-heal's counts the self-heals since the last sync that was not one. */
      operation?: { sync?: { autoHealAttemptsCount?: number }; initiatedBy?: { automated?: boolean } };
    };
    history?: { id: number; revision: string; deployedAt: string; initiatedBy?: { automated?: boolean } }[];
  };
};

type ComponentName = "redis" | "argocd-repo-server" | "argocd-application-controller";

export class ArgoCD {
  private readonly components: Component[];
  private readonly dir: string;

  private constructor(components: Component[], dir: string) {
    this.components = components;
    this.dir = dir;
  }

  /**
   * Installs Argo CD's CRDs and settings into the cluster of `kubeconfig` (whose credentials the controller uses
   * for the in-cluster destination) and starts its components; resolves once each answers its health check.
   */
  static async start(kubeconfig: string, log: (line: string) => void = () => {}): Promise<ArgoCD> {
    const [argocd, kustomize] = [await ensureTool("argocd", log), await ensureTool("kustomize", log)];
    const source = await moduleSource(ARGOCD_MODULE, "github.com/argoproj/argo-cd/v3");
    const client = KubeClient.load(kubeconfig, "nextgen-argocd-setup");
    try {
      await install(client, source);
    } finally {
      await client.close();
    }
    const dir = mkdtempSync(join(tmpdir(), "nextgen-argocd-"));
    // The scripts Argo CD's image puts on PATH beside the binary (its Dockerfile): the repo-server runs
    // git-verify-wrapper.sh on every revision it generates manifests for, signatures verified or not.
    const bin = mkdir(join(dir, "bin"));
    for (const script of ["git-verify-wrapper.sh", "gpg-wrapper.sh"]) {
      copyFileSync(join(source, "hack", script), join(bin, script));
      chmodSync(join(bin, script), 0o755);
    }
    const components: Component[] = [];
    const argocdRunning = new ArgoCD(components, dir);
    try {
      const redisPort = await freePort();
      const redis = startComponent(
        components,
        "redis",
        "redis-server",
        ["--bind", "127.0.0.1", "--port", String(redisPort), "--save", "", "--appendonly", "no", "--dir", dir],
        {},
      );
      await waitUntil("Redis to accept connections", () => redis.lines.some((l) => /Ready to accept/.test(l)), {
        timeoutMs: START_TIMEOUT_MS,
        signal: exited(redis),
      });
      const redisAddress = `127.0.0.1:${redisPort}`;
      // Where Argo CD's components keep TLS and SSH known hosts (empty: the repository is a local path) and clones.
      // No GPG: the controller asks the repo-server to verify commit signatures unless it is off in both.
      const common = {
        ARGOCD_FAKE_IN_CLUSTER: "true",
        ARGOCD_GPG_ENABLED: "false",
        ARGOCD_TLS_DATA_PATH: mkdir(join(dir, "tls")),
        ARGOCD_SSH_DATA_PATH: mkdir(join(dir, "ssh")),
        TMPDIR: mkdir(join(dir, "tmp")),
      };
      const [repoPort, repoMetrics, controllerMetrics] = [await freePort(), await freePort(), await freePort()];
      const repoServer = startComponent(
        components,
        "argocd-repo-server",
        argocd,
        [
          ...["--address", "127.0.0.1", "--port", String(repoPort)],
          ...["--metrics-address", "127.0.0.1", "--metrics-port", String(repoMetrics)],
          // TLS as installed: a certificate it makes itself, which the controller accepts without verifying (its
          // default); --disable-tls would have to undo the default mTLS client CA path too.
          ...["--redis", redisAddress, "--logformat", "text"],
        ],
        // It runs the kustomize Argo CD's images ship, found on PATH as there.
        {
          ...common,
          ARGOCD_BINARY_NAME: "argocd-repo-server",
          PATH: `${bin}:${dirname(kustomize)}:${process.env.PATH}`,
        },
      );
      await healthy(repoServer, repoMetrics);
      const controller = startComponent(
        components,
        "argocd-application-controller",
        argocd,
        [
          ...["--namespace", ARGOCD_NAMESPACE],
          ...["--redis", redisAddress, "--repo-server", `127.0.0.1:${repoPort}`],
          ...["--metrics-port", String(controllerMetrics), "--logformat", "text"],
          // Argo CD 3 keeps each resource's health out of the Application's status (argocd-server's resource tree
          // serves it from Redis); without argocd-server, the status is where health is read.
          "--persist-resource-health",
        ],
        // KUBECONFIG: its own client and, with ARGOCD_FAKE_IN_CLUSTER, the in-cluster destination's (Argo CD's
        // Cluster.RESTConfig reads the variable, not --kubeconfig). One replica: no sharding.
        { ...common, ARGOCD_BINARY_NAME: "argocd-application-controller", KUBECONFIG: kubeconfig },
      );
      await healthy(controller, controllerMetrics);
      log(`Argo CD running: application-controller, repo-server and Redis (logs in ${dir})`);
      return argocdRunning;
    } catch (err) {
      await argocdRunning.stop();
      throw err;
    }
  }

  /** The last lines a component wrote, for a failing test's message. */
  output(component: ComponentName): string {
    return this.components.find((c) => c.name === component)?.lines.join("\n") ?? "";
  }
  /** Calls `follower` with each line the component writes from now on, until the returned function is called. */
  follow(component: ComponentName, follower: (line: string) => void): () => void {
    const followers = this.components.find((c) => c.name === component)?.followers;
    followers?.add(follower);
    return () => followers?.delete(follower);
  }

  async stop(): Promise<void> {
    // The controller first: nothing acts on the cluster once the test is done with it.
    for (const c of [...this.components].reverse()) await terminate(c.child);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The CRDs, the settings the components read, and the project every Application of the tests belongs to. */
async function install(client: KubeClient, source: string): Promise<void> {
  await applyObjects(client, [{ apiVersion: "v1", kind: "Namespace", metadata: { name: ARGOCD_NAMESPACE } }]);
  await applyCrds(client, await readManifests(join(source, "manifests/crds")));
  const metadata = (name: string) => ({ name, namespace: ARGOCD_NAMESPACE, labels: PART_OF });
  await applyObjects(client, [
    // Empty: Argo CD's defaults, plus what a test merges in (the health checks of config/argocd).
    { apiVersion: "v1", kind: "ConfigMap", metadata: metadata("argocd-cm") },
    { apiVersion: "v1", kind: "Secret", metadata: metadata("argocd-secret") },
    {
      apiVersion: "argoproj.io/v1alpha1",
      kind: "AppProject",
      metadata: { name: "default", namespace: ARGOCD_NAMESPACE },
      spec: {
        sourceRepos: ["*"],
        destinations: [{ server: "*", namespace: "*" }],
        clusterResourceWhitelist: [{ group: "*", kind: "*" }],
      },
    } as KubeObject,
  ]);
}
