import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, test } from "vitest";
import { AlertStore, type WebhookAlert, alertWebhookHandler } from "../../src/remediation/alerts.ts";
import {
  type Brakes,
  checkBrakes,
  choosePods,
  decideIncident,
  minAvailableCount,
  startingStep,
} from "../../src/remediation/ladder.ts";
import { checkNodeGate } from "../../src/remediation/node-gate.ts";
import { PodHistory, type PodLike, Sustained } from "../../src/remediation/pod-history.ts";

const brakes: Brakes = { maxConcurrent: 2, cooldownMs: 60_000, maxActionsPerHour: 3, minAvailable: "50%" };
const facts = { inFlight: 0, actionTimes: [], available: 4, desired: 4, removesAvailable: 1 };
const T0 = Date.parse("2026-12-02T10:00:00Z");

describe("brakes", () => {
  test("minAvailable: a count, or a percentage of desired rounded up; anything else is an error", () => {
    expect(minAvailableCount(3, 10)).toBe(3);
    expect(minAvailableCount("50%", 5)).toBe(3);
    expect(minAvailableCount("0%", 5)).toBe(0);
    expect(minAvailableCount("2", 5)).toBe(2);
    expect(() => minAvailableCount("half", 5)).toThrow(/neither a count nor a percentage/);
  });

  test("nothing holds an action within every limit", () => {
    expect(checkBrakes(brakes, facts, T0)).toBeUndefined();
  });

  test("each brake holds, and says why", () => {
    expect(checkBrakes(brakes, { ...facts, inFlight: 2 }, T0)?.brake).toBe("MaxConcurrent");
    const hour = [T0 - 3_500_000, T0 - 1_000_000, T0 - 100_000];
    const held = checkBrakes(brakes, { ...facts, actionTimes: hour }, T0);
    expect(held?.brake).toBe("MaxActionsPerHour");
    expect(held?.message).toMatch(/3 actions in the last hour.*next is possible in 100s/);
    // An action older than an hour no longer counts.
    expect(checkBrakes(brakes, { ...facts, actionTimes: [T0 - 3_700_000, ...hour.slice(1)] }, T0)).toBeUndefined();
    expect(checkBrakes(brakes, { ...facts, lastActionOnTarget: T0 - 30_000 }, T0)?.brake).toBe("Cooldown");
    expect(checkBrakes(brakes, { ...facts, lastActionOnTarget: T0 - 60_000 }, T0)).toBeUndefined();
    const min = checkBrakes(brakes, { ...facts, available: 2 }, T0);
    expect(min).toEqual({
      brake: "MinAvailable",
      message: "2 of 4 pods available; acting would leave 1, below minAvailable 2.",
    });
    // Taking an unavailable pod costs no availability.
    expect(checkBrakes(brakes, { ...facts, available: 2, removesAvailable: 0 }, T0)).toBeUndefined();
  });

  test("pods are chosen unavailable first, then available ones within minAvailable, at most maxConcurrent", () => {
    const pods = [
      { name: "a", ready: true },
      { name: "b", ready: false },
      { name: "c", ready: true },
      { name: "d", ready: false },
    ];
    const names = (left: number, spare: number) => choosePods(pods, (p) => p.ready, left, spare).map((p) => p.name);
    expect(names(5, 5)).toEqual(["b", "d", "a", "c"]);
    expect(names(3, 1)).toEqual(["b", "d", "a"]);
    expect(names(1, 5)).toEqual(["b"]);
    expect(names(5, 0)).toEqual(["b", "d"]);
    // Nothing allowed: the first candidate, for the brake to name.
    expect(names(0, 5)).toEqual(["a"]);
  });
});

