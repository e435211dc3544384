import type { ControllerDefinition } from "../runtime/controller.ts";
import { pqKeySetController } from "./pqkeyset/controller.ts";

/** Every controller the manager runs. Each kind's controller adds itself here. */
export const controllers: ControllerDefinition<never>[] = [
  pqKeySetController as unknown as ControllerDefinition<never>,
];
