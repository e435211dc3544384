import { afterEach, describe, expect, test } from "vitest";
import type { IntensityPoint, SourceResult } from "../../src/carbon/intensity.ts";
import { carbonAwareSdkSource } from "../../src/carbon/sources/carbon-aware-sdk.ts";
import { electricityMapsSource } from "../../src/carbon/sources/electricity-maps.ts";
import { exporterSource, parseExporterConfigMap } from "../../src/carbon/sources/exporter-configmap.ts";
import { staticSource } from "../../src/carbon/sources/static.ts";
import { type FakeCarbonAwareSdk, startCarbonAwareSdk } from "../fakes/carbon-aware-sdk-server.ts";
import { type FakeElectricityMaps, startElectricityMaps } from "../../src/controlplane/electricity-maps.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** A fixed instant: the fakes answer by the times asked for, not by their own clock. */
const NOW = Date.UTC(2025, 5, 2, 12, 0, 0);
const at = (offsetMs: number) => new Date(NOW + offsetMs);

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

async function sdk(): Promise<FakeCarbonAwareSdk> {
  const fake = await startCarbonAwareSdk();
  closers.push(fake.close);
  return fake;
}

async function electricityMaps(token: string): Promise<FakeElectricityMaps> {
  const fake = await startElectricityMaps({ token });
  closers.push(fake.close);
  return fake;
}

function failure<T>(result: SourceResult<T>): { reason: string; message: string } {
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result.value)}`);
  return result;
}

function value<T>(result: SourceResult<T>): T {
  if (!result.ok) throw new Error(`expected a value, got ${result.reason}: ${result.message}`);
  return result.value;
}

describe("the Carbon Aware SDK fake speaks the WebAPI", () => {
  test("answers EmissionsData with TimeSpan durations, 204 when nothing matches, 400 without a location", async () => {
    const fake = await sdk();
    fake.setIntensity("westus", 410, at(-90 * MINUTE));
    fake.setIntensity("westus", 380, at(-30 * MINUTE));
    const window = `time=${at(-2 * HOUR).toISOString()}&toTime=${at(0).toISOString()}`;

    const res = await fetch(`${fake.url}/emissions/bylocations?location=westus&${window}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([
      { location: "westus", time: "2025-06-02T11:30:00+00:00", rating: 380, duration: "00:30:00" },
      { location: "westus", time: "2025-06-02T10:30:00+00:00", rating: 410, duration: "01:00:00" },
    ]);

    expect((await fetch(`${fake.url}/emissions/bylocations?location=eastus&${window}`)).status).toBe(204);

    const missing = await fetch(`${fake.url}/emissions/bylocations?${window}`);
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({ status: 400, errors: { MultipleLocations: expect.any(Array) } });
  });
});