describe("escalation ladder", () => {
  const base = { steps: 3, step: 0, stepTimeoutMs: 60_000 };
  test("missing data waits; a firing trigger acts; a clear one resolves only once the step is verified", () => {
    expect(decideIncident({ ...base, state: "Unknown" }, T0)).toBe("wait");
    expect(decideIncident({ ...base, state: "Firing" }, T0)).toBe("act");
    expect(decideIncident({ ...base, state: "Clear" }, T0)).toBe("resolve");
    expect(decideIncident({ ...base, state: "Clear", stepActedAt: T0 - 10_000 }, T0)).toBe("wait");
    expect(decideIncident({ ...base, state: "Clear", stepActedAt: T0 - 60_000 }, T0)).toBe("resolve");
  });

  test("a step that acted and did not clear the trigger in its timeout escalates; the last one is exhausted", () => {
    expect(decideIncident({ ...base, state: "Firing", stepActedAt: T0 - 10_000 }, T0)).toBe("act");
    expect(decideIncident({ ...base, state: "Firing", stepActedAt: T0 - 60_000 }, T0)).toBe("escalate");
    expect(decideIncident({ ...base, step: 2, state: "Firing", stepActedAt: T0 - 60_000 }, T0)).toBe("exhausted");
    expect(decideIncident({ ...base, step: 3, state: "Firing" }, T0)).toBe("exhausted");
  });

  test("a recurrence within the window starts after the step that last cleared it, counting; later starts over", () => {
    const window = 30 * 60_000;
    expect(startingStep(undefined, T0, window)).toEqual({ step: 0, recurrences: 0 });
    expect(startingStep({ step: 0, resolvedAt: T0 - 60_000 }, T0, window)).toEqual({ step: 1, recurrences: 1 });
    expect(startingStep({ step: 1, resolvedAt: T0 - 60_000, recurrences: 1 }, T0, window)).toEqual({
      step: 2,
      recurrences: 2,
    });
    expect(startingStep({ step: 1, resolvedAt: T0 - window - 1, recurrences: 4 }, T0, window)).toEqual({
      step: 0,
      recurrences: 0,
    });
  });
});

const pod = (restarts: number, opts: { startTime?: string; oom?: string[] } = {}): PodLike => ({
  metadata: { name: "p", namespace: "ns", uid: "u1" },
  status: {
    startTime: opts.startTime,
    containerStatuses: [
      {
        name: "app",
        restartCount: restarts,
        lastState: opts.oom?.length
          ? { terminated: { reason: "OOMKilled", finishedAt: opts.oom[opts.oom.length - 1] } }
          : undefined,
      },
    ],
  },
});

describe("pod history", () => {
  test("restarts are counted within the window from what was seen, and age out of it", () => {
    const h = new PodHistory(3_600_000);
    h.observe(pod(5), T0); // first seen long after it started: its 5 earlier restarts are not in any window
    expect(h.restartsWithin(pod(5), 600_000, T0)).toBe(0);
    h.observe(pod(6), T0 + 60_000);
    h.observe(pod(8), T0 + 120_000);
    expect(h.restartsWithin(pod(8), 600_000, T0 + 120_000)).toBe(3);
    // Later, the restarts seen at T0+60s and T0+120s leave short windows and stay in long ones.
    expect(h.restartsWithin(pod(8), 120_000, T0 + 420_000)).toBe(0);
    expect(h.restartsWithin(pod(8), 330_000, T0 + 420_000)).toBe(2);
    expect(h.restartsWithin(pod(8), 400_000, T0 + 420_000)).toBe(3);
  });

  test("restarts before the first sighting count only in windows that reach back to the pod's start", () => {
    const h = new PodHistory(3_600_000);
    const p = pod(4, { startTime: new Date(T0 - 120_000).toISOString() });
    h.observe(p, T0);
    expect(h.restartsWithin(p, 600_000, T0)).toBe(4);
    expect(h.restartsWithin(p, 60_000, T0)).toBe(0);
  });

  test("OOM kills are counted once each, by their finish time", () => {
    const h = new PodHistory(3_600_000);
    const t1 = new Date(T0 - 30_000).toISOString();
    const t2 = new Date(T0 + 30_000).toISOString();
    h.observe(pod(1, { oom: [t1] }), T0);
    h.observe(pod(1, { oom: [t1] }), T0 + 10_000); // the same termination seen again
    expect(h.oomKillsWithin(pod(1), 600_000, T0 + 10_000)).toBe(1);
    h.observe(pod(2, { oom: [t2] }), T0 + 40_000);
    expect(h.oomKillsWithin(pod(2), 600_000, T0 + 40_000)).toBe(2);
    expect(h.oomKillsWithin(pod(2), 30_000, T0 + 40_000)).toBe(1);
  });

  test("sustained: a condition fires only after holding for its duration, and resets when it stops", () => {
    const s = new Sustained();
    expect(s.update("k", true, T0)).toBe(T0);
    expect(s.update("k", true, T0 + 5_000)).toBe(T0);
    expect(s.update("k", false, T0 + 6_000)).toBeUndefined();
    expect(s.update("k", true, T0 + 7_000)).toBe(T0 + 7_000);
    s.retain("", new Set());
    expect(s.update("k", true, T0 + 8_000)).toBe(T0 + 8_000);
  });
});

