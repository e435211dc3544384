/**
 * A local stand-in for the Electricity Maps API v3 (a hosted service with no public source: it follows the v3 API
 * reference, portal.electricitymaps.com/docs/api-reference, carbon-intensity endpoints), for the carbon tests and the
 * demo's `batch` budget. It speaks the documented paths and shapes:
 *
 * - GET /v3/carbon-intensity/latest?zone=Z: {zone, carbonIntensity, datetime, updatedAt, createdAt,
 *   emissionFactorType, isEstimated, estimationMethod, temporalGranularity}.
 * - GET /v3/carbon-intensity/forecast?zone=Z: {zone, forecast: [{carbonIntensity, datetime}], updatedAt}.
 * - No `auth-token` header, or another token: 401 {error: "Invalid auth-token", message}, the bodies Electricity
 *   Maps documents for each case.
 *
 * A zone with nothing set answers 404 {error, message}; the real API's answer for an unknown zone is not
 * documented, so tests must not rely on more than its status being a 4xx.
 */
import { type IncomingHttpHeaders, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  /** Path and query as received, e.g. /v3/carbon-intensity/latest?zone=DE */
  path: string;
  headers: IncomingHttpHeaders;
}

export interface FakeElectricityMaps {
  /** Base URL, e.g. http://127.0.0.1:PORT (the API's paths start with /v3). */
  url: string;
  requests: RecordedRequest[];
  /** The zone's latest value, for the hour starting at `datetime` (default: the current hour). */
  setIntensity(zone: string, gramsPerKWh: number, datetime?: Date): void;
  /** Replaces the zone's forecast: one value per hour starting at each datetime. */
  setForecast(zone: string, points: Array<{ datetime: Date; gramsPerKWh: number }>): void;
  /** The next authorised request for pathname answers status with this body as it is (malformed JSON, say). */
  answerNext(pathname: string, status: number, body: string): void;
  close(): Promise<void>;
}

interface Reply {
  status: number;
  body: unknown;
}

const HOUR_MS = 3_600_000;

/** Starts the fake on 127.0.0.1 at a free port; only `token` is accepted. */
export async function startElectricityMaps(opts: { token: string }): Promise<FakeElectricityMaps> {
  const requests: RecordedRequest[] = [];
  const latest = new Map<string, { gramsPerKWh: number; datetime: number; updatedAt: number }>();
  const forecasts = new Map<string, { points: Array<{ datetime: Date; gramsPerKWh: number }>; updatedAt: number }>();
  const injected: Array<{ pathname: string; status: number; body: string }> = [];

  const unauthorised = (headers: IncomingHttpHeaders): Reply | undefined => {
    const token = headers["auth-token"];
    if (token === undefined)
      return failure(
        401,
        "Invalid auth-token",
        "Please provide a valid authentication header. See https://portal.electricitymaps.com/docs/getting-started#authorization for details",
      );
    if (token !== opts.token)
      return failure(
        401,
        "Invalid auth-token",
        "The provided token is invalid. If this token used to work, please visit https://help.electricitymaps.com to get support",
      );
    return undefined;
  };

  const route = (url: URL): Reply => {
    const zone = url.searchParams.get("zone") ?? "";
    const noData = failure(404, "Not Found", `No data available for zone "${zone}"`);
    if (url.pathname === "/v3/carbon-intensity/latest") {
      const value = latest.get(zone);
      if (!value) return noData;
      const body = {
        zone,
        carbonIntensity: value.gramsPerKWh,
        datetime: new Date(value.datetime).toISOString(),
        updatedAt: new Date(value.updatedAt).toISOString(),
        createdAt: new Date(value.updatedAt).toISOString(),
        emissionFactorType: "lifecycle",
        isEstimated: false,
        estimationMethod: null,
        temporalGranularity: "hourly",
      };
      return { status: 200, body };
    }
    if (url.pathname === "/v3/carbon-intensity/forecast") {
      const forecast = forecasts.get(zone);
      if (!forecast) return noData;
      const points = [...forecast.points].sort((a, b) => a.datetime.getTime() - b.datetime.getTime());
      return {
        status: 200,
        body: {
          zone,
          forecast: points.map((p) => ({ carbonIntensity: p.gramsPerKWh, datetime: p.datetime.toISOString() })),
          updatedAt: new Date(forecast.updatedAt).toISOString(),
        },
      };
    }
    return failure(404, "Not Found", `Cannot GET ${url.pathname}`);
  };

  const server = createServer((req, res) => {
    const method = req.method ?? "GET";
    const path = req.url ?? "/";
    requests.push({ method, path, headers: req.headers });
    const refused = unauthorised(req.headers);
    if (refused) return send(res, refused);
    const url = new URL(path, "http://fake");
    const i = injected.findIndex((x) => x.pathname === url.pathname);
    if (i >= 0) {
      const [reply] = injected.splice(i, 1);
      return void res.writeHead(reply!.status, { "Content-Type": "application/json" }).end(reply!.body);
    }
    send(res, method === "GET" ? route(url) : failure(405, "Method Not Allowed", `Cannot ${method} ${url.pathname}`));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setIntensity: (zone, gramsPerKWh, datetime) => {
      const hour = datetime?.getTime() ?? Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
      latest.set(zone, { gramsPerKWh, datetime: hour, updatedAt: Date.now() });
    },
    setForecast: (zone, points) => void forecasts.set(zone, { points, updatedAt: Date.now() }),
    answerNext: (pathname, status, body) => void injected.push({ pathname, status, body }),
    close: async () => {
      if (!server.listening) return; // a test may stop the server to see the source fail, then afterEach closes it
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    },
  };
}

function failure(status: number, error: string, message: string): Reply {
  return { status, body: { error, message } };
}

function send(res: ServerResponse, reply: Reply): void {
  res.writeHead(reply.status, { "Content-Type": "application/json; charset=utf-8" }).end(JSON.stringify(reply.body));
}
