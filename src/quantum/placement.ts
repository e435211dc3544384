/**
 * Quantum backend placement: which backends can run a circuit, which of them suits the job's strategy best, and
 * one line per backend saying why it won, lost or was rejected. Pure: the caller gathers the candidates.
 */

import type { LanguageFeature } from "./circuit.ts";

export type Strategy = "Fidelity" | "Latency" | "Cost" | "Carbon" | "Balanced";

/** What a strategy weighs; each is normalised across the feasible backends to [0,1], 1 the best. */
export type Metric = "fidelity" | "wait" | "cost" | "latency" | "carbon";

export interface Calibration {
  singleQubitError?: number;
  twoQubitError?: number;
  readoutError?: number;
  quantumVolume?: number;
}

export interface BackendCandidate {
  name: string;
  type: "Simulator" | "QPU";
  ready: boolean;
  /** Why it is not Ready, e.g. "MissingCredentials: Secret ibm-credentials not found". */
  notReadyReason?: string;
  /** Matched the job's spec.backend.selector (true when there is none). */
  selected: boolean;
  site?: { name: string; online: boolean; latencyMs?: number };
  /** gCO2e/kWh at the backend's site, when known. */
  carbonIntensity?: number;
  /** Draw while running, for the carbon estimate (DEFAULT_POWER_WATTS by type when not given). */
  powerWatts?: number;
  capabilities: { maxQubits: number; maxShots: number };
  /** The OpenQASM features its runner accepts. */
  languageFeatures: readonly LanguageFeature[];
  /** QPUs; simulators are exact unless they simulate noise. */
  calibration?: Calibration;
  /** Simulators: the memory their state vector lives in, and its precision. */
  memory?: StateVectorMemory;
  /** Estimated run time per shot (DEFAULT_SECONDS_PER_SHOT by type when not given). */
  secondsPerShot?: number;
  capacity: { maxConcurrentJobs: number; running: number; queued: number; remoteQueue?: number };
  cost?: { perShot?: number; perSecond?: number };
}

export interface PlacementRequest {
  qubits: number;
  shots: number;
  gates: { singleQubit: number; twoQubit: number; measurements: number };
  /** The OpenQASM features the circuit uses that some runner lacks. */
  features?: readonly LanguageFeature[];
  strategy: Strategy;
  /** spec.backend.name */
  pinned?: string;
  /** spec.backend.types; empty or absent allows both. */
  types?: ("Simulator" | "QPU")[];
  /** 1 - estimated success probability must not exceed this. */
  maxErrorRate?: number;
  /** QPUs only. */
  minQuantumVolume?: number;
  fallbackToSimulator: boolean;
}

export interface ScoredBackend {
  name: string;
  score: number;
  successProbability: number;
  expectedWaitSeconds: number;
  estimatedCost: number;
  latencyMs?: number;
  carbonGrams?: number;
}

export interface PlacementDecision {
  chosen?: ScoredBackend & { fallbackUsed: boolean };
  /**
   * One line per backend, each starting with its name: the chosen one first ("won: score 0.91 — success 0.97,
   * wait 0 s, cost 0.00, latency 3 ms"), then the others that were feasible by score ("scored 0.55: …"), then the
   * rejected ones by name, with every reason ("rejected: not Ready (...); needs 27 qubits, has 20").
   */
  reasons: string[];
}

const METRICS: readonly Metric[] = ["fidelity", "wait", "cost", "latency", "carbon"];

function emphasising(metric: Metric): Record<Metric, number> {
  const rest = 0.3 / (METRICS.length - 1);
  return Object.fromEntries(METRICS.map((m) => [m, m === metric ? 0.7 : rest])) as Record<Metric, number>;
}

/** Each strategy's weights, summing to 1: the named metric 0.7 and the others sharing 0.3; Balanced its own mix. */
export const STRATEGY_WEIGHTS: Readonly<Record<Strategy, Readonly<Record<Metric, number>>>> = {
  Fidelity: emphasising("fidelity"),
  Latency: emphasising("latency"),
  Cost: emphasising("cost"),
  Carbon: emphasising("carbon"),
  Balanced: { fidelity: 0.3, wait: 0.25, cost: 0.2, latency: 0.1, carbon: 0.15 },
};

