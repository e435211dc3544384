import {
  type Bucket,
  type EffectiveIntensity,
  addToBuckets,
  effectiveIntensity,
  gramsOf,
  intensitySteps,
  JOULES_PER_KWH,
  project,
} from "../../carbon/accounting.ts";
import type { IntensityPoint, IntensityReading, SourceResult } from "../../carbon/intensity.ts";
import { periodWindow } from "../../carbon/window.ts";
import { type CarbonBudget, CarbonBudgetKind, type CarbonBudgetStatus } from "../../crds/carbonbudget.ts";
import { parseDuration } from "../../crds/duration.ts";
import { type EdgeNode, EdgeNodeKind } from "../../crds/edgenode.ts";
import type { Cache } from "../../runtime/cache.ts";
import { type ReconcileContext, type ReconcileResult, defineController } from "../../runtime/controller.ts";
import {
  ConfigMapKind,
  DeploymentKind,
  HorizontalPodAutoscalerKind,
  PodKind,
  SecretKind,
  StatefulSetKind,
} from "../../runtime/kinds.ts";
import { type KubeObject, objectKey } from "../../runtime/objects.ts";
import { findCondition } from "../../runtime/conditions.ts";
import { metaTime } from "../../runtime/time.ts";
import { endpointProblem } from "../shared/endpoints.ts";
import { budgetPods, energyJoules } from "./energy.ts";
import { gridSignals } from "./grid-signals.ts";
import { budgetWorkloads, enforceBounds, releaseAll, wantedBounds } from "./holds.ts";
import { type BudgetSource, SourceAnswers, budgetSource } from "./intensity.ts";
import { carbonMetrics, forgetBudget } from "./metrics.ts";

const FINALIZER = "nextgen.itechsmart.io/carbon-budget";
/** The shortest interval accounted: Prometheus needs a few samples in a range to tell its increase. */
const MIN_ACCOUNTED_MS = 5_000;
/** How far ahead a forecast is read for deferrable jobs: the longest window a job is likely to give. */
const FORECAST_HORIZON_MS = 48 * 3_600_000;
/**
 * How soon a refresh that failed (Ready=False) or read no fresh intensity (IntensityDataStale=True) is tried again,
 * if the refresh interval is longer: a token, URL or ConfigMap put right takes effect within it, not a whole
 * interval later. Answers are still shared per interval, so a source that keeps failing is not asked more often.
 */
const RETRY_MS = 30_000;
/** Grams and kWh are kept to a milligram / a milliwatt-hour: finer digits are noise that would only cause writes. */
const round = (x: number, digits = 3) => Number(x.toFixed(digits));

const answers = new SourceAnswers();

const budgetsIn = (cache: Cache, namespace?: string) => cache.list<CarbonBudget>(CarbonBudgetKind, { namespace });

/**
 * Accounts a namespace's emissions against a budget and holds work to it. At each refresh (aligned to the clock, so
 * that budgets reading one source share its answer) it reads the grid's intensity, accounts the energy the pods
 * drew since the last accounting at the intensity of each moment, and projects the window's end. In Enforce mode it
 * caps workloads while the grid is dirty and suspends them once the budget is spent, giving back exactly what it
 * took; it publishes the forecast and sites' intensities for QuantumJob deferral and placement. Between refreshes
 * it writes nothing.
 */