describe("Carbon Aware SDK source", () => {
  test("current asks for every region in one request and takes each one's latest value at or before now", async () => {
    const fake = await sdk();
    fake.setIntensity("westus", 350, at(-90 * MINUTE));
    fake.setIntensity("westus", 300, at(-20 * MINUTE));
    fake.setIntensity("westus", 999, at(10 * MINUTE)); // not yet in effect
    fake.setIntensity("eastus", 420, at(-10 * MINUTE));

    const readings = value(await carbonAwareSdkSource(fake.url).current(["westus", "eastus"], NOW));

    expect(readings).toEqual([
      { region: "westus", gramsPerKWh: 300, observedAt: NOW - 20 * MINUTE },
      { region: "eastus", gramsPerKWh: 420, observedAt: NOW - 10 * MINUTE },
    ]);
    expect(fake.requests).toHaveLength(1);
    const query = new URL(fake.requests[0]!.path, "http://x");
    expect(query.pathname).toBe("/emissions/bylocations");
    expect(query.searchParams.getAll("location")).toEqual(["westus", "eastus"]);
    expect(query.searchParams.get("time")).toBe(at(-2 * HOUR).toISOString());
    expect(query.searchParams.get("toTime")).toBe(at(0).toISOString());
  });

  test("a value set before the window still holds, and says how old it is", async () => {
    const fake = await sdk();
    fake.setIntensity("northeurope", 120, at(-5 * HOUR));

    const readings = value(await carbonAwareSdkSource(fake.url).current(["northeurope"], NOW));

    expect(readings).toEqual([{ region: "northeurope", gramsPerKWh: 120, observedAt: NOW - 5 * HOUR }]);
  });

  test("a region the data source names otherwise (WattTime's balancing authorities) is asked for alone", async () => {
    const fake = await sdk();
    fake.setIntensity("westus", 250, at(-15 * MINUTE));
    fake.setReportedName("westus", "CAISO_NORTH");
    fake.setIntensity("eastus", 450, at(-5 * MINUTE));

    const readings = value(await carbonAwareSdkSource(fake.url).current(["westus", "eastus"], NOW));

    expect(readings).toEqual([
      { region: "westus", gramsPerKWh: 250, observedAt: NOW - 15 * MINUTE },
      { region: "eastus", gramsPerKWh: 450, observedAt: NOW - 5 * MINUTE },
    ]);
    const asked = fake.requests.map((r) => new URL(r.path, "http://x").searchParams.getAll("location"));
    expect(asked).toEqual([["westus", "eastus"], ["westus"]]);
  });

  test("a region without data is a failure that names it", async () => {
    const fake = await sdk();
    fake.setIntensity("westus", 250, at(-15 * MINUTE));

    const result = failure(await carbonAwareSdkSource(fake.url).current(["westus", "atlantis"], NOW));

    expect(result.reason).toBe("SourceInvalid");
    expect(result.message).toContain("atlantis");
  });

  test("forecast is the current forecast as contiguous steps cut to [from, to), even past its horizon", async () => {
    const fake = await sdk();
    fake.setForecast("westus", [
      { start: at(0), minutes: 60, gramsPerKWh: 300 },
      { start: at(HOUR), minutes: 60, gramsPerKWh: 200 },
      { start: at(2 * HOUR), minutes: 60, gramsPerKWh: 250 },
    ]);

    // The forecast ends at NOW + 3h; the fake answers 400 to a dataEndAt past it, as the WebAPI does.
    const steps = value(await carbonAwareSdkSource(fake.url).forecast("westus", NOW + 30 * MINUTE, NOW + 10 * HOUR));

    expect(steps).toEqual<IntensityPoint[]>([
      { start: NOW + 30 * MINUTE, end: NOW + HOUR, gramsPerKWh: 300 },
      { start: NOW + HOUR, end: NOW + 2 * HOUR, gramsPerKWh: 200 },
      { start: NOW + 2 * HOUR, end: NOW + 3 * HOUR, gramsPerKWh: 250 },
    ]);
    const query = new URL(fake.requests[0]!.path, "http://x");
    expect(query.pathname).toBe("/emissions/forecasts/current");
    expect(query.searchParams.getAll("location")).toEqual(["westus"]);
  });

  test("forecast points every 5 minutes join up into steps with no gap", async () => {
    const fake = await sdk();
    fake.setForecast(
      "eastus",
      Array.from({ length: 12 }, (_, i) => ({ start: at(i * 5 * MINUTE), minutes: 5, gramsPerKWh: 400 + i })),
    );

    const steps = value(await carbonAwareSdkSource(fake.url).forecast("eastus", NOW, NOW + HOUR));

    expect(steps).toHaveLength(12);
    for (const [i, step] of steps.entries()) {
      expect(step).toEqual({ start: NOW + i * 5 * MINUTE, end: NOW + (i + 1) * 5 * MINUTE, gramsPerKWh: 400 + i });
    }
  });

  test("a WebAPI that answers 503 is unreachable", async () => {
    const fake = await sdk();
    fake.setDown(true, "503");

    const result = failure(await carbonAwareSdkSource(fake.url).current(["westus"], NOW));

    expect(result.reason).toBe("SourceUnreachable");
    expect(result.message).toContain("503");
  });

  test("a WebAPI that closes connections is unreachable", async () => {
    const fake = await sdk();
    fake.setDown(true, "close");

    expect(failure(await carbonAwareSdkSource(fake.url).forecast("westus", NOW, NOW + HOUR)).reason).toBe(
      "SourceUnreachable",
    );
  });

  test("a WebAPI that never answers is unreachable once the timeout passes", async () => {
    const fake = await sdk();
    fake.setDown(true, "hang");

    const result = failure(await carbonAwareSdkSource(fake.url, { timeoutMs: 100 }).current(["westus"], NOW));

    expect(result).toEqual({
      ok: false,
      reason: "SourceUnreachable",
      message: `GET ${fake.url}/emissions/bylocations: no answer within 100 ms`,
    });
  });

  test("a body that is not JSON, or a point without its rating, is invalid", async () => {
    const fake = await sdk();
    const source = carbonAwareSdkSource(fake.url);

    fake.answerNext("/emissions/bylocations", 200, '[{"location": "westus", "time": ');
    const notJson = failure(await source.current(["westus"], NOW));
    expect(notJson.reason).toBe("SourceInvalid");
    expect(notJson.message).toContain("not JSON");

    fake.answerNext("/emissions/bylocations", 200, JSON.stringify([{ location: "westus", time: at(0).toISOString() }]));
    const noRating = failure(await source.current(["westus"], NOW));
    expect(noRating).toMatchObject({ reason: "SourceInvalid", message: "emissions[0].rating is not a number" });

    fake.answerNext("/emissions/forecasts/current", 200, JSON.stringify([{ location: "westus" }]));
    const noData = failure(await source.forecast("westus", NOW, NOW + HOUR));
    expect(noData).toMatchObject({ reason: "SourceInvalid", message: "forecastData is not an array" });
  });

  test("a request the WebAPI refuses is rejected with its explanation", async () => {
    const fake = await sdk(); // no forecast for westus: the SDK answers 400 "Sequence contains no elements"
    const source = carbonAwareSdkSource(fake.url);

    const noForecast = failure(await source.forecast("westus", NOW, NOW + HOUR));
    expect(noForecast.reason).toBe("SourceRejected");
    expect(noForecast.message).toContain("400: InvalidOperationException: Sequence contains no elements");

    fake.answerNext("/emissions/forecasts/current", 501, JSON.stringify({ title: "NotImplementedException" }));
    const cannotForecast = failure(await source.forecast("westus", NOW, NOW + HOUR));
    expect(cannotForecast.reason).toBe("SourceRejected");
    expect(cannotForecast.message).toContain("501");
  });
});

