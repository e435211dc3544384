import { test } from "vitest";
import { runScenario } from "./scenario.ts";

test("etcd paused (SIGSTOP) for 30 s, then resumed: nothing lost, nothing done twice", async () => {
  await runScenario({
    name: "etcd SIGSTOP for 30 s",
    fault: async ({ cp, trigger, hold }) => {
      await trigger();
      cp.pause("etcd");
      try {
        await hold(30_000);
      } finally {
        cp.resume("etcd");
      }
    },
  });
});