/** Run time per shot when a backend gives none: a QPU pays a repetition delay and readout that a simulator does not. */
export const DEFAULT_SECONDS_PER_SHOT: Readonly<Record<BackendCandidate["type"], number>> = {
  Simulator: 0.001,
  QPU: 0.005,
};

/** Power when a backend gives none: a simulator server, or a QPU with its cryostat and control electronics. */
export const DEFAULT_POWER_WATTS: Readonly<Record<BackendCandidate["type"], number>> = {
  Simulator: 500,
  QPU: 25_000,
};

// 1 - p is computed in floating point; an error rate equal to the limit must pass.
const ERROR_RATE_TOLERANCE = 1e-12;
const JOULES_PER_KWH = 3.6e6;

/** The chance a run is error-free: (1−e1)^n1 · (1−e2)^n2 · (1−eRO)^nMeasured; 1 without calibration. */
export function successProbability(cal: Calibration | undefined, gates: PlacementRequest["gates"]): number {
  if (!cal) return 1;
  return (
    (1 - (cal.singleQubitError ?? 0)) ** gates.singleQubit *
    (1 - (cal.twoQubitError ?? 0)) ** gates.twoQubit *
    (1 - (cal.readoutError ?? 0)) ** gates.measurements
  );
}

/** A state vector's amplitudes: complex128 (Double) or complex64 (Single). */
export type Precision = "Double" | "Single";
export const PRECISIONS: readonly Precision[] = ["Double", "Single"];
export const BYTES_PER_AMPLITUDE: Readonly<Record<Precision, number>> = { Double: 16, Single: 8 };

/**
 * The share of a device's memory a state vector may fill: the rest is the simulator's workspace and, on a GPU, the
 * CUDA context. A job that needs more is never sent there: it would exhaust the device, not run slowly.
 */
export const STATE_VECTOR_SHARE = 0.9;

export interface StateVectorMemory {
  bytes: number;
  precision: Precision;
  /** Whose memory it is, for the reasons: "GPU memory (spec.execution.gpuMemory)", "the memory limit"… */
  holder: string;
}

/** Bytes of a dense state vector: 2^qubits amplitudes of 16 bytes (Double) or 8 (Single). */
export function statevectorBytes(qubits: number, precision: Precision = "Double"): number {
  return BYTES_PER_AMPLITUDE[precision] * 2 ** qubits;
}

/** The most qubits whose state vector fits in the memory's share (0 when not even one does). */
export function qubitsThatFit(memory: StateVectorMemory): number {
  let qubits = 0;
  while (fits(qubits + 1, memory)) qubits++;
  return qubits;
}

const fits = (qubits: number, memory: StateVectorMemory) =>
  statevectorBytes(qubits, memory.precision) <= STATE_VECTOR_SHARE * memory.bytes;

/** The room the sizing rule gives a state vector: "90% of 16 GiB of GPU memory (spec.execution.gpuMemory)". */
export function stateVectorRoom(memory: StateVectorMemory): string {
  return `${STATE_VECTOR_SHARE * 100}% of ${formatBytes(memory.bytes)} of ${memory.holder}`;
}

/** The sizing rule's arithmetic for a circuit of `qubits`: "2^31 × 8 B (single precision) = 16 GiB". */
export function stateVectorArithmetic(qubits: number, precision: Precision): string {
  const bytes = BYTES_PER_AMPLITUDE[precision];
  return `2^${qubits} × ${bytes} B (${precision.toLowerCase()} precision) = ${formatBytes(statevectorBytes(qubits, precision))}`;
}

