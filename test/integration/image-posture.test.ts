import { chmod, copyFile, cp, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { readManifests } from "../../src/runtime/install.ts";
import { type PQKeySet, PQKeySetKind } from "../../src/crds/pqkeyset.ts";
import { QuantumJobKind } from "../../src/crds/quantumjob.ts";
import { CarbonBudgetKind } from "../../src/crds/carbonbudget.ts";
import { EdgeNodeKind } from "../../src/crds/edgenode.ts";
import { QuantumBackendKind } from "../../src/crds/quantumbackend.ts";
import { RemediationPolicyKind } from "../../src/crds/remediationpolicy.ts";
import { Discovery } from "../../src/runtime/discovery.ts";
import { SecretKind } from "../../src/runtime/kinds.ts";
import { run } from "../../src/controlplane/assets.ts";
import type { OperatorProcess } from "../../src/controlplane/operator-process.ts";
import { imageNodeOptions } from "../../bench/util.ts";
import { type KubeObject, cluster, createNamespace, deleteAfterFile, startOperator, waitUntil } from "./harness.ts";

/**
 * The image's security posture without Docker: the production install (`npm ci --omit=dev` and `dist/`, as the
 * Dockerfile's final stage holds them) run the way the Deployment runs it — uid and gid 65532, every filesystem
 * read-only but an empty /tmp (the manifest's one emptyDir), no capabilities, no privilege escalation, nothing in
 * its environment but what the image sets — against the real control plane, reconciling every sample.
 */

const { admin, operatorKubeconfig } = cluster();
const ROOT = resolve(import.meta.dirname, "../..");
const FILE = { "test.nextgen.itechsmart.io/file": "image-posture" };

type PodSpec = {
  securityContext: { runAsNonRoot?: boolean; runAsUser: number; runAsGroup: number };
  containers: Array<{
    args: string[];
    securityContext: {
      allowPrivilegeEscalation?: boolean;
      readOnlyRootFilesystem?: boolean;
      capabilities?: { drop?: string[] };
    };
    volumeMounts: Array<{ name: string; mountPath: string }>;
  }>;
  volumes: Array<{ name: string; emptyDir?: object }>;
};

/** The Deployment as config/manager ships it: what the sandbox below must enforce. */
async function deploymentPod(): Promise<PodSpec> {
  const manifests = await readManifests(join(ROOT, "config/manager"));
  const deployment = manifests.find((o) => o.kind === "Deployment") as KubeObject & {
    spec: { template: { spec: PodSpec } };
  };
  return deployment.spec.template.spec;
}

/**
 * In a mount namespace of its own: every mount but the kernel's (proc, sys, dev) remounted read-only, an empty
 * tmpfs on each of WRITABLE (the Deployment's emptyDirs), then the command as RUN_AS (uid:gid) with no capabilities
 * in any set, no_new_privs and no environment but the image's.
 */
const SANDBOX = `set -eu
awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r mountpoint; do
  case "$mountpoint" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
  mount -o remount,bind,ro "$mountpoint"
done
for path in $WRITABLE; do mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$path"; done
exec setpriv --reuid="\${RUN_AS%:*}" --regid="\${RUN_AS#*:}" --clear-groups --inh-caps=-all --ambient-caps=-all \\
  --bounding-set=-all --no-new-privs -- env -i PATH=/usr/local/bin:/usr/bin:/bin NODE_ENV=production \\
  "NODE_OPTIONS=$IMAGE_NODE_OPTIONS" "$@"`;

let install: string;
let operator: OperatorProcess;
let ns: string;
let pod: PodSpec;

beforeAll(async () => {
  // Everything the process reads lives here, as in the image: outside /tmp (which the sandbox covers with an empty
  // tmpfs), root-owned and readable by 65532.
  install = await mkdtemp("/var/tmp/nextgen-image-");
  await chmod(install, 0o755);
  await run("npm", ["run", "-s", "build"], ROOT, process.env, () => {});
  await cp(join(ROOT, "dist"), join(install, "dist"), { recursive: true });
  for (const file of ["package.json", "package-lock.json", ".npmrc"])
    await copyFile(join(ROOT, file), join(install, file));
  // The Dockerfile's prod-deps stage.
  await run(
    "npm",
    ["ci", "--omit=dev", "--no-audit", "--no-fund"],
    install,
    { ...process.env, ONNXRUNTIME_NODE_INSTALL: "skip" },
    () => {},
  );
  // The image's own Node, as /usr/local/bin/node is in it: this checkout's may be under /tmp, which the sandbox covers.
  await mkdir(join(install, "bin"));
  await copyFile(process.execPath, join(install, "bin/node"));
  // The token the Deployment's ServiceAccount mount would hold, readable by 65532.
  await copyFile(operatorKubeconfig, join(install, "operator.kubeconfig"));
  await chmod(join(install, "operator.kubeconfig"), 0o644);
  await run("chmod", ["-R", "a+rX,go-w", install], install, process.env, () => {});
  ns = await createNamespace(admin, "image-posture");
  deleteAfterFile(admin, FILE, [
    QuantumJobKind,
    PQKeySetKind,
    RemediationPolicyKind,
    CarbonBudgetKind,
    QuantumBackendKind,
    EdgeNodeKind,
  ]);
  pod = await deploymentPod();
  const container = pod.containers[0];
  // The manifest's own flags, but for the addresses, which the harness binds to free loopback ports.
  const args = (container?.args ?? []).filter((a) => a !== "run" && !a.includes("bind-address"));
  operator = await startOperator(join(install, "operator.kubeconfig"), [...args, "--namespace", ns], {
    entry: join(install, "dist/cli/main.js"),
    node: join(install, "bin/node"),
    env: {
      IMAGE_NODE_OPTIONS: imageNodeOptions(),
      RUN_AS: `${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`,
      WRITABLE: (container?.volumeMounts ?? []).map((m) => m.mountPath).join(" "),
    },
    wrapper: ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", SANDBOX, "sandbox"],
  });
}, 900_000);

afterAll(async () => {
  await rm(install, { recursive: true, force: true });
});

test("the Deployment asks for what the sandbox enforces", () => {
  const container = pod.containers[0];
  expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 });
  expect(container?.securityContext).toMatchObject({
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
  });
  // Every writable path is an emptyDir: nothing the operator writes outlives it.
  for (const mount of container?.volumeMounts ?? []) {
    expect(pod.volumes.find((v) => v.name === mount.name)?.emptyDir, mount.mountPath).toBeDefined();
  }
});

