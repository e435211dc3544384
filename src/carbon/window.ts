/**
 * The accounting window of a CarbonBudget: the calendar day, ISO week or month that contains an instant in the
 * budget's time zone, or a rolling duration ending at it. Times are Unix milliseconds. Calendar windows start at
 * local midnight, so across a daylight-saving change a day lasts 23 or 25 hours. Nothing here talks to Kubernetes.
 */

export type PeriodType = "Daily" | "Weekly" | "Monthly" | "Rolling";

/** How a CarbonBudget's spec describes its period: timeZone for the calendar types, durationMs for Rolling. */
export interface Period {
  type: PeriodType;
  /** An IANA time zone; "UTC" when absent. */
  timeZone?: string;
  /** The length of a Rolling window. */
  durationMs?: number;
}

const DAY_MS = 86_400_000;

/** One formatter per zone: constructing an Intl.DateTimeFormat costs far more than formatting with one. */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(timeZone, format);
  }
  return format;
}

/** Whether Intl knows tz as a time zone (IANA names, case-insensitively, and offsets such as "+05:30"). */
export function isValidTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

/**
 * The wall clock in timeZone at instant, as the instant that shows the same wall clock in UTC: the day arithmetic
 * below is then plain Date.UTC arithmetic.
 */
function wallClock(instant: number, timeZone: string): number {
  const parts = formatter(timeZone).formatToParts(instant);
  const field = (type: Intl.DateTimeFormatPartTypes) => Number(parts.find((part) => part.type === type)?.value);
  // Intl leaves out milliseconds; they are the same in every zone, as no offset has a fraction of a second.
  const milliseconds = ((instant % 1000) + 1000) % 1000;
  return Date.UTC(
    field("year"),
    field("month") - 1,
    field("day"),
    field("hour"),
    field("minute"),
    field("second"),
    milliseconds,
  );
}

/** The zone's offset from UTC at instant, in milliseconds (east positive). */
function offset(instant: number, timeZone: string): number {
  return wallClock(instant, timeZone) - instant;
}

/**
 * The instant at which timeZone's clocks show wall, disambiguated as Temporal's "compatible" does: a wall clock shown
 * twice (clocks set back) is its earlier instant; one never shown (clocks set forward) moves forward by the gap, so
 * a midnight skipped by a change at 00:00 becomes the first instant of that day. Offsets a day either side are the
 * only two candidates, as no zone changes its offset twice within two days.
 */
function instantAt(wall: number, timeZone: string): number {
  const offsetBefore = offset(wall - DAY_MS, timeZone);
  const offsetAfter = offset(wall + DAY_MS, timeZone);
  const early = wall - offsetBefore;
  const late = wall - offsetAfter;
  const earlyShowsWall = offset(early, timeZone) === offsetBefore;
  const lateShowsWall = offset(late, timeZone) === offsetAfter;
  if (earlyShowsWall && lateShowsWall) return Math.min(early, late);
  if (lateShowsWall) return late;
  // In a gap, or wall shows with the earlier offset only: the earlier offset carries wall past the gap.
  return early;
}

/** The wall-clock midnight of the UTC date of wall, plus days. */
function midnight(wall: number, days: number): number {
  const date = new Date(wall);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate() + days);
}

/**
 * The window of period containing now: start inclusive, end exclusive, both instants.
 *
 * - Daily: the calendar day of now in timeZone (default "UTC"), from one local midnight to the next.
 * - Weekly: the ISO week, from Monday 00:00 to the next Monday 00:00.
 * - Monthly: from 00:00 on the 1st to 00:00 on the 1st of the next month.
 * - Rolling: the durationMs up to now, { start: now - durationMs, end: now }.
 *
 * Throws an Error naming the zone when timeZone is not one Intl knows, and one naming the field when a Rolling
 * period has no positive durationMs or the type is not one of the four (the spec reaches here as untyped JSON).
 */
export function periodWindow(period: Period, now: number): { start: number; end: number } {
  const timeZone = period.timeZone ?? "UTC";
  if (!isValidTimeZone(timeZone)) throw new Error(`unknown time zone "${timeZone}"`);
  if (period.type === "Rolling") {
    const { durationMs } = period;
    if (durationMs === undefined || !Number.isFinite(durationMs) || durationMs <= 0) {
      throw new Error(`a Rolling period needs a positive durationMs, not ${durationMs}`);
    }
    return { start: now - durationMs, end: now };
  }
  const wall = wallClock(now, timeZone);
  const date = new Date(wall);
  let startWall: number;
  let endWall: number;
  switch (period.type) {
    case "Daily":
      startWall = midnight(wall, 0);
      endWall = midnight(wall, 1);
      break;
    case "Weekly": {
      // getUTCDay counts from Sunday = 0; ISO weeks start on Monday.
      const daysSinceMonday = (date.getUTCDay() + 6) % 7;
      startWall = midnight(wall, -daysSinceMonday);
      endWall = midnight(wall, 7 - daysSinceMonday);
      break;
    }
    case "Monthly":
      startWall = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
      endWall = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
      break;
    default:
      throw new Error(`unknown period type "${String(period.type)}"`);
  }
  return { start: instantAt(startWall, timeZone), end: instantAt(endWall, timeZone) };
}
