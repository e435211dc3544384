import { createHash } from "node:crypto";
import type { IntensityPoint, IntensityReading, IntensitySource, SourceResult } from "../../carbon/intensity.ts";
import { carbonAwareSdkSource } from "../../carbon/sources/carbon-aware-sdk.ts";
import { electricityMapsSource } from "../../carbon/sources/electricity-maps.ts";
import { exporterSource, parseExporterConfigMap } from "../../carbon/sources/exporter-configmap.ts";
import { staticSource } from "../../carbon/sources/static.ts";
import type { CarbonBudget, IntensitySourceType } from "../../crds/carbonbudget.ts";
import type { Cache } from "../../runtime/cache.ts";
import { ConfigMapKind, SecretKind } from "../../runtime/kinds.ts";
import type { KubeObject } from "../../runtime/objects.ts";

/** Where the exporter writes its ConfigMap unless a budget says otherwise. */
const EXPORTER_NAMESPACE = "kube-system";
/**
 * The label with which whoever owns a namespace shares a ConfigMap of it as an intensity source with budgets of
 * every other namespace (e.g. `kubectl -n kube-system label configmap carbon-intensity
 * nextgen.itechsmart.io/carbon-intensity=shared`). Without it a budget reads only its own namespace's ConfigMaps:
 * the operator reads every namespace, and a tenant must not learn through it what another namespace holds.
 */
export const SHARED_INTENSITY_LABEL = "nextgen.itechsmart.io/carbon-intensity";

export interface BudgetSource {
  type: IntensitySourceType;
  region: string;
  source: IntensitySource;
  /**
   * For a remote source: identifies its configuration (never its credentials) so that budgets sharing it share its
   * answers. Local sources (static, a ConfigMap) answer without I/O and are not shared.
   */
  sharedKey?: string;
}

export type SourceSetup = { ok: true; value: BudgetSource } | { ok: false; reason: string; message: string };

type Secret = KubeObject & { data?: Record<string, string> };
type ConfigMap = KubeObject & { data?: Record<string, string>; binaryData?: Record<string, string> };

/** The budget's intensity source, with what it needs from the cluster (a token, a ConfigMap) read from the cache. */
export function budgetSource(budget: CarbonBudget, cache: Cache, now: number): SourceSetup {
  const spec = budget.spec.intensity;
  const ns = budget.metadata.namespace as string;
  if (spec.carbonAwareSDK) {
    const { url, location } = spec.carbonAwareSDK;
    return ok("carbonAwareSDK", location, carbonAwareSdkSource(url), `carbonAwareSDK ${url}`);
  }
  if (spec.electricityMaps) {
    const { url, zone, tokenSecretRef } = spec.electricityMaps;
    const secret = cache.get<Secret>(SecretKind, ns, tokenSecretRef.name);
    const key = tokenSecretRef.key ?? "token";
    if (!secret)
      return {
        ok: false,
        reason: "SecretNotFound",
        message: `Secret ${tokenSecretRef.name} (the API token) is missing.`,
      };
    const encoded = secret.data?.[key];
    if (!encoded)
      return { ok: false, reason: "SecretKeyNotFound", message: `Secret ${tokenSecretRef.name} has no key "${key}".` };
    const token = Buffer.from(encoded, "base64").toString("utf8").trim();
    // Budgets with the same token share answers; the key carries a digest of it, never the token.
    const digest = createHash("sha256").update(token).digest("hex").slice(0, 16);
    return ok("electricityMaps", zone, electricityMapsSource(url, token), `electricityMaps ${url} ${digest}`);
  }
  if (spec.configMap) {
    const cmNs = spec.configMap.namespace ?? EXPORTER_NAMESPACE;
    const found = cache.get<ConfigMap>(ConfigMapKind, cmNs, spec.configMap.name);
    const shared = cmNs === ns || found?.metadata.labels?.[SHARED_INTENSITY_LABEL] === "shared";
    const cm = shared ? found : undefined;
    if (!cm && cmNs !== ns)
      // Missing and not shared read the same: whether another namespace holds such a ConfigMap is not told.
      return {
        ok: false,
        reason: "ConfigMapNotShared",
        message:
          `ConfigMap ${cmNs}/${spec.configMap.name} is not shared with other namespaces: its namespace's owner ` +
          `shares it with the label ${SHARED_INTENSITY_LABEL}=shared.`,
      };
    if (!cm)
      return {
        ok: false,
        reason: "ConfigMapNotFound",
        message: `ConfigMap ${cmNs}/${spec.configMap.name} is missing.`,
      };
    const parsed = parseExporterConfigMap(cm);
    if (!parsed.ok)
      return {
        ok: false,
        reason: "ConfigMapInvalid",
        message: `ConfigMap ${cmNs}/${spec.configMap.name}: ${parsed.message}`,
      };
    return ok("configMap", parsed.value.region, exporterSource(parsed.value));
  }
  const grams = spec.static?.gramsPerKWh ?? 0;
  // A fixed value holds from when it was first seen: the status keeps that time.
  const last = budget.status?.intensity;
  const since = last?.source === "static" && last.gramsPerKWh === grams ? Date.parse(last.observedAt) : now;
  return ok("static", "static", staticSource(grams, since));
}

function ok(type: IntensitySourceType, region: string, source: IntensitySource, sharedKey?: string): SourceSetup {
  return { ok: true, value: { type, region, source, sharedKey } };
}

/**
 * Answers shared by every budget that reads the same source at the same tick: 500 budgets on one Carbon Aware SDK
 * make one request per refresh, not 500. Entries of earlier ticks are dropped as newer ones arrive.
 */
export class SourceAnswers {
  private readonly current = new Map<string, { tick: number; answer: Promise<SourceResult<IntensityReading[]>> }>();
  private readonly forecasts = new Map<string, { tick: number; answer: Promise<SourceResult<IntensityPoint[]>> }>();

  readings(s: BudgetSource, regions: string[], tick: number, now: number): Promise<SourceResult<IntensityReading[]>> {
    if (!s.sharedKey) return s.source.current(regions, now);
    const key = `${s.sharedKey} ${[...regions].sort().join(",")}`;
    const hit = this.current.get(key);
    if (hit && hit.tick === tick) return hit.answer;
    const answer = s.source.current(regions, now);
    this.current.set(key, { tick, answer });
    return answer;
  }

  forecast(s: BudgetSource, from: number, to: number, tick: number): Promise<SourceResult<IntensityPoint[]>> {
    if (!s.sharedKey) return s.source.forecast(s.region, from, to);
    const key = `${s.sharedKey} ${s.region} ${to - from}`;
    const hit = this.forecasts.get(key);
    if (hit && hit.tick === tick) return hit.answer;
    const answer = s.source.forecast(s.region, from, to);
    this.forecasts.set(key, { tick, answer });
    return answer;
  }
}
