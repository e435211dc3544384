import { describe, expect, test } from "vitest";
import { memberHealth, msUntilNextExpiry, percentile, sitePhase } from "../../src/edge/health.ts";
import { type SiteRecord, checkHierarchy, owningSite, rollup } from "../../src/edge/hierarchy.ts";
import { formatQuantity, parseQuantity, sumResources } from "../../src/runtime/quantity.ts";

const now = Date.parse("2026-11-25T12:00:00Z");
const ago = (s: number) => new Date(now - s * 1000).toISOString();
const ready = { status: "True", lastHeartbeatTime: ago(200) };

describe("member health", () => {
  test("the Lease is the heartbeat; stale after the grace period; Ready needs a fresh heartbeat", () => {
    expect(memberHealth({ name: "a", ready, leaseRenewTime: ago(5) }, now, 40_000)).toMatchObject({
      ready: true,
      fresh: true,
      reason: "Ready",
    });
    expect(memberHealth({ name: "a", ready, leaseRenewTime: ago(41) }, now, 40_000)).toMatchObject({
      ready: false,
      fresh: false,
      reason: "HeartbeatStale",
    });
    expect(
      memberHealth(
        { name: "a", ready: { status: "False", reason: "KubeletNotReady" }, leaseRenewTime: ago(1) },
        now,
        40_000,
      ),
    ).toMatchObject({
      ready: false,
      fresh: true,
      reason: "KubeletNotReady",
    });
    expect(memberHealth({ name: "a" }, now, 40_000)).toMatchObject({ fresh: false, reason: "NoHeartbeat" });
  });

  test("phases: Empty, Online, Degraded, Offline, and Partitioned only while members heartbeat", () => {
    const fresh = memberHealth({ name: "a", ready, leaseRenewTime: ago(1) }, now, 40_000);
    const stale = memberHealth({ name: "b", ready, leaseRenewTime: ago(100) }, now, 40_000);
    expect(sitePhase([], undefined)).toBe("Empty");
    expect(sitePhase([fresh], undefined)).toBe("Online");
    expect(sitePhase([fresh], true)).toBe("Online");
    expect(sitePhase([fresh, stale], undefined)).toBe("Degraded");
    expect(sitePhase([stale], undefined)).toBe("Offline");
    expect(sitePhase([fresh, stale], false)).toBe("Partitioned");
    expect(sitePhase([stale], false)).toBe("Offline");
  });

  test("the next expiry is when the freshest-to-expire heartbeat goes stale", () => {
    const a = memberHealth({ name: "a", ready, leaseRenewTime: ago(10) }, now, 40_000);
    const b = memberHealth({ name: "b", ready, leaseRenewTime: ago(30) }, now, 40_000);
    expect(msUntilNextExpiry([a, b], now, 40_000)).toBe(10_001);
    expect(msUntilNextExpiry([], now, 40_000)).toBeUndefined();
  });

  test("percentiles by nearest rank", () => {
    const samples = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(samples, 50)).toBe(50);
    expect(percentile(samples, 95)).toBe(95);
    expect(percentile([7], 95)).toBe(7);
    expect(percentile([], 50)).toBeUndefined();
  });
});

describe("hierarchy", () => {
  const sites = new Map<string, SiteRecord>(
    [
      { name: "hub", tier: "ContinentalHub" },
      { name: "region", tier: "RegionalCluster", parent: "hub" },
      { name: "edge", tier: "LocalEdge", parent: "region" },
      { name: "skip", tier: "LocalEdge", parent: "hub" },
      { name: "x", tier: "RegionalCluster", parent: "y" },
      { name: "y", tier: "RegionalCluster", parent: "x" },
    ].map((s) => [s.name, s as SiteRecord]),
  );
  const check = (name: string) => checkHierarchy(sites.get(name) as SiteRecord, sites);

  test("tier order, missing parents, cycles", () => {
    expect(check("hub")).toEqual({ valid: true });
    expect(check("region")).toEqual({ valid: true });
    expect(check("edge")).toEqual({ valid: true });
    expect(check("skip")).toMatchObject({ valid: false, reason: "WrongTierOrder" });
    expect(check("x")).toMatchObject({ valid: false, reason: "Cycle" });
    expect(checkHierarchy({ name: "lost", tier: "LocalEdge", parent: "nowhere" }, sites)).toMatchObject({
      reason: "ParentNotFound",
    });
    expect(checkHierarchy({ name: "orphan", tier: "LocalEdge" }, sites)).toMatchObject({ reason: "MissingParentRef" });
    expect(checkHierarchy({ name: "h2", tier: "ContinentalHub", parent: "hub" }, sites)).toMatchObject({
      reason: "UnexpectedParent",
    });
  });

  test("roll-ups add children's subtrees to the site's own", () => {
    const leaf = rollup({ nodes: 3, readyNodes: 2, gpus: 4 }, []);
    const mid = rollup({ nodes: 1, readyNodes: 1, gpus: 0 }, [leaf, undefined]);
    expect(rollup({ nodes: 0, readyNodes: 0, gpus: 0 }, [mid])).toEqual({ sites: 3, nodes: 4, readyNodes: 3, gpus: 4 });
  });

  test("a Node selected by several sites belongs to the most specific, then the first by name", () => {
    expect(owningSite([sites.get("hub"), sites.get("skip"), sites.get("edge")] as SiteRecord[])?.name).toBe("edge");
    expect(owningSite([sites.get("region"), sites.get("hub")] as SiteRecord[])?.name).toBe("region");
  });
});

describe("quantities", () => {
  test("parse and sum as the API server counts them", () => {
    expect(parseQuantity("3500m")).toBe(3.5);
    expect(parseQuantity("16Gi")).toBe(16 * 2 ** 30);
    expect(parseQuantity("1k")).toBe(1000);
    expect(formatQuantity(3.5, "cpu")).toBe("3500m");
    expect(formatQuantity(2 ** 31 + 2 ** 30, "memory")).toBe("3Gi");
    expect(
      sumResources(
        [{ cpu: "4", memory: "16Gi", "nvidia.com/gpu": "2" }, { cpu: "500m", memory: "512Mi" }, undefined],
        ["cpu", "memory", "nvidia.com/gpu", "amd.com/gpu"],
      ),
    ).toEqual({ cpu: "4500m", memory: "16896Mi", "nvidia.com/gpu": "2" });
    expect(() => parseQuantity("lots")).toThrow(/not a resource quantity/);
  });
});