export const carbonBudgetController = defineController<CarbonBudget>({
  name: "carbonbudget",
  for: CarbonBudgetKind,
  watches: [
    // Pods are read at each refresh (counts, estimates): their changes alone call for nothing.
    { kind: PodKind, map: () => [] },
    // Sites' regions are read at each refresh too.
    { kind: EdgeNodeKind, map: () => [] },
    {
      // A held workload changed (someone scaled it): the bound is checked again.
      kind: DeploymentKind,
      map: (obj, cache) => holdersOf(cache, obj, "Deployment"),
    },
    { kind: StatefulSetKind, map: (obj, cache) => holdersOf(cache, obj, "StatefulSet") },
    {
      // An HPA appeared for, or changed on, a held workload: the cap moves onto it (or is checked again).
      kind: HorizontalPodAutoscalerKind,
      map: (obj, cache) => {
        const ref = (obj as KubeObject & { spec: { scaleTargetRef: { kind: string; name: string } } }).spec
          .scaleTargetRef;
        return holdersOf(cache, { metadata: { name: ref.name, namespace: obj.metadata.namespace } }, ref.kind);
      },
    },
    {
      kind: SecretKind,
      map: (obj, cache) =>
        budgetsIn(cache, obj.metadata.namespace)
          .filter((b) => b.spec.intensity.electricityMaps?.tokenSecretRef.name === obj.metadata.name)
          .map(objectKey),
    },
    {
      kind: ConfigMapKind,
      map: (obj, cache) =>
        budgetsIn(cache)
          .filter(
            (b) =>
              b.spec.intensity.configMap?.name === obj.metadata.name &&
              (b.spec.intensity.configMap.namespace ?? "kube-system") === obj.metadata.namespace,
          )
          .map(objectKey),
    },
  ],
  rbac: [
    {
      apiGroups: ["apps"],
      resources: ["deployments", "statefulsets", "deployments/scale", "statefulsets/scale"],
      verbs: ["patch"],
    },
    // Caps on workloads an HPA drives go on the HPA.
    { apiGroups: ["autoscaling"], resources: ["horizontalpodautoscalers"], verbs: ["patch"] },
    // ... and on a KEDA ScaledObject where KEDA owns that HPA (read directly: KEDA may not be installed).
    { apiGroups: ["keda.sh"], resources: ["scaledobjects"], verbs: ["get", "patch"] },
  ],
  maxConcurrentReconciles: 4,

  metrics: carbonMetrics,
  async reconcile(ctx, budget) {
    if (budget.metadata.deletionTimestamp) return finalize(ctx, budget);
    const status = ctx.status(budget);
    status.set({ observedGeneration: budget.metadata.generation });
    const now = ctx.now.getTime();

    const window = windowOf(budget, now);
    if ("reason" in window) return void status.condition("Ready", "False", window.reason, window.message);
    const refreshMs = parseDuration(budget.spec.intensity.refreshInterval ?? "5m");
    // Budgets that read one source in the same slot of the clock share its answer.
    const tick = Math.floor(now / refreshMs) * refreshMs;
    const accountedUntil = budget.status?.accountedUntil ? Date.parse(budget.status.accountedUntil) : undefined;
    const nextRefresh = (accountedUntil ?? now) + retryInterval(budget.status, refreshMs);
    const specChanged = budget.status?.observedGeneration !== budget.metadata.generation;
    // After a restart the grid signals are refilled at once: deferred jobs wait on them.
    const gridMissing = publishesGrid(budget) && !gridSignals.has(ctx.key);
    const due = accountedUntil === undefined || now >= nextRefresh || specChanged || gridMissing;

    // A refresh that fails leaves the totals as they were (Ready=False says why); the holds follow what is known.
    const refreshed = due ? await refresh(ctx, budget, status.status, window, tick) : true;
    const s = status.status;
    const exhausted = (s.consumedGrams ?? 0) >= budget.spec.budgetGrams;
    status.condition(
      "BudgetExceeded",
      exhausted ? "True" : "False",
      exhausted ? "BudgetSpent" : "WithinBudget",
      exhausted
        ? `${round(s.consumedGrams ?? 0, 1)} g of ${budget.spec.budgetGrams} g spent in the window.` +
            (budget.spec.mode === "Advisory" ? " Advisory: nothing is held back." : "")
        : `${round(s.remainingGrams ?? budget.spec.budgetGrams, 1)} g left in the window.`,
    );

    const workloads = budgetWorkloads(ctx, budget);
    const bounds = wantedBounds(budget, workloads, s.intensity?.gramsPerKWh, exhausted);
    // The finalizer gives back held counts and withdraws the grid signals jobs would otherwise go on using.
    if (bounds.size || publishesGrid(budget)) await ctx.addFinalizer(budget, FINALIZER);
    const held = await enforceBounds(ctx, budget, workloads, bounds);
    status.set({ held: held.length ? held : undefined });
    publishMetrics(ctx, budget, s);
    if (!refreshed) return { requeueAfterMs: Math.min(refreshMs, RETRY_MS) };
    const accounted = s.accountedUntil ? Date.parse(s.accountedUntil) : now;
    return { requeueAfterMs: Math.max(1_000, accounted + retryInterval(s, refreshMs) - now) };
  },
});

