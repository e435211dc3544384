import { describe, expect, test } from "vitest";
import { chiSquareSurvival, compareCounts, marginal, reversed } from "../statistics.ts";

describe("the chi-square distribution", () => {
  // Critical values from the standard tables.
  test.each([
    [3.841, 1, 0.05],
    [6.635, 1, 0.01],
    [23.209, 10, 0.01],
    [124.342, 100, 0.05],
    [0.0158, 1, 0.9],
    [1.145, 5, 0.95],
  ])("P(X ≥ %f) with %i degrees of freedom is %f", (x, k, p) => {
    expect(chiSquareSurvival(x, k)).toBeCloseTo(p, 3);
  });

  test("the survival function falls from 1 towards 0", () => {
    expect(chiSquareSurvival(0, 3)).toBe(1);
    expect(chiSquareSurvival(200, 3)).toBeLessThan(1e-40);
  });
});

describe("comparing two samples of counts", () => {
  test("equal proportions: p-value 1, no distance, whatever the sample sizes", () => {
    const c = compareCounts({ "00": 500, "11": 500 }, { "00": 1000, "11": 1000 });
    expect(c.pValue).toBeCloseTo(1, 10);
    expect(c.totalVariation).toBe(0);
    expect(c).toMatchObject({ bins: 2, degreesOfFreedom: 1 });
  });

  test("different distributions are told apart, with their total variation distance", () => {
    const c = compareCounts({ "0": 600, "1": 400 }, { "0": 400, "1": 600 });
    expect(c.pValue).toBeLessThan(1e-10);
    expect(c.totalVariation).toBeCloseTo(0.2, 10);
  });

  test("rare outcomes share bins of at least 10 pooled shots; a short remainder joins the last bin", () => {
    const a = { "000": 50, "001": 4, "010": 3, "011": 2, "100": 1 };
    const b = { "000": 50, "001": 3, "010": 4, "011": 2, "101": 1 };
    // 000 alone (100 pooled); 001 and 010 together (7 + 7); the remainder, 011, 100 and 101 (6), joins that bin.
    expect(compareCounts(a, b).bins).toBe(2);
  });

  test("marginals and reversed bitstrings", () => {
    const counts = { "011": 3, "001": 2, "110": 5 };
    expect(marginal(counts, [0])).toEqual({ "0": 5, "1": 5 });
    expect(marginal(counts, [1, 2])).toEqual({ "11": 3, "01": 2, "10": 5 });
    expect(reversed(counts)).toEqual({ "110": 3, "100": 2, "011": 5 });
  });
});
