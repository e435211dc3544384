/**
 * Electricity Maps API v3 as an intensity source. Every request carries the token in the `auth-token` header.
 *
 * - GET /v3/carbon-intensity/latest?zone=Z answers {zone, carbonIntensity, datetime, updatedAt, createdAt,
 *   emissionFactorType, isEstimated, estimationMethod}; datetime is the start of the hour the value is for.
 * - GET /v3/carbon-intensity/forecast?zone=Z answers {zone, forecast: [{carbonIntensity, datetime}], updatedAt}.
 * - A missing or unknown token answers 401 {error: "Invalid auth-token", message}; a token whose plan does not
 *   cover the zone or the endpoint answers 403.
 *
 * The token appears in no message: failures name the status, the zone and the field, never the request's headers.
 */
import { type IntensitySource, type SourceResult, clipToWindow, holdUntilNext } from "../intensity.ts";

type Failure = Extract<SourceResult<never>, { ok: false }>;

/** Electricity Maps' resolution: each forecast value is for one hour. */
const HOUR_MS = 3_600_000;

/**
 * The API at baseUrl (https://api.electricitymaps.com, the host the portal's API reference names; the older
 * api.electricitymap.org is its legacy one), the /v3 paths appended, each request bounded by timeoutMs.
 */
export function electricityMapsSource(
  baseUrl: string,
  token: string,
  opts: { timeoutMs?: number } = {},
): IntensitySource {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const get = (path: string, zone: string) => getJson(baseUrl, path, zone, token, timeoutMs);

  return {
    async current(regions) {
      const readings = await Promise.all(
        regions.map(async (zone) => {
          const answer = await get("v3/carbon-intensity/latest", zone);
          if (!answer.ok) return answer;
          const body = answer.value as Record<string, unknown>;
          const wrongZone = checkZone(body, zone);
          if (wrongZone) return wrongZone;
          const observedAt = typeof body.datetime === "string" ? Date.parse(body.datetime) : NaN;
          if (Number.isNaN(observedAt)) return invalid(`datetime of zone ${zone} is not a date-time`);
          if (typeof body.carbonIntensity !== "number" || !Number.isFinite(body.carbonIntensity))
            return invalid(`carbonIntensity of zone ${zone} is not a number`);
          return { ok: true as const, value: { region: zone, gramsPerKWh: body.carbonIntensity, observedAt } };
        }),
      );
      const failed = readings.find((r) => !r.ok);
      if (failed) return failed;
      return { ok: true, value: readings.map((r) => (r as Extract<typeof r, { ok: true }>).value) };
    },

    async forecast(zone, from, to) {
      const answer = await get("v3/carbon-intensity/forecast", zone);
      if (!answer.ok) return answer;
      const body = answer.value as Record<string, unknown>;
      const wrongZone = checkZone(body, zone);
      if (wrongZone) return wrongZone;
      if (!Array.isArray(body.forecast)) return invalid(`forecast of zone ${zone} is not an array`);
      const samples: Array<{ start: number; gramsPerKWh: number }> = [];
      for (const [i, item] of (body.forecast as Array<Record<string, unknown>>).entries()) {
        const start = typeof item?.datetime === "string" ? Date.parse(item.datetime) : NaN;
        if (Number.isNaN(start)) return invalid(`forecast[${i}].datetime of zone ${zone} is not a date-time`);
        if (typeof item.carbonIntensity !== "number" || !Number.isFinite(item.carbonIntensity))
          return invalid(`forecast[${i}].carbonIntensity of zone ${zone} is not a number`);
        samples.push({ start, gramsPerKWh: item.carbonIntensity });
      }
      return { ok: true, value: clipToWindow(holdUntilNext(samples, HOUR_MS), from, to) };
    },
  };
}

/**
 * An answer for another zone than the one asked for is refused: the API falls back on the caller's IP location
 * when it does not recognise the zone, and that grid's intensity must not pass for the one asked for.
 */
function checkZone(body: Record<string, unknown>, zone: string): Failure | undefined {
  if (body === null || typeof body !== "object") return invalid(`the answer for zone ${zone} is not an object`);
  if (body.zone !== undefined && body.zone !== zone)
    return invalid(`zone: asked for ${zone}, the answer is for ${String(body.zone)}`);
  return undefined;
}

async function getJson(
  baseUrl: string,
  path: string,
  zone: string,
  token: string,
  timeoutMs: number,
): Promise<SourceResult<unknown>> {
  const url = new URL(path, baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`);
  url.searchParams.set("zone", zone);
  const where = `GET ${url.origin}${url.pathname} for zone ${zone}`;
  let res: Response;
  try {
    res = await fetch(url, { headers: { "auth-token": token }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    if ((e as Error).name === "TimeoutError")
      return { ok: false, reason: "SourceUnreachable", message: `${where}: no answer within ${timeoutMs} ms` };
    const cause = (e as { cause?: { code?: string } }).cause;
    return { ok: false, reason: "SourceUnreachable", message: `${where}: ${cause?.code ?? (e as Error).name}` };
  }
  const text = await res.text().catch(() => "");
  if (res.status === 401)
    return { ok: false, reason: "SourceRejected", message: `${where}: Electricity Maps refused the auth token (401)` };
  if (res.status === 403) {
    const message = `${where}: Electricity Maps refused the auth token, or its plan does not cover this (403)`;
    return { ok: false, reason: "SourceRejected", message };
  }
  // Rate limiting passes like an outage does: the same request works later.
  if (res.status === 429 || res.status >= 500)
    return { ok: false, reason: "SourceUnreachable", message: `${where} answered ${res.status}` };
  if (res.status >= 400)
    return { ok: false, reason: "SourceRejected", message: `${where} answered ${res.status}${reason(text, token)}` };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return invalid(`${where} answered ${res.status} with a body that is not JSON`);
  }
}

/** The error body's own explanation, e.g. ": Zone 'XX' does not exist", with the token scrubbed should it echo it. */
function reason(text: string, token: string): string {
  let body: { error?: unknown; message?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    return "";
  }
  const said = [body?.error, body?.message].filter((p): p is string => typeof p === "string" && p !== "").join(": ");
  return said ? `: ${(token ? said.split(token).join("***") : said).slice(0, 300)}` : "";
}

function invalid(message: string): Failure {
  return { ok: false, reason: "SourceInvalid", message };
}
