import { CarbonBudgetKind } from "../../crds/carbonbudget.ts";
import { type QuantumBackend, QuantumBackendKind } from "../../crds/quantumbackend.ts";
import { type QuantumJob, QuantumJobKind, type QuantumJobStatus } from "../../crds/quantumjob.ts";
import { circuitHash, languageFeatures } from "../../quantum/circuit.ts";
import { type PlacementDecision, type PlacementRequest, place } from "../../quantum/placement.ts";
import { ProviderError } from "../../quantum/providers/provider.ts";
import type { Noise } from "../../quantum/simulation.ts";
import { CircuitError, noiseFromCalibration } from "../../quantum/simulator.ts";
import { type ReconcileContext, type ReconcileResult, defineController } from "../../runtime/controller.ts";
import { findCondition, jsonEqual } from "../../runtime/conditions.ts";
import { ConfigMapKind, JobKind } from "../../runtime/kinds.ts";
import { type KubeObject, objectKey } from "../../runtime/objects.ts";
import { metaTime } from "../../runtime/time.ts";
import { admit, release } from "./admission.ts";
import { batchJobExecutor } from "./batch-job.ts";
import { candidates } from "./candidates.ts";
import { jobTiming } from "./deferral.ts";
import { countCircuit, embeddedExecutor, startEmbedded } from "./embedded.ts";
import type { Executor, Observation, Run } from "./execution.ts";
import {
  FINISHED,
  HOLDS_SLOT,
  activeJobsOn,
  addQuantumJobIndexes,
  jobsReferring,
  queueHead,
  waitingJobs,
} from "./indexes.ts";
import { NoAccessError, remoteExecutor } from "./remote.ts";
import { quantumJobMetrics } from "./metrics.ts";
import { recordResult } from "./result.ts";

/** On jobs whose run must be cancelled where it runs (a provider's job) before the QuantumJob goes. */
const FINALIZER = "nextgen.itechsmart.io/cancel-run";
/**
 * Queued jobs looked at again when a slot frees, beyond the slots themselves: the first may have moved elsewhere
 * and leave its slot to the next.
 */
const QUEUE_LOOKAHEAD = 10;
const RETRY_BASE_MS = 5_000;
const RETRY_MAX_MS = 300_000;

/**
 * Attempt numbers of runs this process started, by job key, until the cache shows them in status. After
 * STARTING_GRACE_MS without it, the status write of the start may have been lost (the API server went away in
 * between): the start is made again, which every executor answers with the same run for the same attempt, and its
 * status write is guarded by the version it read, so a cache that is only behind gets a conflict, not a second start.
 */
const starting = new Map<string, { attempt: number; at: number }>();
const STARTING_GRACE_MS = 10_000;

type ConfigMap = KubeObject & { data?: Record<string, string> };
type Ended = Exclude<Observation, { state: "Scheduled" | "Running" }>;

const executors: Record<QuantumBackend["spec"]["execution"]["mode"], Executor> = {
  Embedded: embeddedExecutor,
  Job: batchJobExecutor,
  Remote: remoteExecutor,
};

/**
 * Runs a QuantumJob: reads and checks its circuit, places it on the backend that suits it best (saying why),
 * waits for a slot in the backend's queue, runs it there and records what it measured; retries with backoff,
 * cancels the run when the job is deleted, and resumes (never repeats) a run after an operator restart.
 *
 * A job costs few writes: its status when it queues, starts and ends, and one event at the end. Queue positions
 * live in the backend's status, and only Remote runs carry a finalizer (see Executor.recordBeforeStart).
 */
