import { describe, expect, test } from "vitest";
import { applyWouldChange, contains, mergePatch } from "../../src/runtime/apply.ts";
import { jsonEqual, setCondition } from "../../src/runtime/conditions.ts";
import { matchesSelector, selectorToString } from "../../src/runtime/labels.ts";
import { mergeRules } from "../../src/runtime/rbac.ts";

describe("setCondition", () => {
  const t0 = new Date("2026-01-01T00:00:00.123Z");
  const t1 = new Date("2026-01-01T01:00:00Z");

  test("keeps lastTransitionTime while the status holds, moves it when the status flips", () => {
    const a = setCondition(undefined, { type: "Ready", status: "False", reason: "Pending", message: "m" }, t0);
    expect(a[0]?.lastTransitionTime).toBe("2026-01-01T00:00:00Z");
    const b = setCondition(a, { type: "Ready", status: "False", reason: "StillPending", message: "m2" }, t1);
    expect(b[0]).toMatchObject({ reason: "StillPending", lastTransitionTime: "2026-01-01T00:00:00Z" });
    const c = setCondition(b, { type: "Ready", status: "True", reason: "Done", message: "ok" }, t1);
    expect(c[0]?.lastTransitionTime).toBe("2026-01-01T01:00:00Z");
  });

  test("re-asserting the same condition leaves the list equal", () => {
    const a = setCondition([], { type: "Ready", status: "True", reason: "R", message: "m" }, t0);
    const b = setCondition(a, { type: "Ready", status: "True", reason: "R", message: "m" }, t1);
    expect(jsonEqual(a, b)).toBe(true);
  });

  test("other conditions are left in place", () => {
    const a = setCondition([], { type: "A", status: "True", reason: "R", message: "" }, t0);
    const b = setCondition(a, { type: "B", status: "False", reason: "R", message: "" }, t0);
    expect(b.map((c) => c.type)).toEqual(["A", "B"]);
  });
});

describe("jsonEqual", () => {
  test("ignores key order and undefined members, not values", () => {
    expect(jsonEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1, d: undefined })).toBe(true);
    expect(jsonEqual({ a: 1 }, { a: 2 })).toBe(false);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
    expect(jsonEqual({}, [])).toBe(false);
  });
});

describe("applyWouldChange", () => {
  const live = {
    metadata: { name: "x", labels: { mine: "1", theirs: "2" } },
    data: { a: "1", b: "2" },
  };
  const managed = [
    {
      manager: "op",
      operation: "Apply",
      fieldsV1: { "f:metadata": { "f:labels": { "f:mine": {} } }, "f:data": { "f:a": {} } },
    },
  ];

  test("nothing to send when the live object holds every applied field and the manager dropped none", () => {
    const desired = { metadata: { name: "x", labels: { mine: "1" } }, data: { a: "1" } };
    expect(contains(live, desired)).toBe(true);
    expect(applyWouldChange(desired, live, managed, "op")).toBe(false);
  });

  test("an empty map contains nothing to apply, even where the live object has no such map", () => {
    expect(contains({ metadata: { name: "x" } }, { metadata: { name: "x", annotations: {} } })).toBe(true);
    expect(applyWouldChange({ metadata: { name: "x", annotations: {} } }, { metadata: { name: "x" } }, [], "op")).toBe(
      false,
    );
  });

  test("a changed value must be applied", () => {
    expect(applyWouldChange({ metadata: { name: "x" }, data: { a: "9" } }, live, managed, "op")).toBe(true);
  });

  test("a field this manager owned and no longer applies must be applied (so it is removed)", () => {
    const desired = { metadata: { name: "x", labels: { mine: "1" } }, data: {} };
    expect(applyWouldChange(desired, live, managed, "op")).toBe(true);
  });

  test("fields owned by other managers do not count", () => {
    const desired = { metadata: { name: "x", labels: { mine: "1" } }, data: { a: "1" } };
    expect(applyWouldChange(desired, live, [{ ...managed[0]!, manager: "someone-else" }], "op")).toBe(false);
  });
});

describe("label selectors", () => {
  const labels = { tier: "edge", region: "eu", gpu: "true" };
  test("matchLabels and every operator of matchExpressions", () => {
    expect(matchesSelector(labels, {})).toBe(true);
    expect(matchesSelector(labels, { matchLabels: { tier: "edge" } })).toBe(true);
    expect(matchesSelector(labels, { matchLabels: { tier: "hub" } })).toBe(false);
    expect(
      matchesSelector(labels, { matchExpressions: [{ key: "region", operator: "In", values: ["eu", "us"] }] }),
    ).toBe(true);
    expect(matchesSelector(labels, { matchExpressions: [{ key: "region", operator: "NotIn", values: ["eu"] }] })).toBe(
      false,
    );
    expect(matchesSelector(labels, { matchExpressions: [{ key: "gpu", operator: "Exists" }] })).toBe(true);
    expect(matchesSelector(labels, { matchExpressions: [{ key: "gpu", operator: "DoesNotExist" }] })).toBe(false);
    expect(matchesSelector(undefined, { matchExpressions: [{ key: "x", operator: "NotIn", values: ["y"] }] })).toBe(
      true,
    );
  });
  test("renders the API server's query syntax", () => {
    expect(
      selectorToString({
        matchLabels: { a: "1" },
        matchExpressions: [
          { key: "b", operator: "In", values: ["x", "y"] },
          { key: "c", operator: "DoesNotExist" },
        ],
      }),
    ).toBe("a=1,b in (x,y),!c");
  });
});

describe("mergeRules", () => {
  test("unions verbs per resource and groups resources of a group that need the same verbs", () => {
    const rules = mergeRules([
      { apiGroups: [""], resources: ["secrets"], verbs: ["get", "list", "watch"] },
      { apiGroups: [""], resources: ["secrets"], verbs: ["create", "get"] },
      { apiGroups: [""], resources: ["configmaps"], verbs: ["watch", "list", "get", "create"] },
      { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get"] },
    ]);
    expect(rules).toEqual([
      { apiGroups: [""], resources: ["configmaps", "secrets"], verbs: ["get", "list", "watch", "create"] },
      { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get"] },
    ]);
  });
});

describe("mergePatch", () => {
  test("carries changed and new members, nulls removed ones, and replaces arrays whole", () => {
    const from = { a: 1, b: { c: 2, d: 3 }, list: [1, 2], gone: "x" };
    const to = { a: 1, b: { c: 5, d: 3 }, list: [1], added: true };
    expect(mergePatch(from, to)).toEqual({ b: { c: 5 }, list: [1], gone: null, added: true });
  });
  test("is undefined when nothing differs", () => {
    expect(mergePatch({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toBeUndefined();
  });
});
