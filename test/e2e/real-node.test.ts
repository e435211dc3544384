import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { NODE_ADDRESS, POD_CIDR, REAL_NODE_LABEL, REAL_NODE_NAME } from "../../src/controlplane/real-node.ts";
import { KubeClient } from "../../src/runtime/client.ts";
import { NamespaceKind, NodeKind, PodKind } from "../../src/runtime/kinds.ts";
import type { Condition, KubeObject } from "../../src/runtime/objects.ts";
import { waitUntil } from "../../src/runtime/wait.ts";
import { type Pod, podWhere as podWhereIn } from "./harness.ts";
import { readSysctls } from "./global-setup.ts";

type Node = KubeObject & {
  status?: { conditions?: Condition[]; addresses?: { type: string; address: string }[] };
};

const admin = KubeClient.load(inject("controlPlane").adminKubeconfig, "nextgen-e2e");
const namespace = `real-node-${Date.now().toString(36)}`;
const image = inject("images").probe;

beforeAll(async () => {
  await admin.create(NamespaceKind, { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
  // The ServiceAccount admission plugin rejects Pods until the controller-manager has made the default account.
  await waitUntil(
    "the default ServiceAccount",
    () => admin.request("GET", `/api/v1/namespaces/${namespace}/serviceaccounts/default`).then(() => true),
    { timeoutMs: 30_000 },
  );
});

afterAll(async () => {
  await admin.delete(NamespaceKind, undefined, namespace);
  await admin.close();
});

/** A Pod of one node-probe container on the real node; `memoryLimit` caps its memory. */
async function createPod(
  name: string,
  args: string[],
  opts: { restartPolicy?: string; memoryLimit?: string } = {},
): Promise<void> {
  await admin.create(PodKind, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace },
    spec: {
      nodeSelector: { [REAL_NODE_LABEL]: "true" },
      restartPolicy: opts.restartPolicy ?? "Always",
      terminationGracePeriodSeconds: 5,
      containers: [
        {
          name: "probe",
          image,
          // Imported into the node's containerd when it started; nothing may be pulled.
          imagePullPolicy: "Never",
          args,
          ...(opts.memoryLimit && { resources: { limits: { memory: opts.memoryLimit } } }),
        },
      ],
    },
  });
}

/** The first state of Pod `name` that passes `test` (harness.podWhere: watched, not polled). */
const podWhere = (name: string, what: string, test: (pod: Pod) => boolean, timeoutMs = 90_000) =>
  podWhereIn(admin, namespace, { name }, what, test, timeoutMs);

const container = (pod: Pod) => pod.status?.containerStatuses?.[0];

describe("the real node", () => {
  test("registers Ready with its label and the namespace's address, not as a KWOK node", async () => {
    const node = await admin.get<Node>(NodeKind, undefined, REAL_NODE_NAME);
    expect(node?.metadata.labels?.[REAL_NODE_LABEL]).toBe("true");
    expect(node?.metadata.labels?.["kwok.x-k8s.io/node"]).toBeUndefined();
    expect(node?.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(node?.status?.addresses).toContainEqual({ type: "InternalIP", address: NODE_ADDRESS });
  });

  test("leaves the host's kernel tunables as they were before it started", () => {
    expect(readSysctls()).toEqual(inject("hostSysctls"));
  });

  test("runs a Pod whose address the host reaches", async () => {
    const created = Date.now();
    await createPod("serve", ["serve"]);
    const pod = await podWhere("serve", "Running", (p) => p.status?.phase === "Running");
    process.stderr.write(`[e2e] Pod created to Running in ${((Date.now() - created) / 1000).toFixed(1)} s\n`);
    const [prefix] = POD_CIDR.split(".0/");
    expect(pod.status?.podIP?.startsWith(`${prefix}.`)).toBe(true);
    // The route to the pod CIDR through the node's namespace, as a Prometheus on the host would scrape it.
    const body = await waitUntil(
      "the Pod's server to answer",
      () =>
        fetch(`http://${pod.status!.podIP}:8080/metrics`, { signal: AbortSignal.timeout(2000) }).then((r) => r.text()),
      { timeoutMs: 15_000 },
    );
    expect(body).toBe("node_probe_up 1\n");
  });

  test("a Pod reaches the API server through the kubernetes Service with its projected token", async () => {
    await createPod("whoami", ["whoami"], { restartPolicy: "Never" });
    const pod = await podWhere("whoami", "to finish", (p) => ["Succeeded", "Failed"].includes(p.status?.phase ?? ""));
    expect(container(pod)?.state.terminated?.message).toBe(`system:serviceaccount:${namespace}:default`);
    expect(pod.status?.phase).toBe("Succeeded");
    // The API server reads the container's log from the kubelet, with the client certificate the kubelet trusts.
    const log = await admin.request<{ username: string }>("GET", `/api/v1/namespaces/${namespace}/pods/whoami/log`);
    expect(log.username).toBe(`system:serviceaccount:${namespace}:default`);
  });

  test("a container exiting 1 goes to CrashLoopBackOff", async () => {
    await createPod("crash", ["exit", "1"]);
    // The kubelet may publish the first back-off only with a later restart, backing off 10 s, 20 s, 40 s...
    const pod = await podWhere(
      "crash",
      "in CrashLoopBackOff",
      (p) => container(p)?.state.waiting?.reason === "CrashLoopBackOff",
      150_000,
    );
    expect(container(pod)?.lastState.terminated?.exitCode).toBe(1);
    expect(container(pod)?.restartCount).toBeGreaterThanOrEqual(1);
  });

  test("a container over its memory limit is OOMKilled by the kernel", async () => {
    await createPod("allocate", ["allocate"], { restartPolicy: "Never", memoryLimit: "32Mi" });
    const pod = await podWhere("allocate", "terminated", (p) => container(p)?.state.terminated !== undefined);
    expect(container(pod)?.state.terminated).toMatchObject({ reason: "OOMKilled", exitCode: 137 });
  });
});
