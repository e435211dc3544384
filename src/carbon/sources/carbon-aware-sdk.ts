/**
 * The Green Software Foundation Carbon Aware SDK's WebAPI as an intensity source. Shapes as the WebAPI serialises
 * them (CarbonAwareController, EmissionsData, EmissionsForecastDTO, EmissionsDataDTO):
 *
 * - GET /emissions/bylocations?location=A&location=B&time=<start>&toTime=<end> answers 200 with an array of
 *   EmissionsData {location, time, rating, duration: "hh:mm:ss"} or 204 with no body when nothing matches.
 * - GET /emissions/forecasts/current?location=A answers 200 with an array of EmissionsForecastDTO, one per location,
 *   whose forecastData holds EmissionsDataDTO {location, timestamp, duration: whole minutes, value}.
 * - A bad request answers 400 with a ValidationProblemDetails {title, status, detail, errors}; a data source that
 *   cannot forecast answers 501.
 */
import {
  type IntensityPoint,
  type IntensityReading,
  type IntensitySource,
  type SourceResult,
  clipToWindow,
  holdUntilNext,
} from "../intensity.ts";

type Failure = Extract<SourceResult<never>, { ok: false }>;

/** How far back current() looks for the latest value: sources publish every 5 to 60 minutes, and lag. */
const LOOKBACK_MS = 2 * 3_600_000;

/** The WebAPI at baseUrl (e.g. http://carbon-aware-sdk.carbon:8080), each request bounded by timeoutMs (10 s). */
export function carbonAwareSdkSource(baseUrl: string, opts: { timeoutMs?: number } = {}): IntensitySource {
  const timeoutMs = opts.timeoutMs ?? 10_000;

  const emissions = async (locations: string[], now: number): Promise<SourceResult<EmissionsData[]>> => {
    const url = endpoint(baseUrl, "emissions/bylocations", [
      ...locations.map((l): [string, string] => ["location", l]),
      ["time", new Date(now - LOOKBACK_MS).toISOString()],
      ["toTime", new Date(now).toISOString()],
    ]);
    const answer = await getJson(url, timeoutMs);
    return answer.ok ? parseEmissions(answer.value) : answer;
  };

  return {
    async current(regions, now) {
      if (!regions.length) return { ok: true, value: [] };
      const batch = await emissions(regions, now);
      if (!batch.ok) return batch;
      // Data sources name the data by their own regions (WattTime answers "CAISO_NORTH" when asked for "westus"),
      // so a batched answer can be attributed by name only; a region it does not name is asked for alone, where
      // every point of the answer is that region's.
      const alone = regions.length === 1;
      const readings = await Promise.all(
        regions.map(async (region): Promise<SourceResult<IntensityReading>> => {
          let latest = latestAt(
            batch.value.filter((d) => alone || d.location === region),
            now,
          );
          if (!latest && !alone) {
            const single = await emissions([region], now);
            if (!single.ok) return single;
            latest = latestAt(single.value, now);
          }
          if (!latest) {
            const window = `${new Date(now - LOOKBACK_MS).toISOString()} to ${new Date(now).toISOString()}`;
            return invalid(`the Carbon Aware SDK has no emissions data for ${region} from ${window}`);
          }
          return { ok: true, value: { region, gramsPerKWh: latest.rating, observedAt: latest.time } };
        }),
      );
      const failed = readings.find((r) => !r.ok);
      if (failed) return failed;
      return { ok: true, value: readings.map((r) => (r as { ok: true; value: IntensityReading }).value) };
    },

    async forecast(region, from, to) {
      // dataStartAt and dataEndAt are not sent: the WebAPI answers 400 when either falls outside the forecast it
      // holds, and a window reaching past the forecast's horizon is the usual case. The window is cut here instead.
      const url = endpoint(baseUrl, "emissions/forecasts/current", [["location", region]]);
      const answer = await getJson(url, timeoutMs);
      if (!answer.ok) return answer;
      if (!Array.isArray(answer.value)) return invalid("the forecast answer is not an array");
      const forecasts = answer.value as Array<{ location?: unknown; forecastData?: unknown }>;
      const forecast =
        forecasts.find((f) => f?.location === region) ?? (forecasts.length === 1 ? forecasts[0] : undefined);
      if (!forecast) return invalid(`the forecast answer holds no forecast for ${region}`);
      const data = parseForecastData(forecast.forecastData, "forecastData");
      return data.ok ? { ok: true, value: clipToWindow(data.value.steps, from, to) } : data;
    },
  };
}

/** One EmissionsData of /emissions/bylocations, times in Unix milliseconds. */
interface EmissionsData {
  location: string;
  time: number;
  rating: number;
}

