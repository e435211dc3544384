import type { Schema } from "./types.ts";

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
