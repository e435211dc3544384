import { test } from "vitest";
import type { KindRef } from "../../src/runtime/kinds.ts";
import type { KubeObject } from "../../src/runtime/objects.ts";
import { waitUntil } from "../../src/runtime/wait.ts";
import { runScenario } from "./scenario.ts";

const flowcontrol = (kind: string, plural: string): KindRef => ({
  group: "flowcontrol.apiserver.k8s.io",
  version: "v1",
  kind,
  plural,
  namespaced: false,
});
const PriorityLevelKind = flowcontrol("PriorityLevelConfiguration", "prioritylevelconfigurations");
const FlowSchemaKind = flowcontrol("FlowSchema", "flowschemas");
const SQUEEZE = "nextgen-chaos-squeeze";
type FlowSchema = KubeObject & { status?: { conditions?: { type: string; status: string }[] } };

test("the API server throttling the operator (APF) for 60 s: 429s, yet nothing lost, nothing done twice", async () => {
  await runScenario({
    name: "APF squeeze for 60 s",
    fault: async ({ admin, workload, trigger, hold }) => {
      // The smallest share of the server's seats, none borrowed, no queue: what exceeds it is answered 429 at once.
      await admin.create(PriorityLevelKind, {
        apiVersion: "flowcontrol.apiserver.k8s.io/v1",
        kind: "PriorityLevelConfiguration",
        metadata: { name: SQUEEZE },
        spec: {
          type: "Limited",
          limited: {
            nominalConcurrencyShares: 1,
            lendablePercent: 0,
            borrowingLimitPercent: 0,
            limitResponse: { type: "Reject" },
          },
        },
      } as unknown as KubeObject);
      // Precedence 500 comes before the suggested schemas that would match the operator (service-accounts, 9000).
      await admin.create(FlowSchemaKind, {
        apiVersion: "flowcontrol.apiserver.k8s.io/v1",
        kind: "FlowSchema",
        metadata: { name: SQUEEZE },
        spec: {
          priorityLevelConfiguration: { name: SQUEEZE },
          matchingPrecedence: 500,
          distinguisherMethod: { type: "ByUser" },
          rules: [
            {
              subjects: [{ kind: "User", user: { name: "system:serviceaccount:itechsmart-nextgen:nextgen-operator" } }],
              resourceRules: [
                { verbs: ["*"], apiGroups: ["*"], resources: ["*"], clusterScope: true, namespaces: ["*"] },
              ],
              nonResourceRules: [{ verbs: ["*"], nonResourceURLs: ["*"] }],
            },
          ],
        },
      } as unknown as KubeObject);
      // The server's APF controller marks a schema whose priority level exists: from then on it classifies by it.
      await waitUntil(
        "the API server to take up the FlowSchema",
        async () =>
          (await admin.get<FlowSchema>(FlowSchemaKind, undefined, SQUEEZE))?.status?.conditions?.some(
            (c) => c.type === "Dangling" && c.status === "False",
          ),
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      await trigger();
      // A burst while squeezed: 30 more key sets, each a Secret, a ConfigMap and a status to write.
      await workload.addFleet(30);
      await hold(60_000);
      await admin.delete(FlowSchemaKind, undefined, SQUEEZE);
      await admin.delete(PriorityLevelKind, undefined, SQUEEZE);
    },
  });
});