/** Filters, scores and explains; falls back to a simulator when asked and nothing else is feasible. */
export function place(req: PlacementRequest, backends: BackendCandidate[]): PlacementDecision {
  const byName = [...backends].sort((a, b) => compareNames(a.name, b.name));
  // In name order, which a fallback's updates keep: rejected lines come out sorted.
  const rejected = new Map<string, string[]>();
  const feasible: BackendCandidate[] = [];
  for (const b of byName) {
    const failures = rejections(req, b, false);
    if (failures.length) rejected.set(b.name, failures);
    else feasible.push(b);
  }
  const fallingBack = !feasible.length && req.fallbackToSimulator;
  if (fallingBack) {
    for (const b of byName.filter((c) => c.type === "Simulator")) {
      const failures = rejections(req, b, true);
      if (failures.length) rejected.set(b.name, failures);
      else {
        rejected.delete(b.name);
        feasible.push(b);
      }
    }
  }
  const [best, ...rest] = score(req, feasible);
  const won = fallingBack ? "won (fallback to a simulator: no QPU was feasible)" : "won";
  return {
    chosen: best && { ...best, fallbackUsed: fallingBack },
    reasons: [
      ...(best ? [`${best.name}: ${won}: score ${best.score} — ${summary(best)}`] : []),
      ...rest.map((s) => `${s.name}: scored ${s.score}: ${summary(s)}`),
      ...[...rejected].map(([name, failures]) => `${name}: rejected: ${failures.join("; ")}`),
    ],
  };
}

/**
 * Why a backend cannot take the job, empty when it can. A fallback ignores the pin, the type list and the error
 * and quantum-volume limits: it asks only whether the (simulator) backend can run the circuit at all.
 */
function rejections(req: PlacementRequest, b: BackendCandidate, fallback: boolean): string[] {
  const out: string[] = [];
  if (!fallback && req.pinned && b.name !== req.pinned) out.push("not the pinned backend");
  if (!b.selected) out.push("does not match spec.backend.selector");
  if (!fallback && req.types?.length && !req.types.includes(b.type)) {
    out.push(`type ${b.type} is not in spec.backend.types (${req.types.join(", ")})`);
  }
  if (!b.ready) out.push(b.notReadyReason ? `not Ready (${b.notReadyReason})` : "not Ready");
  if (b.site && !b.site.online) out.push(`site ${b.site.name} is not Online`);
  if (req.qubits > b.capabilities.maxQubits) out.push(`needs ${req.qubits} qubits, has ${b.capabilities.maxQubits}`);
  const lacking = missingFeatures(req.features, b);
  if (lacking.length) out.push(`its runner does not take ${lacking.join(", ")} (spec.capabilities.languageFeatures)`);
  if (req.shots > b.capabilities.maxShots) {
    out.push(`needs ${req.shots} shots, allows ${b.capabilities.maxShots}`);
  }
  if (b.type === "Simulator" && b.memory && !fits(req.qubits, b.memory)) {
    out.push(
      `its state vector needs ${stateVectorArithmetic(req.qubits, b.memory.precision)}, more than ` +
        stateVectorRoom(b.memory),
    );
  }
  if (b.capacity.maxConcurrentJobs < 1) out.push("takes no jobs (maxConcurrentJobs is 0)");
  if (fallback) return out;
  const error = 1 - successProbability(b.calibration, req.gates);
  if (req.maxErrorRate !== undefined && error > req.maxErrorRate + ERROR_RATE_TOLERANCE) {
    out.push(`estimated error ${round(error, 3)} exceeds maxErrorRate ${req.maxErrorRate}`);
  }
  if (req.minQuantumVolume !== undefined && b.type === "QPU") {
    const qv = b.calibration?.quantumVolume;
    if (qv === undefined) out.push(`quantum volume unknown, needs ${req.minQuantumVolume}`);
    else if (qv < req.minQuantumVolume) out.push(`quantum volume ${qv} is below ${req.minQuantumVolume}`);
  }
  return out;
}

/** The features a circuit uses that a backend's runner does not take. */
function missingFeatures(features: readonly LanguageFeature[] | undefined, b: BackendCandidate) {
  return (features ?? []).filter((f) => !b.languageFeatures.includes(f));
}

