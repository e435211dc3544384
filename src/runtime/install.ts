import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { loadAll } from "js-yaml";
import type { KubeClient } from "./client.ts";
import { Discovery } from "./discovery.ts";
import type { KubeObject } from "./objects.ts";
import { waitUntil } from "./wait.ts";
import { OPERATOR_NAMESPACE } from "./identity.ts";

/** The YAML documents of a file or of every .yaml file in a folder (kustomization files excepted). */
export async function readManifests(path: string): Promise<KubeObject[]> {
  const files = path.endsWith(".yaml")
    ? [path]
    : (await readdir(path))
        .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
        .sort()
        .map((f) => join(path, f));
  const docs: KubeObject[] = [];
  for (const f of files) {
    for (const d of loadAll(await readFile(f, "utf8"))) if (d && typeof d === "object") docs.push(d as KubeObject);
  }
  return docs;
}

/** Server-side applies objects in order, as `kubectl apply --server-side` would. */
export async function applyObjects(
  client: KubeClient,
  objects: KubeObject[],
  defaultNamespace = "default",
): Promise<void> {
  const discovery = new Discovery(client);
  for (const obj of objects) {
    const kind = await discovery.kindRef(obj.apiVersion, obj.kind);
    const namespace = kind.namespaced ? (obj.metadata.namespace ?? defaultNamespace) : undefined;
    await client.apply(kind, { ...obj, metadata: { ...obj.metadata, namespace } });
  }
}

/** Server-side applies CustomResourceDefinitions and waits until the API server serves each (Established). */
export async function applyCrds(client: KubeClient, crds: KubeObject[], timeoutMs = 60_000): Promise<void> {
  await applyObjects(client, crds);
  for (const crd of crds) {
    await waitUntil(
      `CRD ${crd.metadata.name} to be established`,
      async () => {
        const live = await client.request<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(
          "GET",
          `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
        );
        return live.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
      },
      { timeoutMs },
    );
  }
}

/** Installs what the operator needs before it starts: its namespace, the CRDs (until established) and its RBAC. */
export async function installPrerequisites(client: KubeClient, root: string, timeoutMs = 60_000): Promise<void> {
  await applyObjects(client, [{ apiVersion: "v1", kind: "Namespace", metadata: { name: OPERATOR_NAMESPACE } }]);
  await applyCrds(client, await readManifests(join(root, "config/crd")), timeoutMs);
  await applyObjects(client, await readManifests(join(root, "config/rbac")));
}
