import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { NetworkNamespace } from "../../src/controlplane/netns.ts";
import { runScenario } from "./scenario.ts";

test("a 60 s network partition between the operator and the API server: nothing lost, nothing done twice", async () => {
  const netns = NetworkNamespace.create();
  const inside = netns.namespaceAddress;
  const figures = await runScenario({
    name: "network partition for 60 s",
    controlPlane: { extraServingIPs: [netns.hostAddress] },
    operator: (cp) => {
      // The operator's identity, reaching the API server over the veth pair instead of the loopback.
      const kubeconfig = join(cp.dir, "operator-netns.kubeconfig");
      const host = new URL(cp.apiserverUrl).host;
      const yaml = readFileSync(cp.operatorKubeconfig, "utf8").replace(
        cp.apiserverUrl,
        `https://${host.replace("127.0.0.1", netns.hostAddress)}`,
      );
      writeFileSync(kubeconfig, yaml, { mode: 0o600 });
      return {
        kubeconfig,
        wrapper: netns.wrapper,
        // Served on the namespace's address so that the test reads them from the host (later flags win).
        args: ["--metrics-bind-address", `${inside}:0`, "--health-probe-bind-address", `${inside}:0`],
      };
    },
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