/** The feasible backends' estimates and scores, best first. */
function score(req: PlacementRequest, feasible: BackendCandidate[]): ScoredBackend[] {
  const estimates = feasible.map((b) => estimate(req, b));
  const typicalCarbon = median(estimates.flatMap((e) => e.carbonGrams ?? []));
  const normalised: Record<Metric, number[]> = {
    fidelity: normalise(
      estimates.map((e) => e.successProbability),
      true,
    ),
    wait: normalise(
      estimates.map((e) => e.expectedWaitSeconds),
      false,
    ),
    cost: normalise(
      estimates.map((e) => e.estimatedCost),
      false,
    ),
    latency: normalise(
      estimates.map((e) => e.latencyMs),
      false,
    ),
    carbon: normalise(
      estimates.map((e) => e.carbonGrams ?? typicalCarbon),
      false,
    ),
  };
  const weights = STRATEGY_WEIGHTS[req.strategy];
  return estimates
    .map((e, k) => ({
      ...e,
      score: round(
        METRICS.reduce((sum, m) => sum + weights[m] * (normalised[m][k] as number), 0),
        3,
      ),
    }))
    .sort((a, b) => b.score - a.score || a.expectedWaitSeconds - b.expectedWaitSeconds || compareNames(a.name, b.name));
}

function estimate(req: PlacementRequest, b: BackendCandidate): Omit<ScoredBackend, "score"> {
  const runSeconds = (b.secondsPerShot ?? DEFAULT_SECONDS_PER_SHOT[b.type]) * req.shots;
  const { maxConcurrentJobs: slots, running, queued, remoteQueue = 0 } = b.capacity;
  // Jobs ahead of this one drain in rounds of `slots`, each round taking about this job's run time.
  const rounds = running < slots ? 0 : Math.ceil((queued + running + 1 - slots) / slots);
  const watts = b.powerWatts ?? DEFAULT_POWER_WATTS[b.type];
  return {
    name: b.name,
    successProbability: successProbability(b.calibration, req.gates),
    expectedWaitSeconds: (rounds + remoteQueue) * runSeconds,
    estimatedCost: (b.cost?.perShot ?? 0) * req.shots + (b.cost?.perSecond ?? 0) * runSeconds,
    latencyMs: b.site?.latencyMs,
    carbonGrams:
      b.carbonIntensity === undefined ? undefined : (b.carbonIntensity * watts * runSeconds) / JOULES_PER_KWH,
  };
}

/**
 * Values mapped to [0,1], 1 the best. All equal: 1. Unknown (undefined) counts as the worst, 0, unless nothing is
 * known, when every value is 1.
 */
function normalise(values: (number | undefined)[], higherIsBetter: boolean): number[] {
  const known = values.filter((v): v is number => v !== undefined);
  if (!known.length) return values.map(() => 1);
  const min = Math.min(...known);
  const max = Math.max(...known);
  return values.map((v) => {
    if (v === undefined) return 0;
    if (max === min) return 1;
    return higherIsBetter ? (v - min) / (max - min) : (max - v) / (max - min);
  });
}

function median(values: number[]): number | undefined {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function summary(s: ScoredBackend): string {
  const parts = [
    `success ${round(s.successProbability, 3)}`,
    `wait ${significant(s.expectedWaitSeconds)} s`,
    `cost ${s.estimatedCost.toFixed(2)}`,
    s.latencyMs === undefined ? "latency unknown" : `latency ${significant(s.latencyMs)} ms`,
  ];
  if (s.carbonGrams !== undefined) parts.push(`carbon ${significant(s.carbonGrams)} g`);
  return parts.join(", ");
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let unit = 0;
  while (unit < units.length - 1 && bytes >= 1024 ** (unit + 1)) unit++;
  return `${significant(bytes / 1024 ** unit)} ${units[unit]}`;
}

function round(x: number, decimals: number): number {
  return Math.round(x * 10 ** decimals) / 10 ** decimals;
}

/** Three significant digits, without exponent notation for everyday magnitudes. */
function significant(x: number): number {
  return Number(x.toPrecision(3));
}

/** Code-unit order, the same on every machine (localeCompare depends on the locale). */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
