import type { EdgeNode } from "../../crds/edgenode.ts";
import { EdgeNodeKind } from "../../crds/edgenode.ts";
import { parseQuantity } from "../../runtime/quantity.ts";
import { type Calibration, INVALID_SPEC, type QuantumBackend, QuantumBackendKind } from "../../crds/quantumbackend.ts";
import { type QuantumJob, QuantumJobKind } from "../../crds/quantumjob.ts";
import { ProviderError, type RemoteBackendStatus } from "../../quantum/providers/provider.ts";
import type { Cache } from "../../runtime/cache.ts";
import { type ReconcileContext, defineController } from "../../runtime/controller.ts";
import { jsonEqual } from "../../runtime/conditions.ts";
import { SecretKind } from "../../runtime/kinds.ts";
import { addQuantumJobIndexes, backendLoad } from "../quantumjob/indexes.ts";
import { memoryQuantityProblem, qubitCapacity } from "./memory.ts";
import { quantumBackendMetrics } from "./metrics.ts";
import { INCOMPLETE_REMOTE_SPEC, credentialsRef, forgetRemote, remoteAccess } from "./remote.ts";

const SITE_INDEX = "quantumbackend-site";
const SECRET_INDEX = "quantumbackend-secret";
/** Accelerators an EdgeNode sums over its Ready members (status.allocatable). */
const ACCELERATORS = ["nvidia.com/gpu", "amd.com/gpu"];
/** Sites in these phases run work: a Degraded site still has Ready members. */
export const SERVING_SITE_PHASES = ["Online", "Degraded"];

interface Unavailable {
  reason: string;
  message: string;
}

/** What the provider last said about a Remote backend's device, refreshed every calibrationRefreshSeconds. */
interface DeviceReading {
  fingerprint: string;
  readAt: number;
  status?: RemoteBackendStatus;
  calibration?: Calibration & { updated?: string };
  problem?: Unavailable;
}
const readings = new Map<string, DeviceReading>();
const PROBLEM_RETRY_MS = 60_000;
/**
 * A backend's load (counts and queue head) is written at most this often: a busy queue changes it with every job
 * that queues, starts or ends, and one write every few seconds says as much as one per job.
 */
const LOAD_WRITE_INTERVAL_MS = 2_000;
/** When each backend's load was last written by this process. */
const loadWrittenAt = new Map<string, number>();

/**
 * Keeps a QuantumBackend's status the truth about whether placement may send work to it (its site serving, its
 * credentials present, its provider reachable and the device online), with its load and the calibration
 * placement uses.
 */
