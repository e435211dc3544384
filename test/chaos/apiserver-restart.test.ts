import { test } from "vitest";
import { runScenario } from "./scenario.ts";

test("kube-apiserver stopped and started again: nothing lost, nothing done twice", async () => {
  await runScenario({
    name: "kube-apiserver restart",
    fault: async ({ cp, trigger }) => {
      await trigger();
      await cp.stopApiserver();
      await cp.startApiserver();
    },
  });
});