export const quantumJobController = defineController<QuantumJob>({
  name: "quantumjob",
  for: QuantumJobKind,
  owns: [JobKind],
  watches: [
    {
      // What placement saw changed: waiting jobs look again, and jobs queued on a backend that stopped serving
      // move. Load counts alone (status.running/queued) change no job's feasibility.
      kind: QuantumBackendKind,
      map: (obj, cache, old) => {
        const b = obj as QuantumBackend;
        const before = old as QuantumBackend | undefined;
        if (
          before &&
          before.metadata.generation === b.metadata.generation &&
          before.status?.phase === b.status?.phase &&
          jsonEqual(before.status?.calibration, b.status?.calibration) &&
          !b.metadata.deletionTimestamp
        )
          return [];
        // A deleted backend's running jobs end their attempt; its queued ones move.
        const jobs = [...waitingJobs(cache), ...activeJobsOn(cache, b.metadata.name)];
        return [...new Set(jobs.map(objectKey))];
      },
    },
    {
      // A budget's refresh (a new forecast) or its going: jobs waiting on it look again.
      kind: CarbonBudgetKind,
      map: (budget, cache) =>
        cache
          .list<QuantumJob>(QuantumJobKind, { namespace: budget.metadata.namespace })
          .filter((j) => j.spec.schedule?.deferrable && (j.status?.phase ?? "Pending") === "Pending")
          .map(objectKey),
    },
    {
      kind: ConfigMapKind,
      map: (cm, cache) =>
        jobsReferring(cache, `configmap/${cm.metadata.namespace}/${cm.metadata.name}`)
          .filter((j) => !j.status?.phase || j.status.phase === "Pending")
          .map(objectKey),
    },
    {
      // A slot frees when a job leaves Scheduled/Running, or is left free when the head of the queue goes
      // elsewhere: the head of that backend's queue looks again.
      kind: QuantumJobKind,
      map: (obj, cache, old, event) => {
        const job = obj as QuantumJob;
        // A delete comes as the last state: the job is gone, and so is its slot.
        const gone = event === "delete";
        const before = gone ? job : (old as QuantumJob | undefined);
        const phase = gone ? undefined : job.status?.phase;
        const held = HOLDS_SLOT.includes(before?.status?.phase ?? "Pending");
        const freed = held && !HOLDS_SLOT.includes(phase ?? "Pending");
        const left = before?.status?.phase === "Queued" && phase !== "Queued";
        const backend = freed || left ? before?.status?.placement?.backend : undefined;
        if (!backend) return [];
        const max = cache.get<QuantumBackend>(QuantumBackendKind, undefined, backend)?.spec.capacity.maxConcurrentJobs;
        return queueHead(cache, backend, (max ?? 1) + QUEUE_LOOKAHEAD)
          .map(objectKey)
          .filter((k) => k !== objectKey(job));
      },
    },
  ],
  rbac: [
    { apiGroups: ["batch"], resources: ["jobs"], verbs: ["create", "patch", "delete"] },
    { apiGroups: [""], resources: ["pods"], verbs: ["list"] },
    { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch", "create", "patch"] },
    { apiGroups: [QuantumJobKind.group], resources: [QuantumJobKind.plural], verbs: ["delete"] },
  ],
  maxConcurrentReconciles: 4,
  setup(cache, { events, registry }) {
    addQuantumJobIndexes(cache);
    // Embedded and Job runs carry no finalizer: a deleted job's run in this process's threads stops here, and its
    // batch Job is garbage-collected with it.
    cache.informer<QuantumJob>(QuantumJobKind).onEvent((event, job) => {
      if (event !== "delete") return;
      const key = objectKey(job);
      starting.delete(key);
      release(key);
      if (embeddedExecutor.forget?.(key)) {
        events.normal(job, "Cancelled", `The run on ${job.status?.placement?.backend} stopped: the job was deleted.`);
        quantumJobMetrics(registry).finished.inc({ phase: "Cancelled", reason: "Deleted" });
      }
    });
  },
  start(enqueue) {
    const stop = startEmbedded(enqueue);
    return () => void stop().catch(() => undefined); // threads are going away with the process anyway
  },

  metrics: quantumJobMetrics,
  // Counted from the jobs' history, not where the reconcile writes it: a start or an end is counted once even when
  // a partition lost the answer to its write, or a cache that had not caught up made it again.
  countTransition(job, old, { cache, registry }) {
    const metrics = quantumJobMetrics(registry);
    const phase = job.status?.phase;
    if (phase && FINISHED.includes(phase) && !FINISHED.includes(old.status?.phase ?? "Pending")) {
      const reason = phase === "Failed" ? findCondition(job.status?.conditions, "Failed")?.reason : phase;
      metrics.finished.inc({ phase, reason: reason ?? phase });
    }
    if (!old.status?.attempts && job.status?.attempts && job.status.startTime) {
      const backend = cache.get<QuantumBackend>(QuantumBackendKind, undefined, job.status.placement?.backend ?? "");
      const waited = Date.parse(job.status.startTime) - Date.parse(job.metadata.creationTimestamp as string);
      metrics.queueWait.observe({ backend_type: backend?.spec.type ?? "Unknown" }, Math.max(0, waited) / 1000);
    }
  },
  async reconcile(ctx, job) {
    const phase = job.status?.phase;
    if (job.metadata.deletionTimestamp) return finalize(ctx, job);
    if (phase && FINISHED.includes(phase)) {
      release(ctx.key);
      embeddedExecutor.forget?.(ctx.key);
      return expire(ctx, job);
    }
    // A run started here whose status has not come back to the cache yet: this reconcile sees the job as it was
    // before the start, and must not start it again (a second remote submission, a second status write).
    const started = starting.get(ctx.key);
    if (started && (job.status?.attempts ?? 0) < started.attempt && ctx.now.getTime() - started.at < STARTING_GRACE_MS)
      return { requeueAfterMs: 500 };
    starting.delete(ctx.key);
    if (HOLDS_SLOT.includes(job.status?.phase ?? "Pending")) return observeRun(ctx, job);
    return schedule(ctx, job);
  },
});

function backendNamed(ctx: ReconcileContext, name: string | undefined): QuantumBackend | undefined {
  return name ? ctx.cache.get<QuantumBackend>(QuantumBackendKind, undefined, name) : undefined;
}

/** Deleting a job with the finalizer cancels its run (a remote job) before the object goes. */
async function finalize(ctx: ReconcileContext, job: QuantumJob): Promise<void> {
  const phase = job.status?.phase;
  if (phase && HOLDS_SLOT.includes(phase)) {
    const backend = backendNamed(ctx, job.status?.placement?.backend);
    const executor = backend && executors[backend.spec.execution.mode];
    try {
      await executor?.cancel(ctx, job, backend);
      ctx.events.normal(job, "Cancelled", `Cancelled the run on ${backend?.metadata.name ?? "its backend"}.`);
    } catch (e) {
      // Retried with backoff while the provider may still answer; a run nobody can reach any more (its backend's
      // credentials are gone) must not keep the job from being deleted.
      if (!(e instanceof NoAccessError)) throw e;
      ctx.events.warning(job, "CancelFailed", `Could not cancel the run: ${(e as Error).message}`);
    }
  }
  starting.delete(ctx.key);
  release(ctx.key);
  embeddedExecutor.forget?.(ctx.key);
  await ctx.removeFinalizer(job, FINALIZER);
}

/** ttlSecondsAfterFinished: a finished job deletes itself when its time is up. */
async function expire(ctx: ReconcileContext, job: QuantumJob): Promise<ReconcileResult | void> {
  const ttl = job.spec.ttlSecondsAfterFinished;
  const done = job.status?.completionTime;
  if (ttl === undefined || !done) return;
  const leftMs = Date.parse(done) + ttl * 1000 - ctx.now.getTime();
  if (leftMs > 0) return { requeueAfterMs: leftMs };
  await ctx.client.delete(QuantumJobKind, job.metadata.namespace, job.metadata.name, {
    propagationPolicy: "Background",
    uid: job.metadata.uid,
  });
}

/** Not started (or between attempts): circuit, placement, a slot, then the run starts. */
async function schedule(ctx: ReconcileContext, job: QuantumJob): Promise<ReconcileResult | void> {
  const status = ctx.status(job);
  const startTime = job.status?.startTime ?? metaTime(ctx.now);
  const left = deadlineMs(job, startTime, ctx.now);
  if (left !== undefined && left <= 0) return void fail(ctx, job, "DeadlineExceeded", deadlineMessage(job));
  const untilRetry = msUntilRetry(job, ctx.now);
  if (untilRetry > 0) return { requeueAfterMs: Math.min(untilRetry, left ?? Infinity) };

  const circuit = loadCircuit(ctx, job);
  if ("reason" in circuit) return void waitFor(ctx, job, circuit.reason, circuit.message);
  const facts = await circuitFacts(job, circuit.source);
  if (facts instanceof CircuitError) return void fail(ctx, job, "InvalidCircuit", facts.message);
  status.set(facts);

  const noise = noiseFor(ctx, job);
  if (noise && "reason" in noise) return void waitFor(ctx, job, noise.reason, noise.message);

  // Retries are not deferred again: the job's window was for its start.
  if (!job.status?.attempts && (job.status?.phase ?? "Pending") === "Pending") {
    const timing = jobTiming(job, ctx.now.getTime(), ctx.cache);
    const startReason = timing.reason === "WaitingForForecast" ? undefined : timing.reason;
    status.set({
      schedule: startReason
        ? {
            deferredUntil: timing.wait ? metaTime(new Date(timing.until)) : undefined,
            startReason,
            forecastGramsPerKWh: timing.gramsPerKWh,
          }
        : job.status?.schedule,
    });
    if (timing.wait) {
      status.set({ phase: "Pending" });
      status.condition("Scheduled", "False", timing.reason, timing.message);
      return { requeueAfterMs: timing.until - ctx.now.getTime() };
    }
  }

  const request: PlacementRequest = {
    qubits: facts.qubits,
    shots: job.spec.shots,
    gates: facts.gates,
    features: facts.languageFeatures,
    strategy: job.spec.placement.strategy,
    pinned: job.spec.backend.name,
    // A device's noise is simulated: only a simulator can take such a job.
    types: noise ? ["Simulator"] : job.spec.backend.types,
    maxErrorRate: job.spec.backend.maxErrorRate,
    minQuantumVolume: job.spec.backend.minQuantumVolume,
    fallbackToSimulator: job.spec.backend.fallbackToSimulator,
  };
  const all = candidates(ctx.cache, job);
  // A queued job keeps its place (and its placement's explanation) while its backend can still take it.
  const queuedOn = job.status?.phase === "Queued" ? job.status.placement?.backend : undefined;
  const stay =
    queuedOn && place({ ...request, pinned: queuedOn, types: undefined, fallbackToSimulator: false }, all).chosen;
  const decision: PlacementDecision = stay
    ? {
        chosen: {
          ...stay,
          score: job.status?.placement?.score ?? stay.score,
          fallbackUsed: !!job.status?.placement?.fallbackUsed,
        },
        reasons: job.status?.placement?.reasons ?? [],
      }
    : timedPlace(ctx, request, all);
  const chosen = decision.chosen;
  if (!chosen) {
    status.set({ phase: "Pending", placement: { reasons: decision.reasons, fallbackUsed: false } });
    // Features the only obstacle: placement would choose a backend if its runner took them.
    const onlyFeatures = facts.languageFeatures.length > 0 && !!place({ ...request, features: [] }, all).chosen;
    if (onlyFeatures)
      status.condition(
        "Scheduled",
        "False",
        "UnsupportedLanguageFeatures",
        `The backends that could run it lack OpenQASM features it uses (${facts.languageFeatures.join(", ")}): ` +
          `rewrite it without them or add a backend whose runner has them. ${decision.reasons.join("; ")}`,
      );
    else
      status.condition("Scheduled", "False", "Unschedulable", `No backend can run it. ${decision.reasons.join("; ")}`);
    return;
  }
  const backend = backendNamed(ctx, chosen.name) as QuantumBackend;
  const placement = {
    backend: chosen.name,
    site: backend.spec.siteRef?.name,
    score: chosen.score,
    reasons: decision.reasons,
    fallbackUsed: chosen.fallbackUsed,
  };
  if (!admit(ctx.cache, chosen.name, backend.spec.capacity.maxConcurrentJobs, job)) {
    status.set({ phase: "Queued", placement });
    status.condition(
      "Scheduled",
      "False",
      "Queued",
      `Waiting for one of ${chosen.name}'s ${backend.spec.capacity.maxConcurrentJobs} slots; ` +
        `QuantumBackend ${chosen.name}'s status.queueHead shows the order.`,
    );
    return;
  }

  const attempt = (job.status?.attempts ?? 0) + 1;
  const executor = executors[backend.spec.execution.mode];
  const started = { placement, attempts: attempt, startTime, retryTime: undefined, remoteJobId: undefined };
  starting.set(ctx.key, { attempt, at: ctx.now.getTime() });
  // A start decided on a stale cache (cut off from its watch) must not write over the newer status it did not see.
  ctx.guardStatus();
  if (executor.recordBeforeStart) {
    await ctx.addFinalizer(job, FINALIZER);
    status.set({ ...started, phase: "Scheduled", jobRef: undefined });
    status.condition("Scheduled", "True", "Placed", placedMessage(placement));
    status.condition("Complete", "False", "Starting", `Attempt ${attempt} is being submitted to ${chosen.name}.`);
    return { requeueAfterMs: 0 }; // our own status write enqueues nothing: the start comes next
  }
  const run: Run = { job, backend, attempt, noise, site: placement.site, deadlineMs: left };
  let reference;
  try {
    reference = await executor.start(ctx, run, circuit.source);
  } catch (e) {
    starting.delete(ctx.key);
    release(ctx.key);
    status.set({ phase: "Pending", placement });
    const message = e instanceof Error ? e.message : String(e);
    status.condition("Scheduled", "False", "StartFailed", `Could not start on ${chosen.name}: ${message}`);
    throw e;
  }
  status.set({ ...started, phase: reference.running ? "Running" : "Scheduled", jobRef: reference.jobRef });
  status.condition("Scheduled", "True", "Placed", placedMessage(placement));
  status.condition("Complete", "False", "Running", `Attempt ${attempt} is running on ${chosen.name}.`);
}

/** How long until status.retryTime (a backoff after a failed attempt, or a provider's wait): 0 or less when due. */
function msUntilRetry(job: QuantumJob, now: Date): number {
  return job.status?.retryTime ? Date.parse(job.status.retryTime) - now.getTime() : 0;
}

function placedMessage(placement: NonNullable<QuantumJobStatus["placement"]>): string {
  const fallback = placement.fallbackUsed ? " (fallback to a simulator)" : "";
  return `Placed on ${placement.backend}${fallback}, score ${placement.score}.`;
}

/**
 * A start recorded before it happens (Executor.recordBeforeStart): submitted on the backend and under the attempt
 * recorded, whatever placement would choose now, so that a restart finds the same remote job by its tag.
 */
async function startRecorded(
  ctx: ReconcileContext,
  job: QuantumJob,
  backend: QuantumBackend,
  executor: Executor,
): Promise<ReconcileResult | void> {
  const status = ctx.status(job);
  const attempt = job.status?.attempts ?? 1;
  const untilRetry = msUntilRetry(job, ctx.now);
  if (untilRetry > 0) return { requeueAfterMs: untilRetry };
  const unavailable = (reason: string, message: string) =>
    finishAttempt(ctx, job, { state: "Failed", reason, message, retryable: true });
  const circuit = loadCircuit(ctx, job);
  if ("reason" in circuit) return unavailable(circuit.reason, circuit.message);
  const noise = noiseFor(ctx, job);
  if (noise && "reason" in noise) return unavailable(noise.reason, noise.message);
  const left = deadlineMs(job, job.status?.startTime ?? metaTime(ctx.now), ctx.now);
  const run: Run = { job, backend, attempt, noise, site: backend.spec.siteRef?.name, deadlineMs: left };
  let reference;
  try {
    reference = await executor.start(ctx, run, circuit.source);
  } catch (e) {
    return submitFailed(ctx, job, backend.metadata.name, e);
  }
  status.set({
    phase: reference.running ? "Running" : "Scheduled",
    remoteJobId: reference.remoteJobId,
    jobRef: reference.jobRef,
    retryTime: undefined,
  });
  if (job.status?.placement) status.condition("Scheduled", "True", "Placed", placedMessage(job.status.placement));
  status.condition("Complete", "False", "Running", `Attempt ${attempt} is running on ${backend.metadata.name}.`);
  return { requeueAfterMs: 2_000 };
}

/** A run is in flight: learn how it is doing, and record how it ended. */
async function observeRun(ctx: ReconcileContext, job: QuantumJob): Promise<ReconcileResult | void> {
  const status = ctx.status(job);
  const backend = backendNamed(ctx, job.status?.placement?.backend);
  if (!backend) {
    embeddedExecutor.forget?.(ctx.key); // the run may still be in this process's threads
    return finishAttempt(ctx, job, {
      state: "Failed",
      reason: "BackendDeleted",
      message: `QuantumBackend ${job.status?.placement?.backend} was deleted during the run.`,
      retryable: true,
    });
  }
  const executor = executors[backend.spec.execution.mode];
  if (executor.recordBeforeStart && !job.status?.remoteJobId) return startRecorded(ctx, job, backend, executor);
  const run: Run = { job, backend, attempt: job.status?.attempts ?? 1, site: backend.spec.siteRef?.name };
  // Observed first: a run that finished just before its deadline keeps its result.
  const seen = await executor.observe(ctx, run);
  if (seen.state !== "Scheduled" && seen.state !== "Running") return finishAttempt(ctx, job, seen as Ended);
  const left = deadlineMs(job, job.status?.startTime ?? metaTime(ctx.now), ctx.now);
  if (left !== undefined && left <= 0) {
    // Best effort: the job ends here either way, and a run that cannot be reached cannot be stopped.
    await executor.cancel(ctx, job, backend).catch((e) => ctx.log.warn("cancel failed", { error: String(e) }));
    return finishAttempt(ctx, job, {
      state: "Failed",
      reason: "DeadlineExceeded",
      message: deadlineMessage(job),
      retryable: false,
    });
  }
  // A run never goes back from Running to Scheduled (a Job between its pod ending and its condition, a poll that
  // was rate-limited).
  status.set({ phase: seen.state === "Scheduled" && job.status?.phase === "Running" ? "Running" : seen.state });
  const next = [seen.requeueAfterMs, left].filter((x): x is number => x !== undefined);
  return next.length ? { requeueAfterMs: Math.min(...next) } : undefined;
}

/** An attempt ended: a result, a retry after backoff, or the end of the job. */
async function finishAttempt(ctx: ReconcileContext, job: QuantumJob, outcome: Ended): Promise<ReconcileResult | void> {
  const status = ctx.status(job);
  release(ctx.key);
  const end = {
    completionTime: metaTime(ctx.now),
    durationSeconds: job.status?.startTime
      ? Math.round((ctx.now.getTime() - Date.parse(job.status.startTime)) / 10) / 100
      : undefined,
  };
  if (outcome.state === "Succeeded") {
    status.set({ phase: "Succeeded", ...end, result: await recordResult(ctx, job, outcome), lastError: undefined });
    status.condition(
      "Complete",
      "True",
      "Succeeded",
      `Measured ${outcome.shots} shots on ${job.status?.placement?.backend}.`,
    );
    status.condition("Failed", "False", "Succeeded", "The job succeeded.");
    ctx.events.normal(job, "Succeeded", `${outcome.shots} shots on ${job.status?.placement?.backend}.`);
    return;
  }
  if (outcome.state === "Cancelled") {
    status.set({ phase: "Cancelled", ...end, lastError: outcome.message });
    status.condition("Complete", "False", "Cancelled", outcome.message);
    ctx.events.warning(job, "Cancelled", outcome.message);
    return;
  }
  const attempts = job.status?.attempts ?? 1;
  if (outcome.retryable && attempts <= job.spec.maxRetries) {
    const backoff = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempts - 1));
    status.set({
      phase: "Pending",
      retryTime: metaTime(new Date(ctx.now.getTime() + backoff)),
      lastError: `${outcome.reason}: ${outcome.message}`,
      remoteJobId: undefined,
      jobRef: undefined,
    });
    status.condition(
      "Scheduled",
      "False",
      "BackoffAfterFailure",
      `Attempt ${attempts} failed (${outcome.reason}); the next starts in ${backoff / 1000} s.`,
    );
    ctx.events.warning(job, "Retrying", `Attempt ${attempts} failed: ${outcome.message}`);
    return { requeueAfterMs: backoff };
  }
  return fail(ctx, job, outcome.reason, outcome.message, end);
}