export const quantumBackendController = defineController<QuantumBackend>({
  name: "quantumbackend",
  for: QuantumBackendKind,
  watches: [
    {
      // A backend depends on its site's phase and, for Job runners that need GPUs, its allocatable.
      kind: EdgeNodeKind,
      map: (site, cache, old) => {
        const now = (site as EdgeNode).status;
        const before = (old as EdgeNode | undefined)?.status;
        if (old && before?.phase === now?.phase && jsonEqual(before?.allocatable, now?.allocatable)) return [];
        return cache.byIndex(QuantumBackendKind, SITE_INDEX, site.metadata.name).map((b) => b.metadata.name);
      },
    },
    {
      kind: SecretKind,
      map: (secret, cache) =>
        cache
          .byIndex(QuantumBackendKind, SECRET_INDEX, `${secret.metadata.namespace}/${secret.metadata.name}`)
          .map((b) => b.metadata.name),
    },
    {
      // Load counts follow the jobs placed here, and only the phase matters to them.
      kind: QuantumJobKind,
      map: (obj, _cache, old, event) => {
        const job = obj as QuantumJob;
        const before = old as QuantumJob | undefined;
        if (event !== "delete" && before?.status?.phase === job.status?.phase) return [];
        return [...new Set([job.status?.placement?.backend, before?.status?.placement?.backend])].filter(
          (b): b is string => b !== undefined,
        );
      },
    },
  ],
  metrics: quantumBackendMetrics,
  setup(cache, { registry }) {
    const informer = cache.informer<QuantumBackend>(QuantumBackendKind);
    informer.addIndex(SITE_INDEX, (b) => (b.spec.siteRef ? [b.spec.siteRef.name] : []));
    informer.addIndex(SECRET_INDEX, (b) => {
      const ref = credentialsRef(b);
      return ref ? [`${ref.namespace}/${ref.name}`] : [];
    });
    addQuantumJobIndexes(cache);
    // Backends carry no finalizer, so no reconcile sees one go: what is held for it is dropped when it is deleted.
    informer.onEvent((event, b) => {
      if (event !== "delete") return;
      readings.delete(b.metadata.name);
      loadWrittenAt.delete(b.metadata.name);
      forgetRemote(b.metadata.name);
      quantumBackendMetrics(registry).forget(b.metadata.name);
    });
  },

  async reconcile(ctx, backend) {
    const name = backend.metadata.name;
    if (backend.metadata.deletionTimestamp) return; // going away: nothing to ask its provider
    const status = ctx.status(backend);
    const load = backendLoad(ctx.cache, name);
    const loadDueInMs = writeLoad(ctx, backend, load);

    const problem = specProblem(backend) ?? siteProblem(backend, ctx.cache) ?? (await deviceProblem(ctx, backend));
    const reading = readings.get(name);
    const capacity = qubitCapacity(backend);
    status.set({
      maxQubits: capacity.maxQubits,
      calibration: reading?.calibration ? withoutTime(reading.calibration) : backend.spec.calibration,
      lastCalibrationTime: reading?.calibration?.updated,
      remoteQueueLength: reading?.status?.queueLength,
    });
    if (problem) {
      status.set({ phase: "Unavailable", ...problem });
      status.condition("Ready", "False", problem.reason, problem.message);
    } else {
      const message = readyMessage(backend, capacity);
      status.set({ phase: "Ready", reason: "Ready", message });
      status.condition("Ready", "True", "Ready", message);
    }
    if (backend.status?.phase !== (problem ? "Unavailable" : "Ready")) {
      const note = problem ? `${problem.reason}: ${problem.message}` : "Ready for work.";
      if (problem) ctx.events.warning(backend, problem.reason, note);
      else ctx.events.normal(backend, "Ready", note);
    }
    quantumBackendMetrics(ctx.registry).record(name, {
      queued: load.queued,
      running: load.running,
      capacity: backend.spec.capacity.maxConcurrentJobs,
      ready: !problem,
    });
    const refreshInMs =
      backend.spec.execution.mode !== "Remote"
        ? undefined
        : readings.get(name)?.problem
          ? PROBLEM_RETRY_MS
          : backend.spec.execution.calibrationRefreshSeconds * 1000;
    const next = [loadDueInMs, refreshInMs].filter((ms): ms is number => ms !== undefined);
    if (next.length) return { requeueAfterMs: Math.min(...next) };
  },
});

/** Sets the backend's load in its status if it changed and may be written now; else answers when it may. */
function writeLoad(
  ctx: ReconcileContext,
  backend: QuantumBackend,
  load: ReturnType<typeof backendLoad>,
): number | undefined {
  const name = backend.metadata.name;
  const { running, queued, queueHead } = backend.status ?? {};
  if (jsonEqual({ running, queued, queueHead }, load)) return undefined;
  const dueInMs = (loadWrittenAt.get(name) ?? -Infinity) + LOAD_WRITE_INTERVAL_MS - ctx.now.getTime();
  if (dueInMs > 0) return dueInMs;
  ctx.status(backend).set(load);
  loadWrittenAt.set(name, ctx.now.getTime());
  return undefined;
}

/** The schema's rules reject these specs; this check is for objects stored before the rules existed. */
function specProblem(backend: QuantumBackend): Unavailable | undefined {
  const { type, execution } = backend.spec;
  if (execution.mode === "Embedded" && type !== "Simulator")
    return { reason: "InvalidSpec", message: INVALID_SPEC.embeddedNotSimulator };
  if (execution.mode === "Job" && type !== "Simulator")
    return { reason: "InvalidSpec", message: INVALID_SPEC.jobNotSimulator };
  if (execution.mode === "Remote" && (!execution.provider || !execution.credentialsSecretRef))
    return INCOMPLETE_REMOTE_SPEC;
  if (execution.mode === "Job" && !backend.spec.siteRef)
    return { reason: "InvalidSpec", message: INVALID_SPEC.jobWithoutSite };
  if (execution.precision === "Single" && !(execution.mode === "Job" && execution.image))
    return { reason: "InvalidSpec", message: INVALID_SPEC.singleNeedsRunner };
  const quantity = memoryQuantityProblem(backend);
  if (quantity) return { reason: "InvalidSpec", message: quantity };
  return undefined;
}

