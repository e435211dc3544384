import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { KubeClient } from "../runtime/client.ts";
import { applyCrds, applyObjects, readManifests } from "../runtime/install.ts";
import { selfSignedCertificate } from "../runtime/self-signed.ts";
import { ensureTool, moduleSource } from "./assets.ts";
import { type Component, freePort, healthy, mkdir, startComponent, terminate } from "./host-process.ts";

/*
 * A real KEDA operator beside the control plane, for the autoscaler tests: cmd/operator of the module pinned in
 * hack/keda, as a host process on loopback ports, as KEDA's own `make run` runs it for development. In the cluster:
 * KEDA's CRDs (from its module's config/crd/bases) and its namespace (where it reads the Secrets of cluster-wide objects).
 *
 * What runs is what the tests rely on: the ScaledObject controller, which creates and rewrites the HPA of each
 * ScaledObject from its spec (min/maxReplicaCount) and applies `autoscaling.keda.sh/paused-replicas` itself (deletes
 * the HPA, scales the target to the count, keeps it there). Not run: the metrics adapter (keda-metrics-apiserver):
 * it only serves the external metrics the HPA reads for scaling between the bounds; the real HPA controller keeps a
 * workload within minReplicas/maxReplicas before it reads any metric, which is what a cap or suspension rests on.
 * The admission webhooks are not run either (a ScaledObject the tests write is valid by construction). Nor is KEDA's
 * certificate rotation: having written its Secret the first time, the operator exits for its pod to be restarted
 * (cert-controller's RestartOnSecretRefresh). Its gRPC metrics service, which only the adapter would call, still
 * will not start without a certificate in its cert dir (pkg/metricsservice/utils/tls.go: ca.crt, tls.crt, tls.key):
 * a self-signed one is written there, its own CA.
 */

export const KEDA_NAMESPACE = "keda";
const KEDA_MODULE = resolve(import.meta.dirname, "../../hack/keda");

export class Keda {
  private readonly components: Component[];
  private readonly dir: string;

  private constructor(components: Component[], dir: string) {
    this.components = components;
    this.dir = dir;
  }

  /**
   * Installs KEDA's CRDs into the cluster of `kubeconfig` (whose credentials the operator uses) and starts the
   * operator watching `namespaces` only (KEDA's WATCH_NAMESPACE), so that it leaves other tests' objects alone;
   * resolves once it answers its health probe.
   */
  static async start(kubeconfig: string, namespaces: string[], log: (line: string) => void = () => {}): Promise<Keda> {
    const operator = await ensureTool("keda-operator", log);
    const source = await moduleSource(KEDA_MODULE, "github.com/kedacore/keda/v2");
    const client = KubeClient.load(kubeconfig, "nextgen-keda-setup");
    try {
      await applyObjects(client, [{ apiVersion: "v1", kind: "Namespace", metadata: { name: KEDA_NAMESPACE } }]);
      await applyCrds(client, await readManifests(join(source, "config/crd/bases")));
    } finally {
      await client.close();
    }
    const dir = mkdtempSync(join(tmpdir(), "nextgen-keda-"));
    const components: Component[] = [];
    const keda = new Keda(components, dir);
    try {
      const [probe, grpc] = [await freePort(), await freePort()];
      const running = startComponent(
        components,
        "keda-operator",
        operator,
        [
          "--leader-elect=false",
          "--enable-prometheus-metrics=false",
          `--health-probe-bind-address=127.0.0.1:${probe}`,
          `--metrics-service-bind-address=127.0.0.1:${grpc}`,
          "--enable-cert-rotation=false",
          `--cert-dir=${certDir(join(dir, "certs"))}`,
          `--ca-dir=${mkdir(join(dir, "ca"))}`,
          "--zap-log-level=info",
        ],
        {
          KUBECONFIG: kubeconfig,
          WATCH_NAMESPACE: namespaces.join(","),
          // Where it runs "as a pod": the namespace of its certificates' Secret and of cluster-wide objects.
          POD_NAMESPACE: KEDA_NAMESPACE,
          KEDA_CLUSTER_OBJECT_NAMESPACE: KEDA_NAMESPACE,
        },
      );
      await healthy(running, probe);
      log(`KEDA operator running (watching ${namespaces.join(", ")})`);
      return keda;
    } catch (err) {
      await keda.stop();
      throw err;
    }
  }

  /** The last lines the operator wrote, for a failing test's message. */
  output(): string {
    return this.components.map((c) => c.lines.join("\n")).join("\n");
  }

  async stop(): Promise<void> {
    for (const c of this.components) await terminate(c.child);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A cert dir as KEDA's gRPC server reads it: a self-signed certificate for loopback, which is also its CA. */
function certDir(path: string): string {
  const { cert, key } = selfSignedCertificate(["localhost", "127.0.0.1"]);
  mkdir(path);
  writeFileSync(join(path, "tls.crt"), cert);
  writeFileSync(join(path, "ca.crt"), cert);
  writeFileSync(join(path, "tls.key"), key, { mode: 0o600 });
  return path;
}
