import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { beforeAll, describe, expect, test } from "vitest";
import { KwokNodes, POD_FAULT_LABEL } from "../../src/controlplane/kwok.ts";
import {
  PAUSED_ANNOTATION,
  type RemediationPolicy,
  RemediationPolicyKind,
  type RemediationPolicySpec,
} from "../../src/crds/remediationpolicy.ts";
import { CORDONED_BY_ANNOTATION, QUARANTINE_LABEL } from "../../src/controllers/remediationpolicy/actions.ts";
import { NODE_ACTIONS_LABEL } from "../../src/remediation/node-gate.ts";
import { findCondition } from "../../src/runtime/conditions.ts";
import {
  DeploymentKind,
  EventKind,
  type KindRef,
  HorizontalPodAutoscalerKind,
  NetworkPolicyKind,
  NamespaceKind,
  NodeKind,
  PodKind,
} from "../../src/runtime/kinds.ts";
import type { Condition } from "../../src/runtime/objects.ts";
import {
  type KubeObject,
  cluster,
  createNamespace,
  deleteAfterFile,
  deploymentHpa,
  kwokDeployment,
  startOperator,
  waitUntil,
} from "./harness.ts";
import { hasHistory, remediationPolicy, waitForPolicy } from "./remediation-helpers.ts";

// RemediationPolicy end to end: KWOK Pods that crash-loop and get OOMKilled (hack/kwok/stages.yaml), the real
// controller-manager replacing deleted Pods and running HPAs, the operator acting on them.

type Pod = KubeObject & {
  spec: { nodeName?: string };
  status?: { conditions?: Condition[]; containerStatuses?: Array<{ restartCount: number }> };
};
type Deployment = KubeObject & {
  spec: {
    replicas: number;
    template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> } };
  };
  status?: { availableReplicas?: number; readyReplicas?: number };
};
type Hpa = KubeObject & { spec: { minReplicas: number; maxReplicas: number } };
type Event = KubeObject & { reason: string; note?: string; regarding: { name: string } };

const { admin, operatorKubeconfig } = cluster();
const FILE = { "test.nextgen.itechsmart.io/file": "remediation" };
const PodDisruptionBudgetKind: KindRef = {
  group: "policy",
  version: "v1",
  kind: "PodDisruptionBudget",
  plural: "poddisruptionbudgets",
  namespaced: true,
};
const POOL = "test.nextgen.itechsmart.io/pool";
const nodes = new KwokNodes(admin, FILE);

let operator: Awaited<ReturnType<typeof startOperator>>;
beforeAll(async () => {
  // One Node unschedulable at most, whatever the number of Nodes other test files register meanwhile; the storm
  // gate (unit-tested) only when every Node is down, since other files take KWOK Nodes down on purpose.
  operator = await startOperator(operatorKubeconfig, [
    "--max-unschedulable-nodes",
    "1",
    "--node-storm-threshold",
    "100%",
  ]);
  // Crash-looping Pods would go on restarting (and writing) for the rest of the suite.
  deleteAfterFile(admin, FILE, [RemediationPolicyKind, DeploymentKind, PodKind, NodeKind]);
  for (const i of [1, 2, 3]) await nodes.register(`rp-${i}`, { labels: { [POOL]: "remediation" } });
});

const deployment = (
  ns: string,
  name: string,
  replicas: number,
  podLabels: Record<string, string> = {},
  pool = "remediation",
) => kwokDeployment({ namespace: ns, name, replicas, nodeSelector: { [POOL]: pool }, labels: FILE, podLabels });