/** The time from one refresh to the next: the refresh interval, or RETRY_MS while the last one fell short. */
function retryInterval(s: CarbonBudgetStatus | undefined, refreshMs: number): number {
  const failing =
    findCondition(s?.conditions, "Ready")?.status === "False" ||
    findCondition(s?.conditions, "IntensityDataStale")?.status === "True";
  return failing ? Math.min(refreshMs, RETRY_MS) : refreshMs;
}

/** Budgets holding (or to hold) this workload: its own namespace's with a record or a cap naming it. */
function holdersOf(cache: Cache, obj: Pick<KubeObject, "metadata">, kind: string): string[] {
  const target = `${kind}/${obj.metadata.name}`;
  return budgetsIn(cache, obj.metadata.namespace)
    .filter(
      (b) =>
        b.spec.mode === "Enforce" &&
        (b.status?.held?.some((h) => h.target === target) ||
          b.spec.actions?.capReplicas?.some((c) => `${c.targetRef.kind}/${c.targetRef.name}` === target) ||
          b.spec.actions?.onExhausted === "Suspend"),
    )
    .map(objectKey);
}

function windowOf(budget: CarbonBudget, now: number) {
  const { type, timeZone, duration } = budget.spec.period;
  try {
    return periodWindow({ type, timeZone, durationMs: duration ? parseDuration(duration) : undefined }, now);
  } catch (e) {
    return { reason: "InvalidPeriod", message: `${(e as Error).message}. Fix spec.period.` };
  }
}

/** The URLs the budget has the operator send requests to, by field. */
function budgetEndpoints(budget: CarbonBudget): Array<{ field: string; url: string }> {
  const { energy, intensity } = budget.spec;
  return [
    ...(energy.kepler ? [{ field: "spec.energy.kepler.prometheus.url", url: energy.kepler.prometheus.url }] : []),
    ...(intensity.carbonAwareSDK
      ? [{ field: "spec.intensity.carbonAwareSDK.url", url: intensity.carbonAwareSDK.url }]
      : []),
    ...(intensity.electricityMaps
      ? [{ field: "spec.intensity.electricityMaps.url", url: intensity.electricityMaps.url }]
      : []),
  ];
}

/**
 * Reads the intensity, accounts [accountedUntil, now) and projects; answers false when accounting could not be done
 * (the source is misconfigured or the energy unreadable), with Ready=False saying why and nothing advanced, so the
 * next attempt accounts the same interval: nothing is lost, nothing counted twice.
 */
