import type { Schema, ValidationRule } from "./types.ts";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration in Go's format as metav1.Duration writes it ("720h", "1h30m", "90s", "1.5h"). */
export const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$";

export function durationSchema(description: string, defaultValue?: string): Schema {
  return { type: "string", pattern: DURATION_PATTERN, description, ...(defaultValue ? { default: defaultValue } : {}) };
}

/** Milliseconds in a duration of DURATION_PATTERN's form; throws on anything else. */
export function parseDuration(text: string): number {
  if (!new RegExp(DURATION_PATTERN).test(text)) throw new Error(`"${text}" is not a duration such as 90s, 15m or 720h`);
  let ms = 0;
  for (const m of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g))
    ms += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  return ms;
}

/**
 * The durations a CEL rule decides: CEL's duration() is Go's time.ParseDuration, which agrees exactly with
 * parseDuration on whole numbers too small to overflow its int64 nanoseconds, but rounds fractions differently
 * (truncated nanoseconds, not floating point) and fails on huge values. Whole numbers of at most 7 characters (6
 * digits at most: 999999h is in range) cover the ways a short duration is written ("30s", "500ms", "59999ms",
 * "0h0m59s"); anything else is left to the controller's own check of parseDuration's value.
 */
export const CEL_EXACT_DURATION = { pattern: "^([0-9]+(ms|s|m|h))+$", maxLength: 7 } as const;

/** A CEL rule that a duration is at least min (a whole number and a unit, e.g. "1m"), where CEL reads it exactly. */
export function durationAtLeast(min: string): ValidationRule {
  const { pattern, maxLength } = CEL_EXACT_DURATION;
  return {
    rule: `self.size() > ${maxLength} || !self.matches('${pattern}') || duration(self) >= duration('${min}')`,
    message: `must be at least ${min}: set ${min} or longer.`,
    messageExpression: `self + ' is shorter than the minimum of ${min}: set ${min} or longer.'`,
  };
}