describe("Electricity Maps source", () => {
  const TOKEN = "em-token-3f9c1d7a5b";

  test("current asks each zone's latest value with the token and reports its datetime", async () => {
    const fake = await electricityMaps(TOKEN);
    fake.setIntensity("DE", 342, at(-HOUR));
    fake.setIntensity("FR", 38, at(0));

    const readings = value(await electricityMapsSource(fake.url, TOKEN).current(["DE", "FR"], NOW));

    expect(readings).toEqual([
      { region: "DE", gramsPerKWh: 342, observedAt: NOW - HOUR },
      { region: "FR", gramsPerKWh: 38, observedAt: NOW },
    ]);
    expect(fake.requests.map((r) => r.path).sort()).toEqual([
      "/v3/carbon-intensity/latest?zone=DE",
      "/v3/carbon-intensity/latest?zone=FR",
    ]);
    expect(fake.requests.every((r) => r.headers["auth-token"] === TOKEN)).toBe(true);
  });

  test("forecast holds each value until the next, the last for an hour, cut to [from, to)", async () => {
    const fake = await electricityMaps(TOKEN);
    fake.setForecast("DE", [
      { datetime: at(0), gramsPerKWh: 300 },
      { datetime: at(HOUR), gramsPerKWh: 280 },
      { datetime: at(2 * HOUR), gramsPerKWh: 150 },
    ]);
    const source = electricityMapsSource(fake.url, TOKEN);

    expect(value(await source.forecast("DE", NOW, NOW + 24 * HOUR))).toEqual<IntensityPoint[]>([
      { start: NOW, end: NOW + HOUR, gramsPerKWh: 300 },
      { start: NOW + HOUR, end: NOW + 2 * HOUR, gramsPerKWh: 280 },
      { start: NOW + 2 * HOUR, end: NOW + 3 * HOUR, gramsPerKWh: 150 },
    ]);
    expect(value(await source.forecast("DE", NOW + 90 * MINUTE, NOW + 2 * HOUR))).toEqual([
      { start: NOW + 90 * MINUTE, end: NOW + 2 * HOUR, gramsPerKWh: 280 },
    ]);
    expect(fake.requests[0]!.path).toBe("/v3/carbon-intensity/forecast?zone=DE");
  });

  test("a refused token is rejected, and neither token appears in any failure's message", async () => {
    const fake = await electricityMaps(TOKEN);
    fake.setIntensity("DE", 342, at(0));
    const wrongToken = "em-token-wrong-8e2b";
    const messages: string[] = [];

    const refused = failure(await electricityMapsSource(fake.url, wrongToken).current(["DE"], NOW));
    expect(refused.reason).toBe("SourceRejected");
    expect(refused.message).toMatch(/refused the auth token \(401\)/);
    messages.push(refused.message);

    const source = electricityMapsSource(fake.url, TOKEN);
    // An error body that echoes the token must not carry it into the message.
    fake.answerNext("/v3/carbon-intensity/latest", 400, JSON.stringify({ error: "Bad Request", message: TOKEN }));
    messages.push(failure(await source.current(["DE"], NOW)).message);
    messages.push(failure(await source.current(["XX"], NOW)).message);
    fake.answerNext("/v3/carbon-intensity/forecast", 502, "<html>Bad Gateway</html>");
    messages.push(failure(await source.forecast("DE", NOW, NOW + HOUR)).message);
    fake.answerNext("/v3/carbon-intensity/latest", 200, "{");
    messages.push(failure(await source.current(["DE"], NOW)).message);
    await fake.close();
    messages.push(failure(await source.current(["DE"], NOW)).message);

    expect(messages).toHaveLength(6);
    for (const message of messages) {
      expect(message).not.toContain(TOKEN);
      expect(message).not.toContain(wrongToken);
    }
  });

  test("a zone the API has no data for is rejected, naming the zone", async () => {
    const fake = await electricityMaps(TOKEN);

    const result = failure(await electricityMapsSource(fake.url, TOKEN).current(["XX"], NOW));

    expect(result.reason).toBe("SourceRejected");
    expect(result.message).toContain("zone XX");
    expect(result.message).toContain("404");
  });

  test("a stopped server, a 5xx or a rate limit is unreachable", async () => {
    const fake = await electricityMaps(TOKEN);
    const source = electricityMapsSource(fake.url, TOKEN);

    fake.answerNext("/v3/carbon-intensity/latest", 503, "");
    expect(failure(await source.current(["DE"], NOW))).toMatchObject({ reason: "SourceUnreachable" });
    fake.answerNext("/v3/carbon-intensity/latest", 429, "");
    expect(failure(await source.current(["DE"], NOW))).toMatchObject({ reason: "SourceUnreachable" });

    await fake.close();
    const stopped = failure(await source.current(["DE"], NOW));
    expect(stopped.reason).toBe("SourceUnreachable");
    expect(stopped.message).toContain(`GET ${fake.url}/v3/carbon-intensity/latest for zone DE: `);
  });

  test("a malformed body is invalid and names the field", async () => {
    const fake = await electricityMaps(TOKEN);
    const source = electricityMapsSource(fake.url, TOKEN);

    fake.answerNext("/v3/carbon-intensity/latest", 200, "not json");
    expect(failure(await source.current(["DE"], NOW))).toMatchObject({ reason: "SourceInvalid" });

    const noIntensity = { zone: "DE", carbonIntensity: null, datetime: at(0).toISOString() };
    fake.answerNext("/v3/carbon-intensity/latest", 200, JSON.stringify(noIntensity));
    expect(failure(await source.current(["DE"], NOW))).toEqual({
      ok: false,
      reason: "SourceInvalid",
      message: "carbonIntensity of zone DE is not a number",
    });

    const badPoint = { zone: "DE", forecast: [{ carbonIntensity: 300, datetime: "tomorrow-ish" }] };
    fake.answerNext("/v3/carbon-intensity/forecast", 200, JSON.stringify(badPoint));
    expect(failure(await source.forecast("DE", NOW, NOW + HOUR)).message).toBe(
      "forecast[0].datetime of zone DE is not a date-time",
    );
  });

  test("an answer for another zone than the one asked for is invalid", async () => {
    const fake = await electricityMaps(TOKEN);
    const elsewhere = { zone: "NL", carbonIntensity: 250, datetime: at(0).toISOString() };
    fake.answerNext("/v3/carbon-intensity/latest", 200, JSON.stringify(elsewhere));

    const result = failure(await electricityMapsSource(fake.url, TOKEN).current(["DE"], NOW));

    expect(result).toMatchObject({ reason: "SourceInvalid", message: "zone: asked for DE, the answer is for NL" });
  });
});

