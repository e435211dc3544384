/**
 * A local stand-in for the Green Software Foundation Carbon Aware SDK WebAPI, speaking its documented paths and
 * shapes (src/CarbonAware.WebApi: CarbonAwareController and its models):
 *
 * - GET /emissions/bylocations?location=..&time=..&toTime=..: EmissionsData {location, time, rating, duration as a
 *   .NET TimeSpan "[d.]hh:mm:ss[.fffffff]"}, newest first as WattTime-backed instances answer; 204 when nothing
 *   matches; 400 ValidationProblemDetails for no location, toTime without time, or time not before toTime.
 * - GET /emissions/forecasts/current?location=..&dataStartAt=..&dataEndAt=..: EmissionsForecastDTO per location,
 *   forecastData as EmissionsDataDTO {location, timestamp, duration in whole minutes, value}; 400 when dataStartAt or
 *   dataEndAt falls outside the forecast, as the SDK's EmissionsForecast.Validate does. windowSize is not modelled.
 *
 * Each location has a history of values (setIntensity appends a step starting at `since`; a value holds until the
 * next one, the latest until the end of the window asked for) and a forecast (setForecast replaces it).
 */
import { type IncomingHttpHeaders, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  /** Path and query as received, e.g. /emissions/bylocations?location=westus&time=... */
  path: string;
  headers: IncomingHttpHeaders;
}

export interface ForecastStep {
  start: Date;
  minutes: number;
  gramsPerKWh: number;
}

/** How a down WebAPI fails: 503 Service Unavailable, a closed connection, or no answer at all. */
export type Outage = "503" | "close" | "hang";

export interface FakeCarbonAwareSdk {
  /** Base URL, e.g. http://127.0.0.1:PORT */
  url: string;
  requests: RecordedRequest[];
  /** Appends a value to the location's history, in effect from `since` (default now). */
  setIntensity(location: string, gramsPerKWh: number, since?: Date): void;
  /** Replaces the location's current forecast. */
  setForecast(location: string, points: ForecastStep[]): void;
  /**
   * The name data points carry for a location, as a data source reports it (WattTime answers with balancing
   * authorities: "CAISO_NORTH" for westus). Default: the location itself.
   */
  setReportedName(location: string, name: string): void;
  setDown(down: boolean, how?: Outage): void;
  /** The next request for pathname answers status with this body as it is (malformed JSON, say). */
  answerNext(pathname: string, status: number, body: string): void;
  close(): Promise<void>;
}

interface Reply {
  status: number;
  body?: unknown;
}

const FIVE_MINUTES = 5 * 60_000;

