import type { KubeClient } from "../runtime/client.ts";

/**
 * A ServiceAccount made for a test or the demo, optionally bound to a ClusterRole, and a token of it from the
 * TokenRequest API (what a projected volume would mount): e.g. Prometheus' identity, bound to metrics-reader.
 */
export async function serviceAccountToken(
  admin: KubeClient,
  namespace: string,
  name: string,
  clusterRole?: string,
): Promise<string> {
  await admin.request("POST", `/api/v1/namespaces/${namespace}/serviceaccounts`, {
    body: { apiVersion: "v1", kind: "ServiceAccount", metadata: { name } },
  });
  if (clusterRole) {
    // Namespaced binding of a ClusterRole cannot grant a non-resource URL: a ClusterRoleBinding, named after both.
    await admin.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
      body: {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name: `${namespace}-${name}` },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: clusterRole },
        subjects: [{ kind: "ServiceAccount", name, namespace }],
      },
    });
  }
  const review = await admin.request<{ status: { token: string } }>(
    "POST",
    `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
    { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } } },
  );
  return review.status.token;
}
