import { describe, expect, test } from "vitest";
import {
  addToBuckets,
  capFor,
  effectiveIntensity,
  estimateWatts,
  gramsOf,
  intensitySteps,
  project,
} from "../../src/carbon/accounting.ts";

const HOUR = 3_600_000;

describe("grams", () => {
  test("kWh = J / 3.6e6, times PUE once, times intensity", () => {
    // 1 kW for an hour at 300 g/kWh in a facility of PUE 1.2.
    expect(gramsOf(1000 * 3600, 300, 1.2)).toBeCloseTo(360, 9);
    expect(gramsOf(0, 300, 1.2)).toBe(0);
  });

  test("a step change mid-interval counts from the source's time for it, not from when it was read", () => {
    const steps = intensitySteps(0, 60_000, { gramsPerKWh: 500, observedAt: 20_000 }, { gramsPerKWh: 100 });
    expect(steps).toEqual([
      { start: 0, end: 20_000, gramsPerKWh: 100 },
      { start: 20_000, end: 60_000, gramsPerKWh: 500 },
    ]);
    // 3.6 kW (1 Wh a second) over the minute: 20 Wh at 100 and 40 Wh at 500 g/kWh, by hand 2 + 20 = 22 g.
    const grams = steps.reduce((g, s) => g + gramsOf(3600 * ((s.end - s.start) / 1000), s.gramsPerKWh, 1), 0);
    expect(grams).toBeCloseTo(22, 9);
    // Averaging the intensity over the interval would have said 60 Wh x 300 = 18 g.
    expect(grams).not.toBeCloseTo(18, 3);
  });

  test("a value that took effect before the interval, or no previous value, covers all of it", () => {
    expect(intensitySteps(10, 20, { gramsPerKWh: 7, observedAt: 5 }, { gramsPerKWh: 1 })).toEqual([
      { start: 10, end: 20, gramsPerKWh: 7 },
    ]);
    expect(intensitySteps(10, 20, { gramsPerKWh: 7, observedAt: 15 })).toEqual([
      { start: 10, end: 20, gramsPerKWh: 7 },
    ]);
    // One from the future (a clock ahead) is clamped to the interval's end: the previous value covers it all.
    expect(intensitySteps(10, 20, { gramsPerKWh: 7, observedAt: 99 }, { gramsPerKWh: 1 })).toEqual([
      { start: 10, end: 20, gramsPerKWh: 1 },
    ]);
    expect(intensitySteps(20, 20, { gramsPerKWh: 7, observedAt: 0 })).toEqual([]);
  });
});

describe("fail-safe intensity", () => {
  const base = { source: "carbonAwareSDK", region: "westeurope", staleAfterMs: HOUR };
  test("a fresh reading is used as it is", () => {
    const e = effectiveIntensity({
      ...base,
      reading: { ok: true, value: { region: "westeurope", gramsPerKWh: 120, observedAt: 1000 } },
      now: 2000,
    });
    expect(e).toEqual({ gramsPerKWh: 120, source: "carbonAwareSDK", region: "westeurope", observedAt: 1000 });
  });

  test("a failing source: the last value while it is recent, then the 400 g/kWh default, each saying so", () => {
    const failing = { ok: false as const, message: "GET http://sdk: ECONNREFUSED" };
    const last = { gramsPerKWh: 120, source: "carbonAwareSDK", observedAt: 0 };
    const recent = effectiveIntensity({ ...base, reading: failing, last, now: HOUR - 1 });
    expect(recent).toMatchObject({ gramsPerKWh: 120, source: "carbonAwareSDK", stale: { reason: "SourceFailing" } });
    expect(recent.stale?.message).toMatch(/ECONNREFUSED; using the last value, 120 g\/kWh/);
    const old = effectiveIntensity({ ...base, reading: failing, last, now: HOUR + 1 });
    expect(old).toMatchObject({ gramsPerKWh: 400, source: "default", stale: { reason: "SourceFailing" } });
    // A last value from another source (the spec changed) is not this source's.
    const other = effectiveIntensity({ ...base, reading: failing, last: { ...last, source: "static" }, now: 1 });
    expect(other.source).toBe("default");
  });

  test("a reading the source itself dates too far back is replaced by the default", () => {
    const e = effectiveIntensity({
      ...base,
      reading: { ok: true, value: { region: "westeurope", gramsPerKWh: 50, observedAt: 0 } },
      now: 2 * HOUR,
    });
    expect(e).toMatchObject({ gramsPerKWh: 400, source: "default", stale: { reason: "DataOutdated" } });
  });
});

describe("projection", () => {
  test("projects the window's end at the latest rate and when the budget runs out", () => {
    const p = project({ consumedGrams: 40, budgetGrams: 100, gramsPerMs: 0.01, now: 0, windowEnd: 10_000 });
    expect(p).toEqual({ projectedGrams: 140, remainingGrams: 60, exhaustionTime: 6_000 });
    // Lasting past the window: no exhaustion time.
    expect(project({ consumedGrams: 40, budgetGrams: 100, gramsPerMs: 0.001, now: 0, windowEnd: 10_000 })).toEqual({
      projectedGrams: 50,
      remainingGrams: 60,
      exhaustionTime: undefined,
    });
  });

  test("once spent, the time it was first seen spent stays", () => {
    const p = project({
      consumedGrams: 120,
      budgetGrams: 100,
      gramsPerMs: 0,
      now: 9_000,
      windowEnd: 10_000,
      exhaustedAt: 5_000,
    });
    expect(p).toEqual({ projectedGrams: 120, remainingGrams: 0, exhaustionTime: 5_000 });
  });
});

describe("rolling buckets", () => {
  test("an interval across an hour boundary is split in proportion, and hours out of the window drop", () => {
    let buckets = addToBuckets([], { start: HOUR - 15 * 60_000, end: HOUR + 45 * 60_000, grams: 4, energyKWh: 8 }, 0);
    expect(buckets).toEqual([
      { start: 0, grams: 1, energyKWh: 2 },
      { start: HOUR, grams: 3, energyKWh: 6 },
    ]);
    buckets = addToBuckets(buckets, { start: HOUR + 45 * 60_000, end: 2 * HOUR, grams: 1, energyKWh: 1 }, HOUR);
    expect(buckets).toEqual([{ start: HOUR, grams: 4, energyKWh: 7 }]);
  });
});

describe("caps and estimates", () => {
  test("the band with the highest threshold the intensity is above applies", () => {
    const bands = [
      { aboveGramsPerKWh: 200, maxReplicas: 5 },
      { aboveGramsPerKWh: 400, maxReplicas: 1 },
      { aboveGramsPerKWh: 300, maxReplicas: 3 },
    ];
    expect(capFor(bands, 150)).toBeUndefined();
    expect(capFor(bands, 200)).toBeUndefined();
    expect(capFor(bands, 250)).toBe(5);
    expect(capFor(bands, 350)).toBe(3);
    expect(capFor(bands, 401)).toBe(1);
  });

  test("estimated watts: cores x (idle + (busy - idle) x utilization) + GPUs x their watts", () => {
    const model = { wattsPerCore: 10, idleWattsPerCore: 2, wattsPerGPU: 300, utilization: 0.5 };
    expect(
      estimateWatts(
        [
          { cores: 2, gpus: 0 },
          { cores: 0.5, gpus: 1 },
        ],
        model,
      ),
    ).toBeCloseTo(2.5 * 6 + 300, 9);
    expect(estimateWatts([], model)).toBe(0);
  });
});