/** A loopback port nothing listens on: it was just bound and let go. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

const CRASHLOOP = { name: "crashloop", crashLoop: { restarts: 1, window: "2m" } };

const policy = (ns: string, name: string, spec: Partial<RemediationPolicySpec>) =>
  remediationPolicy(ns, name, FILE, { triggers: [CRASHLOOP], ...spec });
const getPolicy = (ns: string, name: string) => admin.get<RemediationPolicy>(RemediationPolicyKind, ns, name);
const waitPolicy = (
  ns: string,
  name: string,
  what: string,
  pred: (p: RemediationPolicy) => boolean,
  timeoutMs?: number,
) => waitForPolicy(admin, ns, name, what, pred, timeoutMs);
const history = (p: RemediationPolicy) => (p.status?.history ?? []).map((h) => `${h.action} ${h.result}`);
const has = hasHistory;
const condition = (p: RemediationPolicy | undefined, type: string) => findCondition(p?.status?.conditions, type);
const podsOf = async (ns: string, app: string) =>
  (await admin.list<Pod>(PodKind, { namespace: ns, labelSelector: `app=${app}` })).items;
const eventsOf = async (ns: string, name: string) =>
  (await admin.list<Event>(EventKind, { namespace: ns })).items.filter((e) => e.regarding.name === name);
const waitAvailable = (ns: string, name: string, n: number) =>
  waitUntil(
    `${name}: ${n} available`,
    async () => (await admin.get<Deployment>(DeploymentKind, ns, name))?.status?.availableReplicas === n,
    { timeoutMs: 60_000, intervalMs: 250 },
  );

describe("RemediationPolicy", () => {
  test("a crash-looping pod is restarted, the fix is verified over the step's timeout, and the incident resolves", async () => {
    const ns = await createNamespace(admin, "rp");
    await admin.create(DeploymentKind, deployment(ns, "web", 2));
    await waitAvailable(ns, "web", 2);
    await admin.create(RemediationPolicyKind, policy(ns, "web", {}));
    await waitPolicy(
      ns,
      "web",
      "Ready, watching one workload",
      (p) => condition(p, "Ready")?.status === "True" && p.status?.targets === 1,
    );

    const [sick, healthy] = await podsOf(ns, "web");
    await admin.patch(PodKind, ns, sick?.metadata.name as string, "merge", {
      metadata: { labels: { [POD_FAULT_LABEL]: "crashloop" } },
    });
    const acted = await waitPolicy(ns, "web", "RestartPod taken", (p) => has(p, "RestartPod", "Succeeded"));
    expect(acted.status?.incidents?.[0]).toMatchObject({
      target: "Deployment/web",
      trigger: "crashloop",
      step: 0,
      action: "RestartPod",
      attempts: 1,
      pods: [sick?.metadata.name],
    });
    await waitUntil(
      "the sick pod gone",
      async () => !(await podsOf(ns, "web")).some((p) => p.metadata.uid === sick?.metadata.uid),
      { timeoutMs: 30_000 },
    );
    // The replacement runs clean: the incident resolves once the step's 8 s verification has passed.
    const resolved = await waitPolicy(ns, "web", "Resolved", (p) => has(p, "RestartPod", "Resolved"));
    expect(resolved.status?.incidents ?? []).toEqual([]);
    expect(resolved.status?.triggers?.[0]).toMatchObject({ name: "crashloop", state: "Clear" });
    expect((await podsOf(ns, "web")).map((p) => p.metadata.uid)).toContain(healthy?.metadata.uid);
    const reasons = (await eventsOf(ns, "web")).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(["RestartPodSucceeded", "RestartPodResolved"]));
    expect(
      await operator.metric("nextgen_remediation_actions_total", {
        policy: "web",
        action: "RestartPod",
        result: "Succeeded",
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      await operator.metric("nextgen_remediation_detection_to_action_seconds_count", { action: "RestartPod" }),
    ).toBeGreaterThanOrEqual(1);
  });

  test("an incident back within recurrenceWindow resumes its ladder after the step that cleared it last; past the last step it is Exhausted at once", async () => {
    const ns = await createNamespace(admin, "rp");
    await admin.create(DeploymentKind, deployment(ns, "again", 2));
    await waitAvailable(ns, "again", 2);
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "again", {
        actions: [
          { restartPod: {}, timeout: "8s" },
          { rolloutRestart: {}, timeout: "8s" },
        ],
      }),
    );
    const crash = async () => {
      const [pod] = await podsOf(ns, "again");
      await admin.patch(PodKind, ns, pod?.metadata.name as string, "merge", {
        metadata: { labels: { [POD_FAULT_LABEL]: "crashloop" } },
      });
    };
    const count = (p: RemediationPolicy, entry: string) => history(p).filter((h) => h === entry).length;

    await crash();
    const first = await waitPolicy(ns, "again", "RestartPod Resolved", (p) => has(p, "RestartPod", "Resolved"));
    expect(first.status?.resolved).toMatchObject([{ target: "Deployment/again", trigger: "crashloop", step: 0 }]);

    // The restart did not last: the next incident starts at the rollout restart, not at another pod restart.
    await waitAvailable(ns, "again", 2);
    await crash();
    const second = await waitPolicy(ns, "again", "RolloutRestart Resolved", (p) =>
      has(p, "RolloutRestart", "Resolved"),
    );
    expect(count(second, "RestartPod Succeeded")).toBe(1);
    expect(count(second, "RolloutRestart Succeeded")).toBe(1);
    expect(second.status?.resolved).toMatchObject([{ step: 1, recurrences: 1 }]);

    // Nothing left to try: Exhausted at once, for a human, with nothing acted on.
    await waitAvailable(ns, "again", 2);
    await crash();
    const third = await waitPolicy(ns, "again", "Exhausted", (p) => has(p, "RolloutRestart", "Exhausted"));
    expect(third.status?.incidents?.[0]).toMatchObject({ heldBy: "Exhausted", recurrences: 2, attempts: 0 });
    expect(third.status?.incidents?.[0]?.message).toMatch(/came back within 30m of resolving after the last step/);
    expect(count(third, "RestartPod Succeeded") + count(third, "RolloutRestart Succeeded")).toBe(2);
  });

  test("a step that does not help escalates; a scale-up that did not help is undone exactly; the ladder ends Exhausted", async () => {
    const ns = await createNamespace(admin, "rp");
    await admin.create(DeploymentKind, deployment(ns, "bad", 2, { [POD_FAULT_LABEL]: "crashloop" }));
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "bad", {
        actions: [
          // Longer than a KWOK crash loop's cycle (3 s running, 5 s backing off): a replaced pod crashes again
          // within each step's verification.
          { restartPod: {}, timeout: "15s" },
          { scale: { by: 1, max: 5 }, timeout: "15s" },
          { rolloutRestart: {}, timeout: "15s" },
        ],
      }),
    );
    const done = await waitPolicy(ns, "bad", "Exhausted", (p) => has(p, "RolloutRestart", "Exhausted"), 150_000);
    expect(history(done).filter((h) => !h.startsWith("RestartPod"))).toEqual([
      "Scale Succeeded",
      "Scale Reverted",
      "RolloutRestart Succeeded",
      "RolloutRestart Exhausted",
    ]);
    expect(history(done)[0]).toBe("RestartPod Succeeded");
    expect(done.status?.history?.find((h) => h.result === "Reverted")?.message).toMatch(/replicas back to 2/);
    expect(done.status?.incidents?.[0]).toMatchObject({ step: 2, heldBy: "Exhausted" });
    expect(done.status?.scaled ?? []).toEqual([]);
    const dep = await admin.get<Deployment>(DeploymentKind, ns, "bad");
    expect(dep?.spec.replicas).toBe(2);
    expect(dep?.spec.template.metadata.annotations?.["kubectl.kubernetes.io/restartedAt"]).toBeDefined();
  }, 180_000);

  test("maxConcurrent: a storm of crash-looping pods is worked through two at a time, never more", async () => {
    const ns = await createNamespace(admin, "rp");
    await admin.create(DeploymentKind, deployment(ns, "storm", 6, { [POD_FAULT_LABEL]: "crashloop" }));
    await waitUntil("6 pods", async () => (await podsOf(ns, "storm")).length === 6, { timeoutMs: 30_000 });
    const original = new Set((await podsOf(ns, "storm")).map((p) => p.metadata.uid));
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "storm", { actions: [{ restartPod: {}, timeout: "5m" }], safety: { maxConcurrent: 2 } as never }),
    );
    // In flight, as seen from outside, event by event: originals being deleted, less replacements that have been
    // Ready. The operator counts a replacement once it has come up (Ready, or crashed after that), from the same
    // events seen no sooner, so its own count is never below this one.
    const list = await admin.list<Pod>(PodKind, { namespace: ns, labelSelector: "app=storm" });
    const deleting = new Set<string>();
    const everReady = new Set<string>();
    let most = 0;
    const stop = new AbortController();
    const watching = admin
      .watch<Pod>(
        PodKind,
        {
          namespace: ns,
          labelSelector: "app=storm",
          resourceVersion: list.metadata.resourceVersion,
          timeoutSeconds: 300,
        },
        ({ type, object: p }) => {
          const uid = p.metadata.uid as string;
          if (original.has(uid) && (type === "DELETED" || p.metadata.deletionTimestamp)) deleting.add(uid);
          if (!original.has(uid) && findCondition(p.status?.conditions, "Ready")?.status === "True") everReady.add(uid);
          most = Math.max(most, deleting.size - everReady.size);
        },
        stop.signal,
      )
      .catch((e) => {
        if (!stop.signal.aborted) throw e;
      });
    await waitUntil("every original pod restarted", async () => deleting.size === 6, {
      timeoutMs: 120_000,
      intervalMs: 250,
    });
    stop.abort();
    await watching;
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(2);
    // Each action took at most two pods.
    const p = await getPolicy(ns, "storm");
    for (const h of p?.status?.history?.filter((x) => x.result === "Succeeded") ?? [])
      expect(h.message?.split(",").length).toBeLessThanOrEqual(2);
  });

  test("maxConcurrent holds a second workload while the first one's step is verified; StormActive says why", async () => {
    const ns = await createNamespace(admin, "rp");
    for (const name of ["first", "second"]) {
      const d = deployment(ns, name, 1, { [POD_FAULT_LABEL]: "crashloop" });
      d.metadata.labels = { ...d.metadata.labels, tier: "web" };
      await admin.create(DeploymentKind, d);
    }
    const p = policy(ns, "web", {
      actions: [{ scale: { by: 1, max: 3 }, timeout: "5m" }],
      safety: { maxConcurrent: 1 } as never,
    });
    p.spec.targetRef = undefined;
    p.spec.selector = { matchLabels: { tier: "web" } };
    await admin.create(RemediationPolicyKind, p);
    const held = await waitPolicy(ns, "web", "StormActive", (x) => condition(x, "StormActive")?.status === "True");
    expect(condition(held, "StormActive")?.reason).toBe("MaxConcurrent");
    expect(condition(held, "StormActive")?.message).toMatch(
      /1 incident\(s\) held back by brakes: Deployment\/\w+ \(MaxConcurrent: 1 actions in flight/,
    );
    expect(held.status?.targets).toBe(2);
    expect(held.status?.scaled).toHaveLength(1);
    expect(held.status?.incidents?.map((i) => i.heldBy ?? "acting").sort()).toEqual(["MaxConcurrent", "acting"]);
    expect((await eventsOf(ns, "web")).map((e) => e.reason)).toContain("ActionHeld");
  });

  test("cooldown and maxActionsPerHour hold the next action, each reported with its reason", async () => {
    const ns = await createNamespace(admin, "rp");
    // Two crash-looping pods each, one at a time (maxConcurrent 1): the second one's action meets the brake.
    await admin.create(DeploymentKind, deployment(ns, "cool", 2, { [POD_FAULT_LABEL]: "crashloop" }));
    await admin.create(DeploymentKind, deployment(ns, "hourly", 2, { [POD_FAULT_LABEL]: "crashloop" }));
    const oneAtATime = { maxConcurrent: 1 };
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "cool", {
        actions: [{ restartPod: {}, timeout: "5m" }],
        safety: { ...oneAtATime, cooldown: "1h" } as never,
      }),
    );
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "hourly", {
        actions: [{ restartPod: {}, timeout: "5m" }],
        safety: { ...oneAtATime, maxActionsPerHour: 1 } as never,
      }),
    );
    const cool = await waitPolicy(
      ns,
      "cool",
      "held by Cooldown",
      (p) => p.status?.incidents?.[0]?.heldBy === "Cooldown",
    );
    expect(cool.status?.incidents?.[0]?.message).toMatch(/the cooldown is 3600s/);
    // One action, then holds only (the first may be maxConcurrent's, while the first replacement starts).
    expect(history(cool)[0]).toBe("RestartPod Succeeded");
    expect(new Set(history(cool).slice(1))).toEqual(new Set(["RestartPod Held"]));
    expect(cool.status?.history?.at(-1)?.message).toMatch(/^Cooldown: /);
    const hourly = await waitPolicy(
      ns,
      "hourly",
      "held by MaxActionsPerHour",
      (p) => p.status?.incidents?.[0]?.heldBy === "MaxActionsPerHour",
    );
    expect(condition(hourly, "StormActive")).toMatchObject({ status: "True", reason: "MaxActionsPerHour" });
    expect(hourly.status?.recentActions).toHaveLength(1);
  });

  test("DryRun says what it would do and touches nothing; a paused policy acts on nothing until unpaused", async () => {
    const ns = await createNamespace(admin, "rp");
    await admin.create(DeploymentKind, deployment(ns, "dry", 1, { [POD_FAULT_LABEL]: "crashloop" }));
    await admin.create(DeploymentKind, deployment(ns, "paused", 1, { [POD_FAULT_LABEL]: "crashloop" }));
    await waitUntil(
      "both pods",
      async () => (await podsOf(ns, "dry")).length === 1 && (await podsOf(ns, "paused")).length === 1,
      {
        timeoutMs: 30_000,
      },
    );
    const [dryPod] = await podsOf(ns, "dry");
    await admin.create(RemediationPolicyKind, policy(ns, "dry", { mode: "DryRun" }));
    const paused = policy(ns, "paused", {});
    paused.metadata.annotations = { [PAUSED_ANNOTATION]: "true" };
    await admin.create(RemediationPolicyKind, paused);

    const dry = await waitPolicy(ns, "dry", "a DryRun entry", (p) => has(p, "RestartPod", "DryRun"));
    expect(dry.status?.history?.[0]?.message).toMatch(/deleted pod/);
    expect(condition(dry, "Ready")?.message).toMatch(/DryRun: nothing is touched/);
    expect((await eventsOf(ns, "dry")).map((e) => e.reason)).toContain("DryRunRestartPod");
    const held = await waitPolicy(ns, "paused", "held by Paused", (p) => p.status?.incidents?.[0]?.heldBy === "Paused");
    expect(condition(held, "Paused")).toMatchObject({ status: "True", reason: "PausedByAnnotation" });
    expect(condition(held, "StormActive")?.status).toBe("False");
    const [pausedPod] = await podsOf(ns, "paused");
    // Both pods are the ones they were: nothing was deleted.
    expect((await podsOf(ns, "dry"))[0]?.metadata.uid).toBe(dryPod?.metadata.uid);

    await admin.patch(RemediationPolicyKind, ns, "paused", "merge", {
      metadata: { annotations: { [PAUSED_ANNOTATION]: null } },
    });
    await waitPolicy(ns, "paused", "acting once unpaused", (p) => has(p, "RestartPod", "Succeeded"));
    await waitUntil(
      "the paused pod restarted",
      async () => !(await podsOf(ns, "paused")).some((p) => p.metadata.uid === pausedPod?.metadata.uid),
      {
        timeoutMs: 30_000,
      },
    );
  });

  test("Prometheus unreachable: the trigger is Unknown, SignalsAvailable=False names the error, nothing acts", async () => {
    const ns = await createNamespace(admin, "rp");
    await admin.create(DeploymentKind, deployment(ns, "blind", 1));
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "blind", {
        prometheus: { url: `http://127.0.0.1:${await closedPort()}`, interval: "2s" },
        triggers: [{ name: "latency", prometheus: { query: "up", above: "0", for: "0s" } }],
      }),
    );
    const p = await waitPolicy(
      ns,
      "blind",
      "SignalsAvailable=False",
      (x) => condition(x, "SignalsAvailable")?.status === "False",
    );
    expect(condition(p, "SignalsAvailable")).toMatchObject({ reason: "PrometheusUnreachable" });
    expect(condition(p, "SignalsAvailable")?.message).toMatch(/^latency: GET http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED$/);
    expect(p.status?.triggers?.[0]).toMatchObject({ name: "latency", state: "Unknown" });
    expect(p.status?.incidents ?? []).toEqual([]);
  });

  test("unavailable: replicas that cannot run for the trigger's duration open an incident", async () => {
    const ns = await createNamespace(admin, "rp");
    // No Node is in this pool: both replicas stay Pending, none available.
    await admin.create(DeploymentKind, deployment(ns, "stuck", 2, {}, "nowhere"));
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "stuck", {
        triggers: [{ name: "unavailable", unavailable: { ratio: "0.5", for: "2s" } }],
        actions: [{ scale: { by: 1, max: 3 }, timeout: "1m" }],
      }),
    );
    const p = await waitPolicy(ns, "stuck", "scaled", (x) => has(x, "Scale", "Succeeded"));
    expect(p.status?.triggers?.[0]).toMatchObject({ state: "Firing", reason: "Unavailable" });
    expect(p.status?.history?.[0]?.message).toBe("scaled Deployment/stuck from 2 to 3 replicas");
    // Still none available, now of 3 (or of 2, read before the scale-up's status write).
    expect(p.status?.triggers?.[0]?.message).toMatch(/^(\d) of \1 replicas unavailable for 2s$/);
  });

  test("an OOMKilled pod opens an incident of its own trigger and is restarted", async () => {
    const ns = await createNamespace(admin, "rp");
    await admin.create(DeploymentKind, deployment(ns, "hungry", 1, { [POD_FAULT_LABEL]: "oomkill" }));
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "hungry", { triggers: [{ name: "oom", oomKilled: { count: 1, window: "5m" } }] }),
    );
    const p = await waitPolicy(ns, "hungry", "RestartPod for oom", (x) => has(x, "RestartPod", "Succeeded"));
    expect(p.status?.history?.[0]).toMatchObject({ trigger: "oom", target: "Deployment/hungry" });
  });

  test("rollback: a bad rollout is rolled back to the previous revision, and the incident resolves", async () => {
    const ns = await createNamespace(admin, "rp");
    await admin.create(DeploymentKind, deployment(ns, "roll", 2));
    await waitAvailable(ns, "roll", 2);
    await admin.create(RemediationPolicyKind, policy(ns, "roll", { actions: [{ rollback: {}, timeout: "8s" }] }));
    await admin.patch(DeploymentKind, ns, "roll", "merge", {
      spec: { template: { metadata: { labels: { [POD_FAULT_LABEL]: "crashloop" } } } },
    });
    const p = await waitPolicy(ns, "roll", "rolled back", (x) => has(x, "Rollback", "Succeeded"));
    expect(p.status?.history?.[0]?.message).toMatch(/rolled Deployment\/roll back to revision 1/);
    const dep = await admin.get<Deployment>(DeploymentKind, ns, "roll");
    expect(dep?.spec.template.metadata.labels[POD_FAULT_LABEL]).toBeUndefined();
    await waitPolicy(ns, "roll", "Resolved", (x) => has(x, "Rollback", "Resolved"));
  });

  test("rollback goes only to a revision that served within maxRevisionAge: an older one is skipped, saying why", async () => {
    const ns = await createNamespace(admin, "rp");
    await admin.create(DeploymentKind, deployment(ns, "stale", 2));
    await waitAvailable(ns, "stale", 2);
    await admin.create(
      RemediationPolicyKind,
      policy(ns, "stale", { actions: [{ rollback: { maxRevisionAge: "1s" }, timeout: "1m" }] }),
    );
    await admin.patch(DeploymentKind, ns, "stale", "merge", {
      spec: { template: { metadata: { labels: { [POD_FAULT_LABEL]: "crashloop" } } } },
    });
    // The crash loop takes restarts to show: by then the bad revision has served longer than a second.
    const p = await waitPolicy(ns, "stale", "the rollback skipped", (x) =>
      Boolean(x.status?.incidents?.[0]?.message?.includes("rollback.maxRevisionAge")),
    );
    expect(p.status?.incidents?.[0]?.message).toMatch(/previous revision 1 last served at .*: not rolled back/);
    expect(has(p, "Rollback", "Succeeded")).toBe(false);
    const dep = await admin.get<Deployment>(DeploymentKind, ns, "stale");
    expect(dep?.spec.template.metadata.labels[POD_FAULT_LABEL]).toBe("crashloop");
  });

  test("quarantine takes a pod out of its owner and Service, isolated by a deny-all NetworkPolicy", async () => {
    const ns = await createNamespace(admin, "rp");
    await admin.create(DeploymentKind, deployment(ns, "q", 2));
    await waitAvailable(ns, "q", 2);
    await admin.create(RemediationPolicyKind, policy(ns, "q", { actions: [{ quarantine: {}, timeout: "1m" }] }));
    const [sick] = await podsOf(ns, "q");
    await admin.patch(PodKind, ns, sick?.metadata.name as string, "merge", {
      metadata: { labels: { [POD_FAULT_LABEL]: "crashloop" } },
    });
    await waitPolicy(ns, "q", "quarantined", (x) => has(x, "Quarantine", "Succeeded"));
    const isolated = await admin.get<Pod>(PodKind, ns, sick?.metadata.name as string);
    expect(isolated?.metadata.labels?.app).toBeUndefined();
    expect(isolated?.metadata.labels?.[QUARANTINE_LABEL]).toBe("q");
    const np = await admin.get<KubeObject & { spec: unknown }>(NetworkPolicyKind, ns, "quarantine-q");
    expect(np?.spec).toEqual({
      podSelector: { matchLabels: { [QUARANTINE_LABEL]: "q" } },
      policyTypes: ["Ingress", "Egress"],
    });
    // Its ReplicaSet lets go of it and makes a replacement.
    await waitUntil(
      "the pod released by its ReplicaSet and replaced",
      async () =>
        !(await admin.get<Pod>(PodKind, ns, sick?.metadata.name as string))?.metadata.ownerReferences?.length &&
        (await podsOf(ns, "q")).length === 2,
      { timeoutMs: 30_000 },
    );
  });

  for (const withHpa of [false, true])
    test(`scale ${withHpa ? "through an HPA's minReplicas" : "through the scale subresource"}; restored exactly once healthy for the cooldown`, async () => {
      const ns = await createNamespace(admin, "rp");
      await admin.create(DeploymentKind, deployment(ns, "busy", 2));
      await waitAvailable(ns, "busy", 2);
      if (withHpa) await admin.create(HorizontalPodAutoscalerKind, deploymentHpa(ns, "busy", 2, 6));
      await admin.create(
        RemediationPolicyKind,
        policy(ns, "busy", {
          triggers: [{ name: "crashloop", crashLoop: { restarts: 1, window: "15s" } }],
          actions: [{ scale: { by: 2, max: 10 }, timeout: "1m" }],
          safety: { cooldown: "5s" } as never,
        }),
      );
      const [sick] = await podsOf(ns, "busy");
      await admin.patch(PodKind, ns, sick?.metadata.name as string, "merge", {
        metadata: { labels: { [POD_FAULT_LABEL]: "crashloop" } },
      });
      const scaled = await waitPolicy(ns, "busy", "scaled", (x) => has(x, "Scale", "Succeeded"));
      expect(scaled.status?.scaled).toEqual([
        withHpa
          ? { target: "Deployment/busy", field: "hpaMinReplicas", hpa: "busy", original: 2, current: 4 }
          : { target: "Deployment/busy", field: "replicas", original: 2, current: 4 },
      ]);
      // With an HPA, the HPA controller itself scales the Deployment to its new floor.
      await waitAvailable(ns, "busy", 4);
      // The pod recovers: once the crash loop leaves the window and the cooldown passes, the count goes back.
      await admin.patch(PodKind, ns, sick?.metadata.name as string, "merge", {
        metadata: { labels: { [POD_FAULT_LABEL]: null } },
      });
      const restored = await waitPolicy(ns, "busy", "restored", (x) => has(x, "Scale", "Restored"), 90_000);
      expect(restored.status?.scaled ?? []).toEqual([]);
      if (withHpa) {
        expect((await admin.get<Hpa>(HorizontalPodAutoscalerKind, ns, "busy"))?.spec.minReplicas).toBe(2);
        // The operator never wrote the Deployment's replicas: the HPA did.
        const dep = await admin.get<Deployment>(DeploymentKind, ns, "busy");
        expect(dep?.metadata.managedFields?.some((m) => m.manager === "nextgen-operator")).toBe(false);
      } else expect((await admin.get<Deployment>(DeploymentKind, ns, "busy"))?.spec.replicas).toBe(2);
    });

  test("drainNode acts only where the Namespace grants it, within the cluster's bound on unschedulable Nodes; it evicts through the Eviction API (a PodDisruptionBudget holds) and uncordons once resolved", async () => {
    type Node = KubeObject & { spec: { unschedulable?: boolean } };
    const getNode = (name: string) => admin.get<Node>(NodeKind, undefined, name);
    const grant = (ns: string) =>
      admin.patch(NamespaceKind, undefined, ns, "merge", { metadata: { labels: { [NODE_ACTIONS_LABEL]: "allowed" } } });
    const ns = await createNamespace(admin, "rp");
    await nodes.register("rp-drain", { labels: { [POOL]: "drain" } });
    await admin.create(DeploymentKind, deployment(ns, "guarded", 1, {}, "drain"));
    await waitAvailable(ns, "guarded", 1);
    await admin.create(PodDisruptionBudgetKind, {
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata: { name: "guarded", namespace: ns },
      spec: { minAvailable: 1, selector: { matchLabels: { app: "guarded" } } },
    } as KubeObject);
    await admin.create(DeploymentKind, deployment(ns, "disk", 1, { [POD_FAULT_LABEL]: "crashloop" }, "drain"));
    type Pdb = KubeObject & { status?: { currentHealthy?: number } };
    await waitUntil(
      "the PDB to count its healthy pod",
      async () => (await admin.get<Pdb>(PodDisruptionBudgetKind, ns, "guarded"))?.status?.currentHealthy === 1,
      { timeoutMs: 30_000 },
    );
    const [guarded] = await podsOf(ns, "guarded");
    await admin.create(RemediationPolicyKind, policy(ns, "disk", { actions: [{ drainNode: {}, timeout: "20s" }] }));

    // A namespaced policy alone cannot touch a shared Node.
    const refused = await waitPolicy(ns, "disk", "held for want of a grant", (x) => has(x, "DrainNode", "Held"));
    expect(refused.status?.incidents?.[0]?.heldBy).toBe("NodeActionsNotAllowed");
    expect((await getNode("rp-drain"))?.spec.unschedulable).toBeFalsy();

    // The cluster's admin labels the Namespace: the drain goes ahead.
    await grant(ns);
    const p = await waitPolicy(ns, "disk", "drained", (x) => has(x, "DrainNode", "Succeeded"));
    expect(p.status?.history?.find((h) => h.result === "Succeeded")?.message).toBe(
      "cordoned rp-drain and evicted 1 pods; 1 held by PodDisruptionBudgets (retried)",
    );
    const cordoned = await getNode("rp-drain");
    expect(cordoned?.spec.unschedulable).toBe(true);
    expect(cordoned?.metadata.annotations?.[CORDONED_BY_ANNOTATION]).toBe(`${ns}/disk:Deployment/disk`);
    // The budget kept the guarded pod; the sick one was evicted (its replacement cannot land on the cordoned Node).
    expect((await podsOf(ns, "guarded")).map((x) => x.metadata.uid)).toEqual([guarded?.metadata.uid]);

    // A second Node to drain, granted too: one Node is unschedulable already, the operator's bound.
    const ns2 = await createNamespace(admin, "rp");
    await grant(ns2);
    await nodes.register("rp-drain-2", { labels: { [POOL]: "drain-2" } });
    await admin.create(DeploymentKind, deployment(ns2, "disk", 1, { [POD_FAULT_LABEL]: "crashloop" }, "drain-2"));
    await admin.create(RemediationPolicyKind, policy(ns2, "disk", { actions: [{ drainNode: {}, timeout: "20s" }] }));
    const bounded = await waitPolicy(
      ns2,
      "disk",
      "held by the bound",
      (x) => x.status?.incidents?.[0]?.heldBy === "MaxUnschedulableNodes",
    );
    expect(condition(bounded, "StormActive")).toMatchObject({ status: "True", reason: "MaxUnschedulableNodes" });
    expect((await getNode("rp-drain-2"))?.spec.unschedulable).toBeFalsy();

    // The first incident resolves (its pod is gone, the replacement cannot run there): its Node is uncordoned, and
    // that frees the bound for the second.
    const resolved = await waitPolicy(ns, "disk", "resolved", (x) => has(x, "DrainNode", "Restored"));
    expect(resolved.status?.history?.find((h) => h.result === "Restored")?.message).toBe("uncordoned rp-drain");
    const released = await getNode("rp-drain");
    expect(released?.metadata.annotations?.[CORDONED_BY_ANNOTATION]).toBeUndefined();
    await waitPolicy(ns2, "disk", "drained once the bound allows", (x) => has(x, "DrainNode", "Succeeded"));
    expect((await getNode("rp-drain-2"))?.spec.unschedulable).toBe(true);
  });

  test("a converged policy over healthy pods costs no API writes when reconciled again", async () => {
    const ns = await createNamespace(admin, "rp");
    await admin.create(DeploymentKind, deployment(ns, "calm", 3));
    await admin.create(RemediationPolicyKind, policy(ns, "calm", {}));
    await waitAvailable(ns, "calm", 3);
    await waitPolicy(
      ns,
      "calm",
      "three pods watched",
      (p) => p.status?.triggers?.[0]?.state === "Clear" && condition(p, "Ready")?.status === "True",
    );
    const reconciles = () => operator.metric("controller_runtime_reconcile_total", { controller: "remediationpolicy" });
    const before = await operator.apiWrites();
    const logged = operator.writeLog.length;
    const r0 = await reconciles();
    await admin.patch(RemediationPolicyKind, ns, "calm", "merge", { metadata: { labels: { poked: "1" } } });
    const [pod] = await podsOf(ns, "calm");
    await admin.patch(PodKind, ns, pod?.metadata.name as string, "merge", { metadata: { labels: { poked: "1" } } });
    await waitUntil("two more reconciles", async () => (await reconciles()) >= r0 + 2, { timeoutMs: 10_000 });
    // On failure the message names what was written.
    expect(await operator.apiWrites(), operator.writeLog.slice(logged).join("\n")).toBe(before);
  });
});