function siteProblem(backend: QuantumBackend, cache: Cache): Unavailable | undefined {
  const ref = backend.spec.siteRef;
  if (!ref) return undefined;
  const site = cache.get<EdgeNode>(EdgeNodeKind, undefined, ref.name);
  if (!site) return { reason: "SiteNotFound", message: `EdgeNode ${ref.name} does not exist.` };
  const phase = site.status?.phase;
  if (!phase || !SERVING_SITE_PHASES.includes(phase))
    return { reason: "SiteOffline", message: `Site ${ref.name} is ${phase ?? "not observed yet"}.` };
  // A runner asking for accelerators the site does not have would wait unscheduled forever.
  const limits = backend.spec.execution.mode === "Job" ? (backend.spec.execution.resources?.limits ?? {}) : {};
  for (const resource of ACCELERATORS) {
    const wanted = limits[resource];
    const have = site.status?.allocatable?.[resource] ?? "0";
    if (wanted !== undefined && parseQuantity(have) < parseQuantity(wanted))
      return {
        reason: "InsufficientCapacity",
        message: `Site ${ref.name} has ${have} ${resource} on Ready members; each run needs ${wanted}.`,
      };
  }
  return undefined;
}

/** For Remote backends: credentials, then the provider's word on the device, read at most once a refresh period. */
async function deviceProblem(ctx: ReconcileContext, backend: QuantumBackend): Promise<Unavailable | undefined> {
  const name = backend.metadata.name;
  if (backend.spec.execution.mode !== "Remote") return undefined;
  const access = remoteAccess(backend, ctx.cache);
  if ("reason" in access) {
    readings.delete(name);
    return access;
  }
  const ref = credentialsRef(backend);
  const secretVersion = ref && ctx.cache.get(SecretKind, ref.namespace, ref.name)?.metadata.resourceVersion;
  const fingerprint = `${backend.metadata.uid}/${backend.metadata.generation}/${secretVersion}`;
  const now = ctx.now.getTime();
  const previous = readings.get(name);
  // After a failure the provider is asked again within a minute: one lost request should not take a QPU out of
  // placement for a whole refresh period.
  const periodMs = previous?.problem ? PROBLEM_RETRY_MS : backend.spec.execution.calibrationRefreshSeconds * 1000;
  let reading = previous;
  if (!reading || reading.fingerprint !== fingerprint || now - reading.readAt >= periodMs) {
    reading = { fingerprint, readAt: now };
    try {
      reading.status = await access.provider.backendStatus();
      reading.calibration = await access.provider.calibration();
    } catch (e) {
      reading.problem = providerProblem(e, backend);
      // The last calibration read stays the best estimate while the provider does not answer.
      if (previous?.fingerprint === fingerprint) reading.calibration = previous.calibration;
    }
    readings.set(name, reading);
  }
  if (reading.problem) return reading.problem;
  if (reading.status && !reading.status.operational)
    return {
      reason: "DeviceOffline",
      message: `The provider reports ${backend.spec.execution.device ?? name} is not operational${reading.status.message ? `: ${reading.status.message}` : ""}.`,
    };
  return undefined;
}

function providerProblem(e: unknown, backend: QuantumBackend): Unavailable {
  const where = backend.spec.execution.endpoint ?? `the ${backend.spec.execution.provider} API`;
  if (e instanceof ProviderError && e.kind === "Unauthorized")
    return { reason: "Unauthorized", message: `${where} refused the credentials: ${e.message}` };
  return {
    reason: "ProviderUnreachable",
    message: `${where} did not answer: ${e instanceof Error ? e.message : String(e)}`,
  };
}

function readyMessage(backend: QuantumBackend, capacity: ReturnType<typeof qubitCapacity>): string {
  const { mode } = backend.spec.execution;
  const site = backend.spec.siteRef ? ` at site ${backend.spec.siteRef.name}` : "";
  const what = mode === "Embedded" ? "in the operator" : mode === "Job" ? "as Jobs" : "on the provider's device";
  const bound = capacity.boundByMemory ? ` (${capacity.boundByMemory})` : "";
  return `Runs up to ${capacity.maxQubits} qubits ${what}${site}${bound}.`;
}

function withoutTime(c: Calibration & { updated?: string }): Calibration {
  const { updated: _updated, ...rest } = c;
  return rest;
}
