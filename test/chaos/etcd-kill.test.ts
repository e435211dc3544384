import { test } from "vitest";
import { runScenario } from "./scenario.ts";

test("etcd killed (SIGKILL) and restarted on its data after 10 s: nothing lost, nothing done twice", async () => {
  await runScenario({
    name: "etcd SIGKILL, restarted after 10 s",
    fault: async ({ cp, trigger, hold }) => {
      await trigger();
      await cp.killEtcd();
      await hold(10_000);
      await cp.startEtcd();
    },
  });
});
