import { expect, test } from "vitest";
import { NetworkNamespace } from "../../src/controlplane/netns.ts";
import type { OperatorProcess } from "../../src/controlplane/operator-process.ts";
import { KEEPALIVE_IDLE_MS } from "../../src/runtime/client.ts";
import { operatorInNamespace, runScenario } from "./scenario.ts";

/**
 * The bound: TCP keepalive probes start after KEEPALIVE_IDLE_MS of silence and give up after ten unanswered a
 * second apart; then a watch starts again (its backoff starts at a second) and the work catches up. Without the
 * probes a dead watch lasts until its timeout, 5 to 10 minutes.
 */
const BOUND_SECONDS = 60;

test("every connection to the API server dies silently (dropped, no reset): the informers are current again within a minute", async () => {
  const netns = NetworkNamespace.create();
  let operator: OperatorProcess | undefined;
  let droppedAt = "";
  const figures = await runScenario({
    name: "open connections silently dropped",
    controlPlane: { extraServingIPs: [netns.hostAddress] },
    operator: operatorInNamespace(netns),
    fault: async (ctx) => {
      operator = ctx.operator;
      // The connections the operator holds (its watches among them) die first; the work that needs their events
      // is set off just after, so it is done only once the informers noticed and watch again.
      netns.blackHoleOpenConnections();
      droppedAt = new Date().toISOString();
      await ctx.trigger();
    },
    cleanup: () => netns.delete(),
  });
  // The watches failed as probing found their connections dead, and started again.
  const restarts = (operator?.logs ?? "")
    .split("\n")
    .filter((l) => l.includes('"list/watch failed; retrying"') && (JSON.parse(l) as { ts: string }).ts > droppedAt);
  expect(restarts.length, "watches restarted after the drop").toBeGreaterThan(0);
  expect(KEEPALIVE_IDLE_MS).toBeLessThan(BOUND_SECONDS * 1000);
  expect(figures.recoverySeconds, "seconds from the drop until everything converged").toBeLessThan(BOUND_SECONDS);
});