/** A ConfigMap as the exporter creates it (pkg/exporter/configmap.go), as the Kubernetes API returns it. */
function exporterConfigMap(points: Array<{ timestamp: string; duration: number; value: number }>, location: string) {
  const forecastData = points.map((p) => ({ location, ...p }));
  const values = points.map((p) => p.value);
  return {
    data: {
      lastHeartbeatTime: "2023-03-30 23:57:26.041158869 +0000 UTC m=+10.861427049",
      message: "",
      numOfRecords: String(points.length),
      forecastDateTime: "2023-03-31 00:00:00 +0000 UTC",
      minForecast: Math.min(...values).toFixed(6),
      maxForecast: Math.max(...values).toFixed(6),
    },
    binaryData: { data: Buffer.from(JSON.stringify(forecastData)).toString("base64") },
  };
}

describe("Azure carbon-intensity exporter ConfigMap", () => {
  const START = Date.UTC(2023, 2, 31, 0, 0, 0);
  // 24 hours every 5 minutes, as the exporter stores them: 288 records.
  const day = Array.from({ length: 288 }, (_, i) => ({
    timestamp: new Date(START + i * 5 * MINUTE).toISOString().replace(".000Z", "Z"),
    duration: 5,
    value: 550 + (i % 12),
  }));

  test("parses the forecast into contiguous steps named by the data's location", () => {
    const parsed = value(parseExporterConfigMap(exporterConfigMap(day, "PJM_ROANOKE")));

    expect(parsed.region).toBe("PJM_ROANOKE");
    expect(parsed.points).toHaveLength(288);
    expect(parsed.points[0]).toEqual({ start: START, end: START + 5 * MINUTE, gramsPerKWh: 550 });
    expect(parsed.points.at(-1)).toEqual({
      start: START + 24 * HOUR - 5 * MINUTE,
      end: START + 24 * HOUR,
      gramsPerKWh: 561,
    });
    for (const [i, p] of parsed.points.slice(1).entries()) expect(p.start).toBe(parsed.points[i]!.end);
  });

  test("as a source: the step in effect now, the last one once the forecast has run out, the steps in a window", async () => {
    const source = exporterSource(value(parseExporterConfigMap(exporterConfigMap(day, "PJM_ROANOKE"))), "eastus");

    expect(value(await source.current(["eastus"], START + 7 * MINUTE))).toEqual([
      { region: "eastus", gramsPerKWh: 551, observedAt: START + 5 * MINUTE },
    ]);
    expect(value(await source.current(["eastus"], START + 30 * HOUR))).toEqual([
      { region: "eastus", gramsPerKWh: 561, observedAt: START + 24 * HOUR - 5 * MINUTE },
    ]);
    expect(failure(await source.current(["eastus"], START - MINUTE)).reason).toBe("SourceInvalid");
    expect(failure(await source.current(["westus"], START)).message).toContain("westus");
    expect(value(await source.forecast("eastus", START + 12 * MINUTE, START + 20 * MINUTE))).toEqual([
      { start: START + 12 * MINUTE, end: START + 15 * MINUTE, gramsPerKWh: 552 },
      { start: START + 15 * MINUTE, end: START + 20 * MINUTE, gramsPerKWh: 553 },
    ]);
  });

  test("serves the data's own location when not told another", async () => {
    const source = exporterSource(value(parseExporterConfigMap(exporterConfigMap(day, "PJM_ROANOKE"))));

    expect(value(await source.current(["PJM_ROANOKE"], START))[0]?.gramsPerKWh).toBe(550);
  });

  test("a malformed ConfigMap is invalid, naming what is wrong", () => {
    const good = exporterConfigMap(day.slice(0, 3), "PJM_ROANOKE");
    const reasons = (cm: Parameters<typeof parseExporterConfigMap>[0]) => failure(parseExporterConfigMap(cm));

    expect(reasons({ data: good.data })).toMatchObject({
      reason: "SourceInvalid",
      message: "binaryData.data is missing",
    });
    expect(reasons({ ...good, binaryData: { data: "bm90IGpzb24=" } }).message).toBe(
      "binaryData.data is not base64-encoded JSON",
    );
    expect(reasons({ ...good, data: { ...good.data, numOfRecords: "288" } }).message).toBe(
      "numOfRecords says 288, binaryData.data holds 3 points",
    );
    const noValue = [{ location: "PJM_ROANOKE", timestamp: "2023-03-31T00:00:00Z", duration: 5 }];
    expect(reasons({ binaryData: { data: Buffer.from(JSON.stringify(noValue)).toString("base64") } }).message).toBe(
      "binaryData.data[0].value is not a number",
    );
    // A failed refresh with no forecast to keep: the data is empty and the message says why.
    const failedRefresh = { data: { ...good.data, message: "dial tcp: connection refused" }, binaryData: { data: "" } };
    expect(reasons(failedRefresh).message).toBe(
      "binaryData.data is empty (the exporter says: dial tcp: connection refused)",
    );
  });
});

describe("static source", () => {
  test("reports its value for every region since the given time, and no forecast", async () => {
    const source = staticSource(250, NOW - HOUR);

    expect(value(await source.current(["a", "b"], NOW))).toEqual([
      { region: "a", gramsPerKWh: 250, observedAt: NOW - HOUR },
      { region: "b", gramsPerKWh: 250, observedAt: NOW - HOUR },
    ]);
    expect(value(await source.forecast("a", NOW, NOW + HOUR))).toEqual([]);
  });
});
