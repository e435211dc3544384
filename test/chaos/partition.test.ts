import { expect, test } from "vitest";
import { NetworkNamespace } from "../../src/controlplane/netns.ts";
import { operatorInNamespace, runScenario } from "./scenario.ts";

test("a 60 s network partition between the operator and the API server: nothing lost, nothing done twice", async () => {
  const netns = NetworkNamespace.create();
  const figures = await runScenario({
    name: "network partition for 60 s",
    controlPlane: { extraServingIPs: [netns.hostAddress] },
    operator: operatorInNamespace(netns),
    fault: async ({ trigger, hold }) => {
      await trigger();
      netns.partition();
      try {
        await hold(60_000);
      } finally {
        netns.heal();
      }
    },
    cleanup: () => netns.delete(),
  });
  // The site's Nodes heartbeated throughout (KWOK reaches the API server): the operator, not they, was cut off.
  expect(figures.effects.siteOfflineAlarms, "Offline events of a site whose Nodes kept heartbeating").toBe(0);
});
