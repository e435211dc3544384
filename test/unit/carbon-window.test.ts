import { describe, expect, test } from "vitest";
import { type PeriodType, isValidTimeZone, periodWindow } from "../../src/carbon/window.ts";

const HOUR = 3_600_000;
const at = (iso: string) => Date.parse(iso);

/** The window as ISO instants and its length in hours, so failures read as dates. */
function window(type: PeriodType, timeZone: string | undefined, now: string) {
  const { start, end } = periodWindow({ type, timeZone }, at(now));
  return { start: new Date(start).toISOString(), end: new Date(end).toISOString(), hours: (end - start) / HOUR };
}

describe("Daily", () => {
  test("UTC by default: midnight to midnight, start inclusive, end exclusive", () => {
    const day = { start: "2026-05-14T00:00:00.000Z", end: "2026-05-15T00:00:00.000Z", hours: 24 };
    expect(window("Daily", undefined, "2026-05-14T13:45:00Z")).toEqual(day);
    expect(window("Daily", "UTC", "2026-05-14T00:00:00Z")).toEqual(day);
    expect(window("Daily", "UTC", "2026-05-14T23:59:59.999Z")).toEqual(day);
    expect(window("Daily", "UTC", "2026-05-15T00:00:00Z").start).toBe("2026-05-15T00:00:00.000Z");
  });

  test("Europe/Paris: the local day, whose UTC dates differ near midnight", () => {
    const july1 = { start: "2026-06-30T22:00:00.000Z", end: "2026-07-01T22:00:00.000Z", hours: 24 };
    expect(window("Daily", "Europe/Paris", "2026-07-01T10:00:00Z")).toEqual(july1);
    // 23:30 UTC on June 30 is already 01:30 on July 1 in Paris.
    expect(window("Daily", "Europe/Paris", "2026-06-30T23:30:00Z")).toEqual(july1);
    expect(window("Daily", "Europe/Paris", "2026-07-01T22:00:00Z").start).toBe("2026-07-01T22:00:00.000Z");
    expect(window("Daily", "Europe/Paris", "2026-01-15T12:00:00Z")).toEqual({
      start: "2026-01-14T23:00:00.000Z",
      end: "2026-01-15T23:00:00.000Z",
      hours: 24,
    });
  });

  test("Europe/Paris, 2026-03-29: clocks go forward at 02:00, a day of 23 hours", () => {
    const day = { start: "2026-03-28T23:00:00.000Z", end: "2026-03-29T22:00:00.000Z", hours: 23 };
    expect(window("Daily", "Europe/Paris", "2026-03-28T23:00:00Z")).toEqual(day);
    expect(window("Daily", "Europe/Paris", "2026-03-29T00:59:59Z")).toEqual(day); // 01:59:59 CET
    expect(window("Daily", "Europe/Paris", "2026-03-29T01:00:00Z")).toEqual(day); // 03:00 CEST
    expect(window("Daily", "Europe/Paris", "2026-03-29T21:59:59.999Z")).toEqual(day);
    expect(window("Daily", "Europe/Paris", "2026-03-29T22:00:00Z").hours).toBe(24);
  });

  test("Europe/Paris, 2026-10-25: clocks go back at 03:00, a day of 25 hours", () => {
    const day = { start: "2026-10-24T22:00:00.000Z", end: "2026-10-25T23:00:00.000Z", hours: 25 };
    // 02:30 is shown twice, in CEST then in CET: both belong to the same day.
    expect(window("Daily", "Europe/Paris", "2026-10-25T00:30:00Z")).toEqual(day);
    expect(window("Daily", "Europe/Paris", "2026-10-25T01:30:00Z")).toEqual(day);
    expect(window("Daily", "Europe/Paris", "2026-10-25T22:59:59.999Z")).toEqual(day);
    expect(window("Daily", "Europe/Paris", "2026-10-24T21:59:59.999Z").end).toBe(day.start);
  });

  test("a midnight the clocks skip: America/Havana on 2026-03-08 starts at 01:00", () => {
    // Cuba moves its clocks from 00:00 to 01:00: the day's first instant is 01:00 CDT.
    expect(window("Daily", "America/Havana", "2026-03-08T12:00:00Z")).toEqual({
      start: "2026-03-08T05:00:00.000Z",
      end: "2026-03-09T04:00:00.000Z",
      hours: 23,
    });
    expect(window("Daily", "America/Havana", "2026-03-08T04:59:59Z").end).toBe("2026-03-08T05:00:00.000Z");
  });

  test("a midnight the clocks show twice: America/Havana on 2026-11-01 starts at the first", () => {
    // Cuba moves its clocks from 01:00 back to 00:00: midnight comes at 04:00 UTC and again at 05:00 UTC.
    const day = { start: "2026-11-01T04:00:00.000Z", end: "2026-11-02T05:00:00.000Z", hours: 25 };
    expect(window("Daily", "America/Havana", "2026-11-01T04:30:00Z")).toEqual(day);
    expect(window("Daily", "America/Havana", "2026-11-01T05:30:00Z")).toEqual(day);
    expect(window("Daily", "America/Havana", "2026-10-31T12:00:00Z").end).toBe(day.start);
  });

  test("a zone half an hour off UTC", () => {
    expect(window("Daily", "Asia/Kolkata", "2026-05-14T19:00:00Z")).toEqual({
      start: "2026-05-14T18:30:00.000Z",
      end: "2026-05-15T18:30:00.000Z",
      hours: 24,
    });
  });
});

