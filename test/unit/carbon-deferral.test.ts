import { describe, expect, test } from "vitest";
import { bestStart } from "../../src/carbon/deferral.ts";
import type { IntensityPoint } from "../../src/carbon/intensity.ts";

const HOUR = 3_600_000;
const T0 = Date.parse("2026-06-01T00:00:00Z");

/** Hourly steps from T0 + firstHour, one per intensity; null leaves that hour out of the forecast. */
function hourly(intensities: (number | null)[], firstHour = 0): IntensityPoint[] {
  return intensities.flatMap((gramsPerKWh, i) => {
    if (gramsPerKWh === null) return [];
    const start = T0 + (firstHour + i) * HOUR;
    return [{ start, end: start + HOUR, gramsPerKWh }];
  });
}

const h = (hours: number) => T0 + hours * HOUR;

describe("bestStart", () => {
  test("the minimum in the middle of the window: the start of its step", () => {
    expect(bestStart(hourly([300, 250, 120, 200, 280]), { notBefore: h(0), notAfter: h(5) }, h(0))).toEqual({
      startAt: h(2),
      gramsPerKWh: 120,
      reason: "LowestForecast",
    });
  });

  test("ties go to the earliest instant", () => {
    const forecast = hourly([300, 90, 200, 90, 90]);
    expect(bestStart(forecast, { notBefore: h(0), notAfter: h(5) }, h(0))).toMatchObject({
      startAt: h(1),
      gramsPerKWh: 90,
    });
    // The order the source lists steps in does not matter.
    expect(bestStart([...forecast].reverse(), { notBefore: h(0), notAfter: h(5) }, h(0))).toMatchObject({
      startAt: h(1),
      gramsPerKWh: 90,
    });
  });

  test("a step partly before the window counts from the window's start", () => {
    const now = h(1.5);
    expect(bestStart(hourly([300, 100, 200]), { notBefore: h(0), notAfter: h(3) }, now)).toEqual({
      startAt: now,
      gramsPerKWh: 100,
      reason: "LowestForecast",
    });
  });

  test("steps before now count no longer, however low", () => {
    expect(bestStart(hourly([50, 400, 300]), { notBefore: h(0), notAfter: h(3) }, h(1))).toEqual({
      startAt: h(2),
      gramsPerKWh: 300,
      reason: "LowestForecast",
    });
  });

  test("the deadline itself may be chosen; a step after it may not", () => {
    // The window is [h(0), h(2)], closed: the step starting at h(2) offers h(2).
    expect(bestStart(hourly([300, 200, 100]), { notBefore: h(0), notAfter: h(2) }, h(0))).toMatchObject({
      startAt: h(2),
      gramsPerKWh: 100,
    });
    expect(bestStart(hourly([300, 200, 100, 10]), { notBefore: h(0), notAfter: h(1.5) }, h(0))).toMatchObject({
      startAt: h(1),
      gramsPerKWh: 200,
    });
  });

  test("gaps in the forecast are never chosen, even where everything known is high", () => {
    // Unknown at h(0)..h(1) and h(2)..h(3): the only candidates are h(1) at 400 and h(3) at 350.
    expect(bestStart(hourly([null, 400, null, 350]), { notBefore: h(0), notAfter: h(4) }, h(0))).toEqual({
      startAt: h(3),
      gramsPerKWh: 350,
      reason: "LowestForecast",
    });
    // A forecast that covers only part of the window: its one step, not the window's start.
    expect(bestStart(hourly([900], 2), { notBefore: h(0), notAfter: h(6) }, h(0))).toEqual({
      startAt: h(2),
      gramsPerKWh: 900,
      reason: "LowestForecast",
    });
  });

  test("empty steps cover no instant", () => {
    const forecast = [...hourly([300]), { start: h(0.5), end: h(0.5), gramsPerKWh: 1 }];
    expect(bestStart(forecast, { notBefore: h(0), notAfter: h(1) }, h(0))).toMatchObject({ gramsPerKWh: 300 });
  });

  test("no forecast for the window: start as soon as allowed", () => {
    const window = { notBefore: h(2), notAfter: h(6) };
    expect(bestStart([], window, h(0))).toEqual({ startAt: h(2), reason: "NoForecast" });
    expect(bestStart([], window, h(3))).toEqual({ startAt: h(3), reason: "NoForecast" });
    // Steps that all end before the window opens or begin after it closes.
    expect(bestStart([...hourly([10, 10]), ...hourly([10], 7)], window, h(0))).toEqual({
      startAt: h(2),
      reason: "NoForecast",
    });
  });

  test("at or after the deadline: start now", () => {
    const forecast = hourly([300, 100, 200, 50]);
    const window = { notBefore: h(0), notAfter: h(2) };
    expect(bestStart(forecast, window, h(2))).toEqual({ startAt: h(2), reason: "Deadline" });
    expect(bestStart(forecast, window, h(3.25))).toEqual({ startAt: h(3.25), reason: "Deadline" });
    expect(bestStart([], window, h(2))).toEqual({ startAt: h(2), reason: "Deadline" });
  });

  test("notBefore in the future: nothing before it counts, a step across it counts from it", () => {
    const forecast = hourly([20, 300, 150, 250, 180]);
    expect(bestStart(forecast, { notBefore: h(2.5), notAfter: h(5) }, h(0))).toEqual({
      startAt: h(2.5),
      gramsPerKWh: 150,
      reason: "LowestForecast",
    });
    expect(bestStart(forecast, { notBefore: h(3), notAfter: h(5) }, h(0))).toMatchObject({
      startAt: h(4),
      gramsPerKWh: 180,
    });
  });

  test("notBefore after notAfter: the deadline wins", () => {
    const window = { notBefore: h(4), notAfter: h(2) };
    expect(bestStart(hourly([10, 300, 200, 5]), window, h(0))).toEqual({
      startAt: h(2),
      gramsPerKWh: 200,
      reason: "LowestForecast",
    });
    expect(bestStart([], window, h(0))).toEqual({ startAt: h(2), reason: "NoForecast" });
  });
});
