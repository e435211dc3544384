import { randomBytes } from "node:crypto";
import { basename, join } from "node:path";
import { afterAll, expect, inject } from "vitest";
import { ALLOWED_ENDPOINTS_FLAG } from "../../src/controllers/shared/endpoints.ts";
import { OperatorProcess } from "../../src/controlplane/operator-process.ts";
import { KubeClient } from "../../src/runtime/client.ts";
import { type KindRef, NamespaceKind } from "../../src/runtime/kinds.ts";
import type { KubeObject } from "../../src/runtime/objects.ts";
import { waitUntil } from "../../src/runtime/wait.ts";

/**
 * What a file set up while it ran, undone after its tests: first its objects are deleted (in the order asked, while
 * its operators still run their finalizers), then its operators are stopped. Vitest runs only the afterAll hooks
 * registered while a file is collected, not those registered inside beforeAll or a test, so startOperator and
 * deleteAfterFile (called from either) queue their clean-up here and cluster(), called while the file is collected,
 * runs the queues.
 */
const deletions: (() => Promise<void>)[] = [];
const stops: (() => Promise<void>)[] = [];

/** The shared control plane of the integration tests (see global-setup.ts), seen as a cluster admin. */
export function cluster() {
  const info = inject("controlPlane");
  const admin = KubeClient.load(info.adminKubeconfig, "nextgen-test-admin");
  afterAll(async () => {
    try {
      for (const deleteObjects of deletions.splice(0)) await deleteObjects();
    } finally {
      for (const stop of stops.splice(0)) await stop();
      admin.close();
    }
  }, 600_000);
  return { ...info, admin };
}

/** A fresh namespace for one test file. */
export async function createNamespace(admin: KubeClient, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString("hex")}`;
  await admin.create(NamespaceKind, { apiVersion: "v1", kind: "Namespace", metadata: { name } });
  return name;
}

/**
 * The test servers' URLs (Prometheus, Alertmanager, stand-ins of remote APIs), all on the loopback address at ports
 * chosen as they start: what the operator is allowed to send requests to unless a test names its own allow list.
 */
const TEST_ENDPOINTS = `${ALLOWED_ENDPOINTS_FLAG}=http://127.0.0.1:*`;

/**
 * Starts the operator CLI with the operator's own ServiceAccount identity, and waits until it is ready (leading or
 * standing by); stopped after the file's tests. `launch` runs another entry (a compiled install) or wraps it.
 */
export async function startOperator(
  kubeconfig: string,
  args: string[] = [],
  launch: { entry?: string; node?: string; wrapper?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<OperatorProcess> {
  // NEXTGEN_TEST_LOGS=<dir> keeps every operator's whole log there, for failures the last lines do not explain.
  const logs = process.env.NEXTGEN_TEST_LOGS;
  const logFile = logs && join(logs, `operator-${basename(expect.getState().testPath ?? "test")}-${Date.now()}.log`);
  const op = await OperatorProcess.start({
    kubeconfig,
    args: [
      "--log-level",
      "debug",
      ...(args.some((a) => a.startsWith(ALLOWED_ENDPOINTS_FLAG)) ? [] : [TEST_ENDPOINTS]),
      ...args,
    ],
    logFile,
    metricsKubeconfig: inject("controlPlane").adminKubeconfig,
    ...launch,
  });
  // An operator that dies under a test says why: its last lines go to the test output.
  void op.waitExit().then((code) => {
    if (op.stopRequested) return;
    console.error(`operator exited (${code ?? op.child.signalCode}):\n${op.logs.split("\n").slice(-40).join("\n")}`);
  });
  stops.push(async () => {
    await op.stop();
  });
  await op.waitReady();
  return op;
}

/** Stops a program the file started (KEDA, say) after the file's objects are deleted, so that it runs their finalizers. */
export function stopAfterFile(stop: () => Promise<void>): void {
  stops.push(stop);
}

/**
 * After the file's tests, deletes every object of `kinds` (in that order) that carries `labels`, and waits for each
 * kind's to go, so that later files (and their operators' write counts) do not meet this file's leftovers. Runs
 * before the file's operators stop, so that they run finalizers.
 */
export function deleteAfterFile(admin: KubeClient, labels: Record<string, string>, kinds: KindRef[]): void {
  const label = Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  deletions.push(async () => {
    for (const kind of kinds) {
      const leftovers = async () => (await admin.list(kind, { labelSelector: label })).items;
      for (const o of await leftovers()) await admin.delete(kind, o.metadata.namespace, o.metadata.name);
      await waitUntil(`${kind.plural} labelled ${label} to go`, async () => (await leftovers()).length === 0, {
        timeoutMs: 60_000,
        intervalMs: 200,
      });
    }
  });
}

export { waitUntil };
export type { KubeObject };

/**
 * A Deployment of KWOK pods (one container, an image nothing pulls) pinned to Nodes by nodeSelector; podLabels
 * go on its pods as well as app=<name> and labels (e.g. a fault for KWOK's Stages).
 */
/** An autoscaling/v2 HPA on a Deployment, by CPU utilisation (no metrics here: it only keeps min and max). */
export function deploymentHpa(
  namespace: string,
  name: string,
  minReplicas: number,
  maxReplicas: number,
  labels: Record<string, string> = {},
) {
  return {
    apiVersion: "autoscaling/v2",
    kind: "HorizontalPodAutoscaler",
    metadata: { name, namespace, labels },
    spec: {
      scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name },
      minReplicas,
      maxReplicas,
      metrics: [
        { type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 80 } } },
      ],
    },
  } as KubeObject;
}

export function kwokDeployment(opts: {
  namespace: string;
  name: string;
  replicas: number;
  nodeSelector: Record<string, string>;
  labels?: Record<string, string>;
  podLabels?: Record<string, string>;
}) {
  const { namespace, name, replicas, nodeSelector, labels = {}, podLabels = {} } = opts;
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace, labels },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name, ...labels, ...podLabels } },
        spec: {
          nodeSelector,
          // Deleted pods go at once: the tests count replacements, not graceful shutdowns.
          terminationGracePeriodSeconds: 0,
          containers: [{ name: "app", image: "registry.example/app:1" }],
        },
      },
    },
  };
}