describe("Weekly", () => {
  test("UTC: the ISO week, Monday 00:00 to the next Monday", () => {
    // 2026-05-14 is a Thursday.
    const week = { start: "2026-05-11T00:00:00.000Z", end: "2026-05-18T00:00:00.000Z", hours: 168 };
    expect(window("Weekly", "UTC", "2026-05-14T13:45:00Z")).toEqual(week);
    expect(window("Weekly", "UTC", "2026-05-11T00:00:00Z")).toEqual(week);
    // Sunday is the week's last day, not its first.
    expect(window("Weekly", "UTC", "2026-05-17T23:59:59.999Z")).toEqual(week);
    expect(window("Weekly", "UTC", "2026-05-18T00:00:00Z").start).toBe("2026-05-18T00:00:00.000Z");
  });

  test("a week across the new year", () => {
    // 2026-01-01 is a Thursday: its week began on Monday 2025-12-29.
    expect(window("Weekly", "UTC", "2026-01-01T12:00:00Z")).toEqual({
      start: "2025-12-29T00:00:00.000Z",
      end: "2026-01-05T00:00:00.000Z",
      hours: 168,
    });
  });

  test("Europe/Paris: local Mondays, and the weeks of both DST changes", () => {
    // Sunday 23:30 UTC is already Monday 01:30 in Paris.
    expect(window("Weekly", "Europe/Paris", "2026-05-17T23:30:00Z")).toEqual({
      start: "2026-05-17T22:00:00.000Z",
      end: "2026-05-24T22:00:00.000Z",
      hours: 168,
    });
    expect(window("Weekly", "Europe/Paris", "2026-03-29T12:00:00Z")).toEqual({
      start: "2026-03-22T23:00:00.000Z",
      end: "2026-03-29T22:00:00.000Z",
      hours: 167,
    });
    expect(window("Weekly", "Europe/Paris", "2026-10-21T12:00:00Z")).toEqual({
      start: "2026-10-18T22:00:00.000Z",
      end: "2026-10-25T23:00:00.000Z",
      hours: 169,
    });
  });
});

