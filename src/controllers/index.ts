import type { ControllerDefinition } from "../runtime/controller.ts";
import { carbonBudgetController } from "./carbonbudget/controller.ts";
import { edgeNodeController } from "./edgenode/controller.ts";
import { pqKeySetController } from "./pqkeyset/controller.ts";
import { quantumBackendController } from "./quantumbackend/controller.ts";
import { quantumJobController } from "./quantumjob/controller.ts";
import { remediationPolicyController } from "./remediationpolicy/controller.ts";

/** Every controller the manager runs. Each kind's controller adds itself here. */
export const controllers = [
  pqKeySetController,
  edgeNodeController,
  quantumBackendController,
  quantumJobController,
  remediationPolicyController,
  carbonBudgetController,
] as unknown as ControllerDefinition<never>[];