async function refresh(
  ctx: ReconcileContext,
  budget: CarbonBudget,
  s: CarbonBudgetStatus & { conditions?: unknown },
  window: { start: number; end: number },
  tick: number,
): Promise<boolean> {
  const status = ctx.status(budget);
  const now = ctx.now.getTime();
  const denied = endpointProblem(budgetEndpoints(budget));
  if (denied) {
    status.condition("Ready", "False", denied.reason, denied.message);
    return false;
  }
  const setup = budgetSource(budget, ctx.cache, now);
  if (!setup.ok) {
    status.condition("Ready", "False", setup.reason, setup.message);
    return false;
  }
  const src = setup.value;
  const { actions, mode } = budget.spec;
  const enforce = mode === "Enforce";
  const siteRegions =
    enforce && actions?.preferGreenSites
      ? [
          ...new Set(
            ctx.cache
              .list<EdgeNode>(EdgeNodeKind)
              .flatMap((e) => e.spec.carbonRegion ?? [])
              .filter((r) => r !== src.region),
          ),
        ]
      : [];
  // The budget's own region is read apart from the sites': a site's unknown region must not blind the accounting.
  const readings = await answers.readings(src, [src.region], tick, now);
  const own = readings.ok ? readings.value.find((r) => r.region === src.region) : undefined;
  const sites: SourceResult<IntensityReading[]> = siteRegions.length
    ? await answers.readings(src, siteRegions, tick, now)
    : { ok: true, value: [] };
  const last = s.intensity && { ...s.intensity, observedAt: Date.parse(s.intensity.observedAt) };
  const intensity = effectiveIntensity({
    source: src.type,
    region: src.region,
    reading: own
      ? { ok: true, value: own }
      : { ok: false, message: readings.ok ? `${src.type} has no value for ${src.region}` : readings.message },
    last,
    now,
    staleAfterMs: parseDuration(budget.spec.intensity.staleAfter ?? "1h"),
  });

  const pods = budgetPods(budget, ctx.cache);
  const created = Date.parse(budget.metadata.creationTimestamp as string);
  const accountedUntil = s.accountedUntil ? Date.parse(s.accountedUntil) : created;
  const sameWindow = s.window && Date.parse(s.window.start) === window.start;
  const rolling = budget.spec.period.type === "Rolling";
  const from = Math.max(accountedUntil, window.start, created);
  // Too short an interval holds too few of Prometheus' samples to measure: it is left for the next refresh.
  const to = now - from >= MIN_ACCOUNTED_MS ? now : from;
  let joules = 0;
  let grams = 0;
  if (to > from) {
    const energy = await energyJoules(budget, pods, from, to);
    if (!energy.ok) {
      status.condition("Ready", "False", energy.reason, `Energy could not be read: ${energy.message}`);
      return false;
    }
    joules = energy.joules;
    // The energy is read once for the whole interval (counters over short spans are too coarse) and taken as drawn
    // evenly over it; each part is charged at the intensity in force then.
    const pue = Number(budget.spec.energy.pue ?? "1");
    for (const step of intensitySteps(from, to, intensity, last))
      grams += gramsOf((joules * (step.end - step.start)) / (to - from), step.gramsPerKWh, pue);
  }
  const kWh = joules / JOULES_PER_KWH;
  let consumedGrams: number;
  let energyKWh: number;
  let buckets: Bucket[] | undefined;
  if (rolling) {
    buckets = addToBuckets(
      (s.buckets ?? []).map((b) => ({ ...b, start: Date.parse(b.start) })),
      { start: from, end: to, grams, energyKWh: kWh },
      window.start,
    );
    consumedGrams = buckets.reduce((sum, b) => sum + b.grams, 0);
    energyKWh = buckets.reduce((sum, b) => sum + b.energyKWh, 0);
  } else {
    consumedGrams = (sameWindow ? (s.consumedGrams ?? 0) : 0) + grams;
    energyKWh = (sameWindow ? (s.energyKWh ?? 0) : 0) + kWh;
  }
  const previousExhaustion = sameWindow && s.exhaustionTime ? Date.parse(s.exhaustionTime) : undefined;
  const projection = project({
    consumedGrams,
    budgetGrams: budget.spec.budgetGrams,
    // Nothing accounted this time (too short an interval): the rate the last projection was made at.
    gramsPerMs:
      to > from
        ? grams / (to - from)
        : sameWindow && s.projectedGrams !== undefined && window.end > from
          ? (s.projectedGrams - (s.consumedGrams ?? 0)) / (window.end - from)
          : 0,
    now,
    windowEnd: window.end,
    exhaustedAt: previousExhaustion !== undefined && previousExhaustion <= now ? previousExhaustion : undefined,
  });
  status.set({
    window: { start: metaTime(new Date(window.start)), end: metaTime(new Date(window.end)) },
    accountedUntil: new Date(to).toISOString(),
    consumedGrams: round(consumedGrams),
    energyKWh: round(energyKWh, 6),
    projectedGrams: round(projection.projectedGrams),
    remainingGrams: round(projection.remainingGrams),
    exhaustionTime: projection.exhaustionTime === undefined ? undefined : metaTime(new Date(projection.exhaustionTime)),
    intensity: {
      gramsPerKWh: intensity.gramsPerKWh,
      source: intensity.source,
      region: intensity.region,
      observedAt: new Date(intensity.observedAt).toISOString(),
    },
    buckets: buckets?.map((b) => ({
      start: metaTime(new Date(b.start)),
      grams: round(b.grams),
      energyKWh: round(b.energyKWh, 6),
    })),
    pods: pods.length,
  });
  reportStaleness(ctx, budget, intensity);
  status.condition(
    "Ready",
    "True",
    "Accounting",
    `Accounted ${pods.length} pods up to ${new Date(to).toISOString()} at ${intensity.gramsPerKWh} g/kWh (${intensity.source}).`,
  );
  await publishGrid(budget, src, sites, intensity, tick);
  return true;
}