describe("Monthly", () => {
  test("UTC: the 1st to the 1st of the next month", () => {
    expect(window("Monthly", "UTC", "2026-05-14T13:45:00Z")).toEqual({
      start: "2026-05-01T00:00:00.000Z",
      end: "2026-06-01T00:00:00.000Z",
      hours: 31 * 24,
    });
    expect(window("Monthly", "UTC", "2026-12-31T23:59:59.999Z")).toEqual({
      start: "2026-12-01T00:00:00.000Z",
      end: "2027-01-01T00:00:00.000Z",
      hours: 31 * 24,
    });
  });

  test("February of the leap year 2028 has 29 days; of 2027, 28", () => {
    const february = { start: "2028-02-01T00:00:00.000Z", end: "2028-03-01T00:00:00.000Z", hours: 29 * 24 };
    expect(window("Monthly", "UTC", "2028-02-15T00:00:00Z")).toEqual(february);
    expect(window("Monthly", "UTC", "2028-02-29T23:59:59.999Z")).toEqual(february);
    expect(window("Monthly", "UTC", "2028-03-01T00:00:00Z").start).toBe("2028-03-01T00:00:00.000Z");
    expect(window("Monthly", "UTC", "2027-02-28T12:00:00Z").hours).toBe(28 * 24);
  });

  test("Europe/Paris: local months, one hour short in March and one hour long in October", () => {
    expect(window("Monthly", "Europe/Paris", "2028-02-29T22:59:59Z")).toEqual({
      start: "2028-01-31T23:00:00.000Z",
      end: "2028-02-29T23:00:00.000Z",
      hours: 29 * 24,
    });
    expect(window("Monthly", "Europe/Paris", "2028-02-29T23:00:00Z").start).toBe("2028-02-29T23:00:00.000Z");
    expect(window("Monthly", "Europe/Paris", "2026-03-10T12:00:00Z").hours).toBe(31 * 24 - 1);
    expect(window("Monthly", "Europe/Paris", "2026-10-10T12:00:00Z")).toEqual({
      start: "2026-09-30T22:00:00.000Z",
      end: "2026-10-31T23:00:00.000Z",
      hours: 31 * 24 + 1,
    });
  });
});

describe("Rolling", () => {
  test("the duration up to now, whatever the zone", () => {
    const now = at("2026-03-29T01:30:00Z");
    expect(periodWindow({ type: "Rolling", durationMs: 6 * HOUR }, now)).toEqual({ start: now - 6 * HOUR, end: now });
    expect(periodWindow({ type: "Rolling", timeZone: "Europe/Paris", durationMs: 24 * HOUR }, now)).toEqual({
      start: now - 24 * HOUR,
      end: now,
    });
  });

  test("a Rolling period without a positive duration is an error", () => {
    expect(() => periodWindow({ type: "Rolling" }, 0)).toThrow(/durationMs/);
    expect(() => periodWindow({ type: "Rolling", durationMs: 0 }, 0)).toThrow(/durationMs/);
    expect(() => periodWindow({ type: "Rolling", durationMs: Number.NaN }, 0)).toThrow(/durationMs/);
  });
});

describe("time zones", () => {
  test("an unknown zone is an error naming it, for every period type", () => {
    for (const type of ["Daily", "Weekly", "Monthly"] satisfies PeriodType[]) {
      expect(() => periodWindow({ type, timeZone: "Mars/Olympus_Mons" }, 0)).toThrow(
        'unknown time zone "Mars/Olympus_Mons"',
      );
    }
    expect(() => periodWindow({ type: "Rolling", timeZone: "Europe/Pariss", durationMs: HOUR }, 0)).toThrow(
      /Europe\/Pariss/,
    );
  });

  test("an unknown period type is an error naming it", () => {
    expect(() => periodWindow({ type: "Yearly" as PeriodType }, 0)).toThrow(/"Yearly"/);
  });

  test("isValidTimeZone", () => {
    expect(isValidTimeZone("UTC")).toBe(true);
    expect(isValidTimeZone("Europe/Paris")).toBe(true);
    expect(isValidTimeZone("America/Havana")).toBe(true);
    expect(isValidTimeZone("Mars/Olympus_Mons")).toBe(false);
    expect(isValidTimeZone("")).toBe(false);
  });
});
