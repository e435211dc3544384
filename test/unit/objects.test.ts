import { describe, expect, test } from "vitest";
import { compareResourceVersions } from "../../src/runtime/objects.ts";

describe("compareResourceVersions (KEP-5504)", () => {
  test("orders integers of any length numerically, not as strings", () => {
    expect(compareResourceVersions("9", "10")).toBeLessThan(0);
    expect(compareResourceVersions("10", "9")).toBeGreaterThan(0);
    expect(compareResourceVersions("123456789012345678901234567890", "123456789012345678901234567891")).toBe(-1);
    expect(compareResourceVersions("42", "42")).toBe(0);
  });

  test("answers nothing for what is not a comparable version", () => {
    for (const [a, b] of [
      ["0", "1"],
      ["01", "2"],
      ["abc", "1"],
      ["", "1"],
      [undefined, "1"],
      ["-1", "1"],
    ])
      expect(compareResourceVersions(a, b), `${a} vs ${b}`).toBeUndefined();
  });
});