function fail(
  ctx: ReconcileContext,
  job: QuantumJob,
  reason: string,
  message: string,
  end: { completionTime?: string; durationSeconds?: number } = { completionTime: metaTime(ctx.now) },
): void {
  const status = ctx.status(job);
  status.set({ phase: "Failed", ...end, lastError: `${reason}: ${message}` });
  status.condition("Failed", "True", reason, message);
  status.condition("Complete", "False", reason, message);
  if (job.status?.phase !== "Failed") ctx.events.warning(job, reason, message);
}

/** place(), timed for the placement SLO. */
function timedPlace(ctx: ReconcileContext, request: PlacementRequest, all: ReturnType<typeof candidates>) {
  const stop = quantumJobMetrics(ctx.registry).placement.startTimer();
  try {
    return place(request, all);
  } finally {
    stop();
  }
}

/** Not startable yet for a reason that a change elsewhere (a ConfigMap, a backend) will lift. */
function waitFor(ctx: ReconcileContext, job: QuantumJob, reason: string, message: string): void {
  ctx.status(job).set({ phase: "Pending" }).condition("Scheduled", "False", reason, message);
}

function loadCircuit(ctx: ReconcileContext, job: QuantumJob): { source: string } | { reason: string; message: string } {
  const { openqasm, configMapRef } = job.spec.circuit;
  if (openqasm !== undefined) return { source: openqasm };
  if (!configMapRef) return { reason: "InvalidSpec", message: "spec.circuit needs openqasm or configMapRef." };
  const cm = ctx.cache.get<ConfigMap>(ConfigMapKind, job.metadata.namespace, configMapRef.name);
  const source = cm?.data?.[configMapRef.key];
  if (source === undefined)
    return {
      reason: "CircuitNotFound",
      message: cm
        ? `ConfigMap ${configMapRef.name} has no key ${configMapRef.key}.`
        : `ConfigMap ${configMapRef.name} does not exist.`,
    };
  return { source };
}