function parseEmissions(body: unknown): SourceResult<EmissionsData[]> {
  if (body === undefined) return { ok: true, value: [] }; // 204: no data in the window
  if (!Array.isArray(body)) return invalid("the emissions answer is not an array");
  const data: EmissionsData[] = [];
  for (const [i, item] of (body as Array<Record<string, unknown>>).entries()) {
    const field = (name: string) => `emissions[${i}].${name}`;
    if (typeof item?.location !== "string") return invalid(`${field("location")} is not a string`);
    const time = typeof item.time === "string" ? Date.parse(item.time) : NaN;
    if (Number.isNaN(time)) return invalid(`${field("time")} is not a date-time`);
    if (typeof item.rating !== "number" || !Number.isFinite(item.rating))
      return invalid(`${field("rating")} is not a number`);
    data.push({ location: item.location, time, rating: item.rating });
  }
  return { ok: true, value: data };
}

/** The data point that took effect last at or before now. */
function latestAt(data: EmissionsData[], now: number): EmissionsData | undefined {
  let latest: EmissionsData | undefined;
  for (const d of data) if (d.time <= now && (!latest || d.time > latest.time)) latest = d;
  return latest;
}

/**
 * EmissionsDataDTO forecast points ({location, timestamp, duration in whole minutes, value}) as contiguous steps,
 * with the distinct locations they name. Each point holds until the next one starts; the last for its duration.
 * The Azure carbon-intensity exporter stores exactly this array, so its ConfigMap parser uses this too.
 */
export function parseForecastData(
  items: unknown,
  field: string,
): SourceResult<{ steps: IntensityPoint[]; locations: string[] }> {
  if (!Array.isArray(items)) return invalid(`${field} is not an array`);
  const samples: Array<{ start: number; gramsPerKWh: number; durationMs: number }> = [];
  const locations = new Set<string>();
  for (const [i, item] of (items as Array<Record<string, unknown>>).entries()) {
    const at = (name: string) => `${field}[${i}].${name}`;
    if (typeof item?.location !== "string") return invalid(`${at("location")} is not a string`);
    const start = typeof item.timestamp === "string" ? Date.parse(item.timestamp) : NaN;
    if (Number.isNaN(start)) return invalid(`${at("timestamp")} is not a date-time`);
    if (typeof item.duration !== "number" || !(item.duration > 0))
      return invalid(`${at("duration")} is not a positive number of minutes`);
    if (typeof item.value !== "number" || !Number.isFinite(item.value))
      return invalid(`${at("value")} is not a number`);
    locations.add(item.location);
    samples.push({ start, gramsPerKWh: item.value, durationMs: item.duration * 60_000 });
  }
  const last = samples.reduce<(typeof samples)[number] | undefined>(
    (l, s) => (!l || s.start > l.start ? s : l),
    undefined,
  );
  return { ok: true, value: { steps: holdUntilNext(samples, last?.durationMs ?? 0), locations: [...locations] } };
}

function endpoint(baseUrl: string, path: string, params: Array<[string, string]>): URL {
  const url = new URL(path, baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`);
  for (const [k, v] of params) url.searchParams.append(k, v);
  return url;
}

/** GET a JSON answer; undefined for 204. Every way the WebAPI can fail is named by the status that says it. */
async function getJson(url: URL, timeoutMs: number): Promise<SourceResult<unknown>> {
  const where = `${url.origin}${url.pathname}`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: "application/json" } });
  } catch (e) {
    if ((e as Error).name === "TimeoutError")
      return { ok: false, reason: "SourceUnreachable", message: `GET ${where}: no answer within ${timeoutMs} ms` };
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (e as Error).message;
    return { ok: false, reason: "SourceUnreachable", message: `GET ${where}: ${why}` };
  }
  const text = await res.text().catch(() => "");
  if (res.status === 204) return { ok: true, value: undefined };
  if (res.status === 501)
    return {
      ok: false,
      reason: "SourceRejected",
      message: `GET ${where}: the WebAPI's data source cannot do this (501)`,
    };
  if (res.status >= 500)
    return { ok: false, reason: "SourceUnreachable", message: `GET ${where} answered ${res.status}` };
  if (res.status >= 400)
    return { ok: false, reason: "SourceRejected", message: `GET ${where} answered ${res.status}${problem(text)}` };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return invalid(`GET ${where} answered ${res.status} with a body that is not JSON`);
  }
}

/** The gist of a ValidationProblemDetails body, e.g. ": ArgumentException: Invalid parameters (MultipleLocations: ...)". */
function problem(text: string): string {
  let body: { title?: unknown; detail?: unknown; errors?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    return "";
  }
  const parts = [body?.title, body?.detail].filter((p): p is string => typeof p === "string" && p !== "");
  const errors =
    body?.errors && typeof body.errors === "object"
      ? Object.entries(body.errors as Record<string, unknown>).map(
          ([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : String(v)}`,
        )
      : [];
  const gist = parts.join(": ") + (errors.length ? ` (${errors.join("; ")})` : "");
  return gist ? `: ${gist.slice(0, 300)}` : "";
}

function invalid(message: string): Failure {
  return { ok: false, reason: "SourceInvalid", message };
}
