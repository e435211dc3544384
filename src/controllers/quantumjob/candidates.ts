import { type EdgeNode, EdgeNodeKind } from "../../crds/edgenode.ts";
import { type QuantumBackend, QuantumBackendKind } from "../../crds/quantumbackend.ts";
import type { QuantumJob } from "../../crds/quantumjob.ts";
import { LANGUAGE_FEATURES, type LanguageFeature } from "../../quantum/circuit.ts";
import type { BackendCandidate } from "../../quantum/placement.ts";
import { providers } from "../../quantum/providers/index.ts";
import type { Cache } from "../../runtime/cache.ts";
import { matchesSelector } from "../../runtime/labels.ts";
import { gridSignals } from "../carbonbudget/grid-signals.ts";
import { SERVING_SITE_PHASES } from "../quantumbackend/controller.ts";
import { stateVectorMemory } from "../quantumbackend/memory.ts";
import { backendLoad } from "./indexes.ts";

/** Every QuantumBackend as placement sees it, with its site, load and memory, for one job. */
export function candidates(cache: Cache, job: QuantumJob): BackendCandidate[] {
  const selector = job.spec.backend?.selector;
  const grid = gridSignals.forNamespace(job.metadata.namespace as string);
  const green = grid?.preferGreenSites ? grid : undefined;
  return cache.list<QuantumBackend>(QuantumBackendKind).map((b) => {
    const site = b.spec.siteRef && cache.get<EdgeNode>(EdgeNodeKind, undefined, b.spec.siteRef.name);
    const exec = b.spec.execution;
    // A budget preferring green sites knows the grid where each site is (and where the operator's own embedded
    // simulators run); the backend's own figure is the fallback.
    const region = site ? site.spec.carbonRegion : exec.mode === "Embedded" ? green?.region : undefined;
    const gridIntensity = region !== undefined ? green?.regions.get(region) : undefined;
    return {
      name: b.metadata.name,
      type: b.spec.type,
      ready: b.status?.phase === "Ready" && !b.metadata.deletionTimestamp,
      notReadyReason: b.status?.phase
        ? `${b.status.reason ?? b.status.phase}: ${b.status.message ?? ""}`.trim()
        : "not observed yet",
      selected: !selector || matchesSelector(b.metadata.labels, selector),
      site: b.spec.siteRef
        ? {
            name: b.spec.siteRef.name,
            online: !!site && SERVING_SITE_PHASES.includes(site.status?.phase ?? ""),
            latencyMs: site ? site.status?.latency?.p50Ms : undefined,
          }
        : exec.mode === "Embedded"
          ? // In the operator's own process: no network between the job and its backend.
            { name: "operator", online: true, latencyMs: 0 }
          : undefined,
      carbonIntensity: gridIntensity ?? b.spec.carbon?.intensityGramsPerKWh,
      powerWatts: b.spec.carbon?.powerWatts,
      capabilities: { maxQubits: b.spec.capabilities.maxQubits, maxShots: b.spec.capabilities.maxShots },
      languageFeatures: runnerFeatures(b),
      calibration: b.status?.calibration ?? b.spec.calibration,
      memory: stateVectorMemory(b),
      capacity: {
        maxConcurrentJobs: b.spec.capacity.maxConcurrentJobs,
        ...backendLoad(cache, b.metadata.name),
        remoteQueue: b.status?.remoteQueueLength,
      },
      cost: b.spec.cost,
    };
  });
}

/**
 * The OpenQASM features a backend's runner accepts: as declared, else as known for the runners this project ships
 * (the QDK takes them all; a provider says what its service takes), else none of them: an image nobody described
 * gets only circuits every runner runs.
 */
function runnerFeatures(b: QuantumBackend): readonly LanguageFeature[] {
  const exec = b.spec.execution;
  if (b.spec.capabilities.languageFeatures) return b.spec.capabilities.languageFeatures;
  if (exec.mode === "Embedded" || (exec.mode === "Job" && !exec.image)) return LANGUAGE_FEATURES;
  if (exec.mode === "Remote" && exec.provider) return providers[exec.provider]?.languageFeatures ?? [];
  return [];
}
