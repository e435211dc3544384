import { carbonBudgetCrd } from "./carbonbudget.ts";
import { edgeNodeCrd } from "./edgenode.ts";
import { pqKeySetCrd } from "./pqkeyset.ts";
import { quantumBackendCrd } from "./quantumbackend.ts";
import { quantumJobCrd } from "./quantumjob.ts";
import { remediationPolicyCrd } from "./remediationpolicy.ts";
import type { CrdDefinition } from "./types.ts";

/** Every custom resource kind of the operator. Each kind's module adds itself here. */
export const crds: CrdDefinition[] = [
  pqKeySetCrd,
  edgeNodeCrd,
  quantumBackendCrd,
  quantumJobCrd,
  remediationPolicyCrd,
  carbonBudgetCrd,
];