test("the operator runs as 65532 with no capabilities, no_new_privs, and writes only to the manifest's emptyDirs", async () => {
  const status = await readFile(`/proc/${operator.pid}/status`, "utf8");
  const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, "m").exec(status)?.[1]?.trim().split(/\s+/);
  expect(field("Uid")).toEqual(Array(4).fill(String(pod.securityContext.runAsUser)));
  expect(field("Gid")).toEqual(Array(4).fill(String(pod.securityContext.runAsGroup)));
  expect(field("Groups")).toEqual([""]);
  for (const set of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"])
    expect(field(set), set).toEqual(["0000000000000000"]);
  expect(field("NoNewPrivs")).toEqual(["1"]);
  // Its mounts: writable only where the kernel's pseudo-filesystems are, and the emptyDirs.
  const writable = (await readFile(`/proc/${operator.pid}/mountinfo`, "utf8"))
    .trim()
    .split("\n")
    .map((line) => line.split(" "))
    .filter((f) => (f[5] ?? "").split(",").includes("rw"))
    .map((f) => f[4] as string)
    .filter((m) => !/^\/(proc|sys|dev)(\/|$)/.test(m));
  expect(writable).toEqual(pod.containers[0]?.volumeMounts.map((m) => m.mountPath));
  // The process is the compiled install, not this checkout.
  const cmdline = (await readFile(`/proc/${operator.pid}/cmdline`, "utf8")).split("\0");
  expect(cmdline).toContain(join(install, "dist/cli/main.js"));
});

test("it reconciles a sample of every kind", async () => {
  const samples = await readManifests(join(ROOT, "config/samples"));
  const discovery = new Discovery(admin);
  const created: Array<{ kind: Awaited<ReturnType<Discovery["kindRef"]>>; obj: KubeObject }> = [];
  for (const sample of samples) {
    const kind = await discovery.kindRef(sample.apiVersion, sample.kind);
    const metadata = {
      ...sample.metadata,
      labels: { ...sample.metadata.labels, ...FILE },
      ...(kind.namespaced ? { namespace: ns } : {}),
    };
    created.push({ kind, obj: await admin.create(kind, { ...sample, metadata }) });
  }
  // Every object's status comes from a reconcile of its generation.
  for (const { kind, obj } of created) {
    await waitUntil(
      `${obj.kind} ${obj.metadata.name} to be reconciled`,
      async () => {
        const now = await admin.get<KubeObject & { status?: { observedGeneration?: number } }>(
          kind,
          obj.metadata.namespace,
          obj.metadata.name,
        );
        return now?.status?.observedGeneration === now?.metadata.generation;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  }
  // What needs more than the API: keys generated (the crypto), a circuit run (WebAssembly in worker threads).
  await waitUntil(
    "PQKeySet payments-kem to have a key",
    async () => (await admin.get<PQKeySet>(PQKeySetKind, ns, "payments-kem"))?.status?.currentKeyId !== undefined,
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  const secret = await admin.get<KubeObject & { data?: Record<string, string> }>(SecretKind, ns, "payments-kem");
  expect(Object.keys(secret?.data ?? {}).length).toBeGreaterThan(0);
  await waitUntil(
    "QuantumJob bell Succeeded",
    async () =>
      (await admin.get<KubeObject & { status?: { phase?: string } }>(QuantumJobKind, ns, "bell"))?.status?.phase ===
      "Succeeded",
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  // Nothing it tried to write to its own filesystem failed.
  expect(operator.logs).not.toMatch(/EROFS|EACCES|read-only file system/i);
});