function noiseFor(ctx: ReconcileContext, job: QuantumJob): Noise | { reason: string; message: string } | undefined {
  const from = job.spec.noise?.fromBackend;
  if (!from) return undefined;
  const device = backendNamed(ctx, from);
  const calibration = device?.status?.calibration ?? device?.spec.calibration;
  if (!calibration)
    return {
      reason: "NoiseSourceNotFound",
      message: device
        ? `QuantumBackend ${from} has no calibration to simulate.`
        : `QuantumBackend ${from} does not exist.`,
    };
  return noiseFromCalibration(calibration);
}

function deadlineMs(job: QuantumJob, startTime: string, now: Date): number | undefined {
  const limit = job.spec.activeDeadlineSeconds;
  return limit === undefined ? undefined : Date.parse(startTime) + limit * 1000 - now.getTime();
}

/**
 * A recorded start could not be submitted. The provider refusing the circuit ends the job; being told to wait is
 * waited out; anything else (an unreachable provider, refused credentials, a quota) is said in a condition and
 * retried with backoff. The start stays recorded either way: the next try submits the same attempt, with the same
 * tag, to the same backend.
 */
function submitFailed(ctx: ReconcileContext, job: QuantumJob, backend: string, e: unknown): ReconcileResult | void {
  const status = ctx.status(job);
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof ProviderError && e.kind === "Rejected") {
    release(ctx.key);
    return fail(ctx, job, "RejectedByProvider", `${backend} refused the job: ${message}`);
  }
  if (e instanceof ProviderError && e.kind === "RateLimited") {
    // In status, not only in the requeue: an operator restarted meanwhile waits out the rest too.
    const retryAt = new Date(Math.ceil((ctx.now.getTime() + (e.retryAfterMs ?? 30_000)) / 1000) * 1000);
    status.set({ retryTime: metaTime(retryAt) });
    status.condition("Scheduled", "False", "SubmitDeferred", `${backend} asks to wait: ${message}`);
    return { requeueAfterMs: retryAt.getTime() - ctx.now.getTime() };
  }
  status.condition("Scheduled", "False", "StartFailed", `Could not start on ${backend}: ${message}`);
  throw e;
}

type CircuitFacts = Required<Pick<QuantumJobStatus, "qubits" | "gates" | "depth" | "languageFeatures" | "circuitHash">>;

/**
 * What placement needs of the circuit: the compiler's counts, kept in status with the hash of the source they are
 * of (a circuit is compiled once, not on every reconcile), and the language features it uses. A CircuitError when
 * it does not compile.
 */
async function circuitFacts(job: QuantumJob, source: string): Promise<CircuitFacts | CircuitError> {
  const hash = circuitHash(source);
  const { qubits, gates, depth, circuitHash: known } = job.status ?? {};
  const features = languageFeatures(source);
  if (known === hash && qubits !== undefined && gates && depth !== undefined)
    return { qubits, gates, depth, languageFeatures: features, circuitHash: hash };
  try {
    const counts = await countCircuit(source);
    return {
      qubits: counts.qubits,
      gates: counts.gates,
      depth: counts.depth,
      languageFeatures: features,
      circuitHash: hash,
    };
  } catch (e) {
    if (e instanceof CircuitError) return e;
    throw e;
  }
}

function deadlineMessage(job: QuantumJob): string {
  return `The job ran past activeDeadlineSeconds (${job.spec.activeDeadlineSeconds} s).`;
}
