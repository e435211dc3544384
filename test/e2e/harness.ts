import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { ctr, REAL_NODE_LABEL } from "../../src/controlplane/real-node.ts";
import { crds } from "../../src/crds/index.ts";
import type { KubeClient } from "../../src/runtime/client.ts";
import { type KindRef, PodKind } from "../../src/runtime/kinds.ts";
import type { Condition, KubeObject } from "../../src/runtime/objects.ts";

export type ContainerState = {
  waiting?: { reason?: string };
  running?: { startedAt: string };
  terminated?: { exitCode: number; reason?: string; message?: string };
};
export type Pod = KubeObject & {
  spec?: { nodeName?: string; containers?: { image: string }[] };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: Condition[];
    containerStatuses?: {
      image: string;
      containerID?: string;
      ready: boolean;
      restartCount: number;
      state: ContainerState;
      lastState: ContainerState;
    }[];
  };
};

/** The name a user's `kustomize edit set image` would give: another registry's, to prove the override is what runs. */
export const IMAGE_OVERRIDE = {
  name: "ghcr.io/itechsmart/nextgen-operator",
  newName: "localhost/nextgen-operator",
  newTag: "e2e",
};

/**
 * Writes into `dir` a user's overlay of config/default (at `configDefault`): what `kustomize edit set image` writes,
 * nothing else. Tags the operator's image on the node with the override's name, as a user would have pushed it under
 * their own: the node holds it, so nothing is pulled.
 */
export async function writeInstallOverlay(
  dir: string,
  configDefault: string,
  node: { containerdSocket: string },
  operatorImage: string,
): Promise<void> {
  writeFileSync(
    join(dir, "kustomization.yaml"),
    [
      "apiVersion: kustomize.config.k8s.io/v1beta1",
      "kind: Kustomization",
      "resources:",
      // kustomize takes a base outside the overlay's folder, but only by a relative path.
      `  - ${relative(dir, configDefault)}`,
      "images:",
      `  - name: ${IMAGE_OVERRIDE.name}`,
      `    newName: ${IMAGE_OVERRIDE.newName}`,
      `    newTag: ${IMAGE_OVERRIDE.newTag}`,
      "",
    ].join("\n"),
  );
  await ctr(
    node.containerdSocket,
    "images",
    "tag",
    "--force",
    operatorImage,
    `${IMAGE_OVERRIDE.newName}:${IMAGE_OVERRIDE.newTag}`,
  );
}

/** The KindRef of one of the operator's kinds. */
export function crdKind(kind: string): KindRef {
  const crd = crds.find((c) => c.kind.kind === kind);
  if (!crd) throw new Error(`no CRD of kind ${kind}`);
  return crd.kind;
}

/** Runs kubectl (the one built with the control plane) as the cluster admin; throws with its stderr on failure. */
export function kubectl(bin: string, kubeconfig: string, ...args: string[]): string {
  try {
    return execFileSync(bin, [`--kubeconfig=${kubeconfig}`, ...args], { encoding: "utf8", stdio: "pipe" });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`kubectl ${args.join(" ")}: ${e.stderr || e.message}`);
  }
}

/** The node's running containers (containerd's tasks): container ID to its process's PID on this machine. */
export async function containerdTasks(socket: string): Promise<Map<string, number>> {
  const out = await ctr(socket, "tasks", "list");
  // TASK  PID  STATUS, after a header line.
  return new Map(
    out
      .trim()
      .split("\n")
      .slice(1)
      .map((line) => line.split(/\s+/))
      .map(([id, pid]) => [id as string, Number(pid)]),
  );
}

/**
 * The first state of a Pod (by name, or any matching a label selector) that passes `test`, watched from the current
 * ones: the kubelet publishes some states (CrashLoopBackOff between restarts) for well under a second, which polling
 * could miss.
 */
export async function podWhere(
  admin: KubeClient,
  namespace: string,
  which: { name: string } | { labelSelector: string },
  what: string,
  test: (pod: Pod) => boolean,
  timeoutMs = 120_000,
): Promise<Pod> {
  const labelSelector = "labelSelector" in which ? which.labelSelector : undefined;
  const matches = (pod: Pod) => ("name" in which ? pod.metadata.name === which.name : true) && test(pod);
  const current = await admin.list<Pod>(PodKind, { namespace, labelSelector });
  const hit = current.items.find(matches);
  if (hit) return hit;
  const done = new AbortController();
  const timer = setTimeout(() => done.abort(), timeoutMs);
  let found: Pod | undefined;
  try {
    await admin.watch<Pod>(
      PodKind,
      {
        namespace,
        labelSelector,
        resourceVersion: current.metadata.resourceVersion,
        timeoutSeconds: Math.ceil(timeoutMs / 1000),
      },
      ({ object }) => {
        if (!found && matches(object)) {
          found = object;
          done.abort();
        }
      },
      done.signal,
    );
  } catch (err) {
    if (!done.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
  }
  if (!found) throw new Error(`timed out after ${timeoutMs} ms waiting for a Pod (${JSON.stringify(which)}) ${what}`);
  return found;
}

export type ProbeOptions = { replicas?: number; memoryLimit?: string };

/** A Deployment of node-probe containers (`image`) on the real node in `namespace` (`args` pick what they do). */
export function nodeProbeDeployment(
  namespace: string,
  image: string,
  name: string,
  args: string[],
  opts: ProbeOptions = {},
): KubeObject {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace },
    spec: {
      replicas: opts.replicas ?? 2,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          nodeSelector: { [REAL_NODE_LABEL]: "true" },
          terminationGracePeriodSeconds: 2,
          containers: [
            {
              name: "probe",
              image,
              imagePullPolicy: "Never",
              args,
              resources: {
                requests: { cpu: "50m", memory: opts.memoryLimit ?? "16Mi" },
                ...(opts.memoryLimit && { limits: { memory: opts.memoryLimit } }),
              },
            },
          ],
        },
      },
    },
  } as KubeObject;
}