describe("alerts", () => {
  const alert = (status: "firing" | "resolved", labels: Record<string, string>, fingerprint: string): WebhookAlert => ({
    status,
    labels,
    fingerprint,
  });

  test("firing alerts are kept until resolved; matching is by alertname and labels", () => {
    const store = new AlertStore();
    const seen: number[] = [];
    store.onChange((alerts) => seen.push(alerts.length));
    store.receive([
      alert("firing", { alertname: "HighErrorRate", service: "web", pod: "web-1" }, "a"),
      alert("firing", { alertname: "HighErrorRate", service: "api" }, "b"),
      alert("firing", { alertname: "DiskFull" }, "c"),
    ]);
    expect(store.matching("HighErrorRate").map((a) => a.fingerprint)).toEqual(["a", "b"]);
    expect(store.matching("HighErrorRate", { service: "web" }).map((a) => a.fingerprint)).toEqual(["a"]);
    store.receive([alert("resolved", { alertname: "HighErrorRate", service: "web", pod: "web-1" }, "a")]);
    expect(store.matching("HighErrorRate", { service: "web" })).toEqual([]);
    expect(seen).toEqual([3, 1]);
  });

  test("a firing alert not repeated within the expiry is dropped: its resolution went elsewhere or was lost", () => {
    const store = new AlertStore();
    store.expireAfterMs = 60_000;
    store.receive([alert("firing", { alertname: "HighErrorRate" }, "a")], T0);
    expect(store.matching("HighErrorRate", {}, T0 + 50_000)).toHaveLength(1);
    store.receive([alert("firing", { alertname: "HighErrorRate" }, "a")], T0 + 50_000);
    expect(store.matching("HighErrorRate", {}, T0 + 100_000)).toHaveLength(1);
    expect(store.matching("HighErrorRate", {}, T0 + 110_001)).toEqual([]);
  });

  test("the webhook takes Alertmanager's payload with the right token only, and says why it refuses", async () => {
    const store = new AlertStore();
    const outcomes: string[] = [];
    const server = createServer(
      alertWebhookHandler(
        store,
        () => "s3cret",
        (o) => outcomes.push(o),
      ),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const post = (path: string, token: string, body: unknown) =>
      fetch(url + path, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    try {
      const payload = { version: "4", status: "firing", alerts: [alert("firing", { alertname: "X" }, "f")] };
      expect((await post("/alerts", "wrong", payload)).status).toBe(401);
      expect((await post("/alerts", "s3cret!", payload)).status).toBe(401);
      expect((await post("/other", "s3cret", payload)).status).toBe(404);
      expect((await post("/alerts", "s3cret", { version: "3", alerts: [] })).status).toBe(400);
      expect(store.matching("X")).toEqual([]);
      expect((await post("/alerts", "s3cret", payload)).status).toBe(200);
      expect(store.matching("X")).toHaveLength(1);
      expect(outcomes).toEqual(["unauthorized", "unauthorized", "not_found", "bad_request", "accepted"]);
    } finally {
      server.close();
    }
  });
});

describe("node actions", () => {
  const limits = { maxUnschedulable: "10%", stormThreshold: "30%" };
  const nodes = (n: number, notReady = 0, unschedulable = 0) =>
    Array.from({ length: n }, (_, i) => ({
      name: `n${i}`,
      ready: i >= notReady,
      unschedulable: i >= n - unschedulable,
    }));
  const gate = (facts: Partial<Parameters<typeof checkNodeGate>[1]>) =>
    checkNodeGate(limits, { namespace: "shop", allowed: true, nodes: nodes(10), toCordon: ["n0"], ...facts })?.brake;

  test("a Namespace without the grant acts on no Node", () => {
    expect(gate({ allowed: false })).toBe("NodeActionsNotAllowed");
    expect(gate({})).toBeUndefined();
  });

  test("the storm gate stops drains while 30% of Nodes are not Ready", () => {
    expect(gate({ nodes: nodes(10, 2), toCordon: ["n5"] })).toBeUndefined();
    expect(gate({ nodes: nodes(10, 3), toCordon: ["n5"] })).toBe("NodeStorm");
  });

  test("unschedulable Nodes, whoever cordoned them, stay within the bound; a cordoned Node adds none", () => {
    expect(gate({ nodes: nodes(10, 0, 1), toCordon: ["n0"] })).toBe("MaxUnschedulableNodes");
    expect(gate({ nodes: nodes(10, 0, 1), toCordon: ["n9"] })).toBeUndefined();
    expect(gate({ nodes: nodes(20, 0, 1), toCordon: ["n0"] })).toBeUndefined();
  });
});
