/**
 * Queries against Prometheus' HTTP API (instant and range), with every failure named, never guessed at. Its own folder:
 * RemediationPolicy and CarbonBudget both query Prometheus, and neither owns the client.
 */

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** A series over time: (Unix seconds, value) points, oldest first. */
export interface Series {
  labels: Record<string, string>;
  points: Array<{ time: number; value: number }>;
}

type Failure = { ok: false; reason: "PrometheusUnreachable" | "QueryFailed" | "NoData"; message: string };
export type QueryResult = { ok: true; samples: Sample[] } | Failure;
export type RangeResult = { ok: true; series: Series[] } | Failure;

interface ApiResponse {
  status: "success" | "error";
  errorType?: string;
  error?: string;
  data?: {
    resultType: string;
    result: Array<{ metric: Record<string, string>; value?: [number, string]; values?: Array<[number, string]> }>;
  };
}

/** GET /api/v1/query, evaluated now or at `at` (Unix ms). */
export async function instantQuery(
  baseUrl: string,
  query: string,
  timeoutMs = 10_000,
  at?: number,
): Promise<QueryResult> {
  const params: Record<string, string> = { query };
  if (at !== undefined) params.time = String(at / 1000);
  const body = await call(baseUrl, "api/v1/query", params, timeoutMs);
  if (!body.ok) return body;
  const data = body.data;
  if (data.resultType !== "vector" && data.resultType !== "scalar")
    return { ok: false, reason: "QueryFailed", message: `the query returns a ${data.resultType}, not a vector` };
  const rows =
    data.resultType === "scalar" ? [{ metric: {}, value: data.result as unknown as [number, string] }] : data.result;
  const samples = rows
    .map((r) => ({ labels: r.metric, value: Number(r.value?.[1]) }))
    .filter((s) => !Number.isNaN(s.value));
  if (!samples.length) return { ok: false, reason: "NoData", message: `the query returned no samples: ${query}` };
  return { ok: true, samples };
}

/** GET /api/v1/query_range over [end - rangeSeconds, end] every stepSeconds. */
export async function rangeQuery(
  baseUrl: string,
  query: string,
  end: number,
  rangeSeconds: number,
  stepSeconds: number,
  timeoutMs = 10_000,
): Promise<RangeResult> {
  const params = {
    query,
    start: String((end - rangeSeconds * 1000) / 1000),
    end: String(end / 1000),
    step: String(stepSeconds),
  };
  const body = await call(baseUrl, "api/v1/query_range", params, timeoutMs);
  if (!body.ok) return body;
  if (body.data.resultType !== "matrix")
    return { ok: false, reason: "QueryFailed", message: `the query returns a ${body.data.resultType}, not a matrix` };
  const series = body.data.result
    .map((r) => ({
      labels: r.metric,
      points: (r.values ?? []).map(([t, v]) => ({ time: t, value: Number(v) })).filter((p) => !Number.isNaN(p.value)),
    }))
    .filter((s) => s.points.length);
  if (!series.length) return { ok: false, reason: "NoData", message: `the query returned no samples: ${query}` };
  return { ok: true, series };
}

async function call(
  baseUrl: string,
  path: string,
  params: Record<string, string>,
  timeoutMs: number,
): Promise<{ ok: true; data: NonNullable<ApiResponse["data"]> } | Failure> {
  const url = new URL(path, baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    return {
      ok: false,
      reason: "PrometheusUnreachable",
      message: `GET ${url.origin}: ${cause?.code ?? cause?.message ?? (e as Error).message}`,
    };
  }
  let body: ApiResponse;
  try {
    body = (await res.json()) as ApiResponse;
  } catch {
    return { ok: false, reason: "QueryFailed", message: `${url.origin} answered ${res.status} without a JSON body` };
  }
  if (body.status !== "success" || !body.data)
    return { ok: false, reason: "QueryFailed", message: `${body.errorType ?? res.status}: ${body.error ?? "no data"}` };
  return { ok: true, data: body.data };
}
