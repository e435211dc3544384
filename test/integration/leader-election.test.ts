import { describe, expect, test } from "vitest";
import { LEADER_ELECTION_ID, OPERATOR_NAMESPACE } from "../../src/runtime/identity.ts";
import { LeaseKind } from "../../src/runtime/kinds.ts";
import type { KubeObject } from "../../src/runtime/objects.ts";
import { cluster, startOperator, waitUntil } from "./harness.ts";

type Lease = KubeObject & { spec: { holderIdentity?: string; leaseTransitions?: number } };

const { admin, operatorKubeconfig } = cluster();
const lease = () => admin.get<Lease>(LeaseKind, OPERATOR_NAMESPACE, LEADER_ELECTION_ID);
const electArgs = ["--leader-elect", "--leader-election-namespace", OPERATOR_NAMESPACE];

// Both processes run as the operator's ServiceAccount: the leader-election Role of config/rbac must suffice.
describe("leader election between two operator processes", () => {
  test("one leads, the other stands by and takes over within ~20 s of the leader being killed", async () => {
    const first = await startOperator(operatorKubeconfig, electArgs);
    await waitUntil("the first operator to lead", async () => (await first.state()) === "leading", {
      timeoutMs: 30_000,
    });
    const second = await startOperator(operatorKubeconfig, electArgs);
    expect(await second.state()).toBe("standby");
    const held = await lease();
    expect(held?.spec.holderIdentity).toBeTruthy();

    await first.stop("SIGKILL");
    const killedAt = Date.now();
    await waitUntil("the second operator to lead", async () => (await second.state()) === "leading", {
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const takeoverMs = Date.now() - killedAt;
    console.error(`leader hand-over after SIGKILL took ${takeoverMs} ms`);
    expect(takeoverMs).toBeLessThan(25_000);
    const taken = await lease();
    expect(taken?.spec.holderIdentity).not.toBe(held?.spec.holderIdentity);
    expect(taken?.spec.leaseTransitions).toBe((held?.spec.leaseTransitions ?? 0) + 1);

    // A graceful stop releases the lease at once, so a successor need not wait for it to expire.
    expect(await second.stop("SIGTERM")).toBe(0);
    expect((await lease())?.spec.holderIdentity).toBe("");
    expect(second.logs).toContain("lease released");
  });

  test("a new process takes a released lease without waiting for expiry", async () => {
    expect((await lease())?.spec.holderIdentity).toBe("");
    const started = Date.now();
    const op = await startOperator(operatorKubeconfig, electArgs);
    await waitUntil("the operator to lead", async () => (await op.state()) === "leading", { timeoutMs: 30_000 });
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await op.stop("SIGTERM")).toBe(0);
  });
});