/** Starts the fake on 127.0.0.1 at a free port. */
export async function startCarbonAwareSdk(): Promise<FakeCarbonAwareSdk> {
  const requests: RecordedRequest[] = [];
  const histories = new Map<string, Array<{ since: number; gramsPerKWh: number }>>();
  const forecasts = new Map<string, { generatedAt: number; steps: ForecastStep[] }>();
  const reportedNames = new Map<string, string>();
  const injected: Array<{ pathname: string; status: number; body: string }> = [];
  const outage: { how?: Outage } = {};

  const reported = (location: string) => reportedNames.get(location) ?? location;

  const emissions = (url: URL): Reply => {
    const locations = url.searchParams.getAll("location").filter((l) => l !== "");
    if (!locations.length) return invalidParameters({ MultipleLocations: ["MultipleLocations is not set"] });
    const time = dateParam(url, "time");
    const toTime = dateParam(url, "toTime");
    if (typeof time === "object") return time;
    if (typeof toTime === "object") return toTime;
    if (toTime !== undefined && time === undefined)
      return invalidParameters({ Start: ["Start must be defined if End is defined"] });
    if (time !== undefined && toTime !== undefined && !(time < toTime))
      return invalidParameters({ Start: ["Start must be before End"] });
    const start = time ?? Date.now();
    const end = toTime ?? start;
    const data = locations.flatMap((location) => {
      const history = [...(histories.get(location) ?? [])].sort((a, b) => a.since - b.since);
      return history
        .map((step, i) => {
          const until = history[i + 1]?.since ?? Math.max(end, step.since + FIVE_MINUTES);
          return {
            location: reported(location),
            time: step.since,
            rating: step.gramsPerKWh,
            duration: until - step.since,
          };
        })
        .filter((d) => d.time + d.duration > start && d.time <= end); // the SDK's IntervalHelper.FilterByDuration
    });
    if (!data.length) return { status: 204 };
    data.sort((a, b) => b.time - a.time);
    return {
      status: 200,
      body: data.map((d) => ({ ...d, time: dateTimeOffset(d.time), duration: timeSpan(d.duration) })),
    };
  };

  const currentForecasts = (url: URL): Reply => {
    const locations = url.searchParams.getAll("location").filter((l) => l !== "");
    if (!locations.length) return invalidParameters({ MultipleLocations: ["MultipleLocations is not set"] });
    const dataStartAt = dateParam(url, "dataStartAt");
    const dataEndAt = dateParam(url, "dataEndAt");
    if (typeof dataStartAt === "object") return dataStartAt;
    if (typeof dataEndAt === "object") return dataEndAt;
    const results = [];
    for (const location of locations) {
      const forecast = forecasts.get(location);
      const steps = [...(forecast?.steps ?? [])].sort((a, b) => a.start.getTime() - b.start.getTime());
      const first = steps[0];
      const last = steps.at(-1);
      // What the WebAPI answers when its data source returns an empty forecast (ForecastData.First() throws).
      if (!forecast || !first || !last)
        return {
          status: 400,
          body: { title: "InvalidOperationException", status: 400, detail: "Sequence contains no elements" },
        };
      const minTime = first.start.getTime();
      const maxTime = last.start.getTime() + last.minutes * 60_000;
      const start = dataStartAt ?? minTime;
      const end = dataEndAt ?? maxTime;
      const errors: Record<string, string[]> = {};
      const add = (key: string, message: string) => (errors[key] ??= []).push(message);
      const range = `'${dateTimeOffset(minTime)}' through '${dateTimeOffset(maxTime)}'`;
      if (start >= end) add("dataStartAt", "dataStartAt must be earlier than dataEndAt");
      if (start < minTime || start > maxTime)
        add("dataStartAt", `dataStartAt must be within time range of the forecasted data, ${range}`);
      if (end < minTime || end > maxTime)
        add("dataEndAt", `dataEndAt must be within time range of the forecasted data, ${range}`);
      if (Object.keys(errors).length)
        return {
          status: 400,
          body: { title: "ArgumentException", status: 400, detail: "Invalid EmissionsForecast", errors },
        };
      const data = steps
        .filter((s) => s.start.getTime() + s.minutes * 60_000 > start && s.start.getTime() <= end)
        .map((s) => ({
          location: reported(location),
          timestamp: dateTimeOffset(s.start.getTime()),
          duration: s.minutes,
          value: s.gramsPerKWh,
        }));
      const lowest = Math.min(...data.map((d) => d.value));
      results.push({
        generatedAt: dateTimeOffset(forecast.generatedAt),
        requestedAt: dateTimeOffset(Date.now()),
        location,
        dataStartAt: data[0] && dataStartAt === undefined ? data[0].timestamp : dateTimeOffset(start),
        dataEndAt: data.at(-1) && dataEndAt === undefined ? data.at(-1)?.timestamp : dateTimeOffset(end),
        windowSize: 0,
        optimalDataPoints: data.filter((d) => d.value === lowest),
        forecastData: data,
      });
    }
    return { status: 200, body: results };
  };

  const route = (method: string, url: URL): Reply => {
    if (method !== "GET") return { status: 405 };
    if (url.pathname === "/emissions/bylocations") return emissions(url);
    if (url.pathname === "/emissions/forecasts/current") return currentForecasts(url);
    return { status: 404 };
  };

  const server = createServer((req, res) => {
    const method = req.method ?? "GET";
    const path = req.url ?? "/";
    requests.push({ method, path, headers: req.headers });
    if (outage.how === "close") return void res.socket?.destroy();
    if (outage.how === "hang") return; // answered by nobody; close() ends the connection
    if (outage.how === "503") return send(res, { status: 503, body: { title: "ServiceUnavailable", status: 503 } });
    const url = new URL(path, "http://fake");
    const i = injected.findIndex((x) => x.pathname === url.pathname);
    if (i >= 0) {
      const [reply] = injected.splice(i, 1);
      return void res.writeHead(reply!.status, { "Content-Type": "application/json" }).end(reply!.body);
    }
    send(res, route(method, url));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setIntensity: (location, gramsPerKWh, since = new Date()) => {
      const history = histories.get(location) ?? [];
      history.push({ since: since.getTime(), gramsPerKWh });
      histories.set(location, history);
    },
    setForecast: (location, steps) => void forecasts.set(location, { generatedAt: Date.now(), steps }),
    setReportedName: (location, name) => void reportedNames.set(location, name),
    setDown: (down, how = "503") => void (outage.how = down ? how : undefined),
    answerNext: (pathname, status, body) => void injected.push({ pathname, status, body }),
    close: async () => {
      if (!server.listening) return; // a test may stop the server to see the source fail, then afterEach closes it
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    },
  };
}

/** A date-time query parameter: undefined when absent, a 400 as ASP.NET model binding answers when unparseable. */
function dateParam(url: URL, name: string): number | undefined | Reply {
  const value = url.searchParams.get(name);
  if (value === null || value === "") return undefined;
  const time = Date.parse(value);
  if (!Number.isNaN(time)) return time;
  return {
    status: 400,
    body: {
      type: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
      title: "One or more validation errors occurred.",
      status: 400,
      errors: { [name]: [`The value '${value}' is not valid for ${name}.`] },
    },
  };
}

/** What the SDK's exception filter answers for the ArgumentException CarbonAwareParameters.Validate throws. */
function invalidParameters(errors: Record<string, string[]>): Reply {
  return { status: 400, body: { title: "ArgumentException", status: 400, detail: "Invalid parameters", errors } };
}

/** A DateTimeOffset in UTC as System.Text.Json writes it: 2022-08-23T14:30:00+00:00, fractions only when present. */
function dateTimeOffset(ms: number): string {
  return new Date(ms).toISOString().replace(/\.?0*Z$/, "+00:00");
}

/** A TimeSpan in .NET's constant format, as System.Text.Json writes it: [d.]hh:mm:ss[.fffffff]. */
function timeSpan(ms: number): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  const days = Math.floor(ms / 86_400_000);
  const clock = `${pad(Math.floor(ms / 3_600_000) % 24)}:${pad(Math.floor(ms / 60_000) % 60)}:${pad(Math.floor(ms / 1000) % 60)}`;
  const fraction = ms % 1000 ? `.${String((ms % 1000) * 10_000).padStart(7, "0")}` : "";
  return `${days ? `${days}.` : ""}${clock}${fraction}`;
}

function send(res: ServerResponse, reply: Reply): void {
  if (reply.body === undefined) return void res.writeHead(reply.status).end();
  res.writeHead(reply.status, { "Content-Type": "application/json; charset=utf-8" }).end(JSON.stringify(reply.body));
}