function reportStaleness(ctx: ReconcileContext, budget: CarbonBudget, intensity: EffectiveIntensity): void {
  const status = ctx.status(budget);
  if (intensity.stale) status.condition("IntensityDataStale", "True", intensity.stale.reason, intensity.stale.message);
  else
    status.condition(
      "IntensityDataStale",
      "False",
      "Fresh",
      `${intensity.source} reports ${intensity.gramsPerKWh} g/kWh for ${intensity.region}.`,
    );
}

/** The forecast and sites' intensities for QuantumJobs of the namespace (Enforce mode only). */
async function publishGrid(
  budget: CarbonBudget,
  src: BudgetSource,
  sites: SourceResult<IntensityReading[]>,
  intensity: EffectiveIntensity,
  tick: number,
): Promise<void> {
  const key = objectKey(budget);
  if (!publishesGrid(budget)) {
    gridSignals.delete(key);
    return;
  }
  const { actions } = budget.spec;
  // Deferring on guesses would hold work back for nothing: a stale source publishes no forecast.
  let forecast: IntensityPoint[] | undefined;
  if (actions.deferQuantumJobs && !intensity.stale) {
    const answer = await answers.forecast(src, tick, tick + FORECAST_HORIZON_MS, tick);
    forecast = answer.ok && answer.value.length ? answer.value : undefined;
  }
  const regions = new Map<string, number>([[intensity.region, intensity.gramsPerKWh]]);
  if (sites.ok) for (const r of sites.value) regions.set(r.region, r.gramsPerKWh);
  gridSignals.set({
    budget: key,
    deferQuantumJobs: !!actions.deferQuantumJobs,
    preferGreenSites: !!actions.preferGreenSites,
    region: intensity.region,
    forecast,
    regions,
  });
}

function publishesGrid(budget: CarbonBudget): boolean {
  const { actions, mode } = budget.spec;
  return mode === "Enforce" && (!!actions?.deferQuantumJobs || !!actions?.preferGreenSites);
}

function publishMetrics(
  ctx: ReconcileContext,
  budget: CarbonBudget,
  s: CarbonBudgetStatus & { conditions?: { type: string; status: string }[] },
): void {
  const m = carbonMetrics(ctx.registry);
  const labels = { namespace: budget.metadata.namespace as string, budget: budget.metadata.name };
  m.budget.set(labels, budget.spec.budgetGrams);
  if (s.consumedGrams !== undefined) m.consumed.set(labels, s.consumedGrams);
  if (s.projectedGrams !== undefined) m.projected.set(labels, s.projectedGrams);
  if (s.energyKWh !== undefined) m.energy.set(labels, s.energyKWh);
  m.stale.set(labels, s.conditions?.some((c) => c.type === "IntensityDataStale" && c.status === "True") ? 1 : 0);
  if (s.intensity) m.intensity.set({ region: s.intensity.region, source: s.intensity.source }, s.intensity.gramsPerKWh);
}

/** Deleting a budget gives back every count it holds before the object goes. */
async function finalize(ctx: ReconcileContext, budget: CarbonBudget): Promise<ReconcileResult | void> {
  await releaseAll(ctx, budget);
  gridSignals.delete(objectKey(budget));
  forgetBudget(ctx.registry, budget.metadata.namespace as string, budget.metadata.name);
  await ctx.removeFinalizer(budget, FINALIZER);
}
