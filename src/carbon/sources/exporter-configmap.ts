/**
 * The ConfigMap Azure's kubernetes-carbon-intensity-exporter writes (pkg/exporter/configmap.go), read without
 * talking to Kubernetes: the caller hands over the ConfigMap's data and binaryData as the API returns them.
 *
 * - data: lastHeartbeatTime and forecastDateTime (Go time.String(), e.g. "2023-03-31 00:00:00 +0000 UTC"),
 *   message ("" unless the last refresh failed, then its error, the old forecast kept), numOfRecords, minForecast,
 *   maxForecast ("%f").
 * - binaryData.data (base64 in the API): the JSON of the Carbon Aware SDK's forecastData, an array of
 *   EmissionsDataDTO {location, timestamp, duration (minutes), value}, every 5 minutes for 24 hours.
 *
 * The exporter records the data source's name for the region (WattTime's "PJM_ROANOKE", say), not the region it
 * was configured with, so that is the region parsed; exporterSource can serve it under the configured name.
 */
import {
  type IntensityPoint,
  type IntensityReading,
  type IntensitySource,
  type SourceResult,
  clipToWindow,
} from "../intensity.ts";
import { parseForecastData } from "./carbon-aware-sdk.ts";

/** The forecast one exporter ConfigMap holds. */
export interface ExporterForecast {
  /** The location the forecast's points name. */
  region: string;
  /** Contiguous steps, oldest first. */
  points: IntensityPoint[];
}

/** The exporter's forecast, or what makes the ConfigMap unusable (missing, empty, corrupt, truncated data). */
export function parseExporterConfigMap(cm: {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}): SourceResult<ExporterForecast> {
  const encoded = cm.binaryData?.data;
  // A refresh that failed with no forecast to keep leaves the data empty and says why in message.
  const because = cm.data?.message ? ` (the exporter says: ${cm.data.message.slice(0, 300)})` : "";
  if (encoded === undefined) return invalid(`binaryData.data is missing${because}`);
  if (encoded === "") return invalid(`binaryData.data is empty${because}`);
  let items: unknown;
  try {
    items = JSON.parse(Buffer.from(encoded, "base64").toString("utf8"));
  } catch {
    return invalid("binaryData.data is not base64-encoded JSON");
  }
  const parsed = parseForecastData(items, "binaryData.data");
  if (!parsed.ok) return parsed;
  const { steps, locations } = parsed.value;
  const records = (items as unknown[]).length;
  if (records === 0) return invalid("binaryData.data holds no forecast points");
  const declared = cm.data?.numOfRecords;
  if (declared !== undefined && Number(declared) !== records)
    return invalid(`numOfRecords says ${declared}, binaryData.data holds ${records} points`);
  const [region, ...others] = locations;
  if (region === undefined || others.length) return invalid(`binaryData.data mixes locations: ${locations.join(", ")}`);
  return { ok: true, value: { region, points: steps } };
}

/**
 * An IntensitySource answering from one parsed ConfigMap for one region: `region` when the operator knows the
 * region by the name the exporter was configured with, the forecast's own location otherwise. current is the step
 * in effect at now (the latest that started at or before it, so a forecast that has run out still answers with
 * its last value, observedAt telling how old it is); forecast is the steps within [from, to).
 */
export function exporterSource(forecast: ExporterForecast, region: string = forecast.region): IntensitySource {
  const unknown = (asked: string) =>
    invalid(`the exporter's ConfigMap holds the forecast for ${region}, not for ${asked}`);
  return {
    async current(regions, now) {
      const readings: IntensityReading[] = [];
      for (const asked of regions) {
        if (asked !== region) return unknown(asked);
        const step = forecast.points.reduce<IntensityPoint | undefined>(
          (latest, p) => (p.start <= now && (!latest || p.start > latest.start) ? p : latest),
          undefined,
        );
        if (!step) return invalid(`the exporter's forecast for ${region} starts after ${new Date(now).toISOString()}`);
        readings.push({ region: asked, gramsPerKWh: step.gramsPerKWh, observedAt: step.start });
      }
      return { ok: true, value: readings };
    },
    async forecast(asked, from, to) {
      if (asked !== region) return unknown(asked);
      return { ok: true, value: clipToWindow(forecast.points, from, to) };
    },
  };
}

function invalid(message: string): { ok: false; reason: "SourceInvalid"; message: string } {
  return { ok: false, reason: "SourceInvalid", message };
}
