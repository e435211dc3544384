import { topCounts } from "./counts.ts";
import { formatBytes } from "./placement.ts";
import type { SimulationResult } from "./simulation.ts";

/**
 * The runner contract's output: the one JSON document a runner (`nextgen-operator runner`, or any image that
 * honours the contract) writes as its container's termination message, and how the operator reads it back.
 */

/** What Kubernetes keeps of a termination message. */
export const TERMINATION_MESSAGE_MAX_BYTES = 4096;

export type RunnerErrorReason = "InvalidCircuit" | "InvalidInput" | "SimulationFailed" | "MalformedResult";

/** The hardware a runner simulated on. */
export interface RunnerDevice {
  type: "GPU" | "CPU";
  /** The GPU's or CPU's model. */
  name: string;
  /** GPUs: the device's memory. */
  memoryBytes?: number;
  /** CPUs: the threads the runner could use. */
  threads?: number;
}

/** The contract spells precision as Aer does; QuantumBackend and status say Single and Double. */
export type RunnerPrecision = "single" | "double";

export interface RunnerSuccess {
  /** Shots that produced a result. */
  shots: number;
  /** The most frequent bitstrings, Qiskit order; all of them unless truncated. */
  counts: Record<string, number>;
  /** How many distinct bitstrings the run produced. */
  distinct: number;
  truncated: boolean;
  durationMs: number;
  /** Present when some shots hit a runtime error. */
  failedShots?: number;
  shotError?: string;
  /** Where it ran and in which precision; runners written before these fields leave them out. */
  device?: RunnerDevice;
  precision?: RunnerPrecision;
}

export interface RunnerFailure {
  /** MalformedResult is never written by the runner: parseRunnerResult answers it for a document it cannot read. */
  error: { reason: RunnerErrorReason; message: string };
}

export type RunnerResult = RunnerSuccess | RunnerFailure;

// An error message leaves room for the rest of the document in the termination message.
const MAX_MESSAGE_CHARS = 1000;

const byteLength = (doc: RunnerResult) => Buffer.byteLength(JSON.stringify(doc));

/** The success document, its counts cut to the most frequent bitstrings when the whole would not fit in maxBytes. */
export function successDocument(
  result: SimulationResult,
  where: { device: RunnerDevice; precision: RunnerPrecision },
  maxBytes = TERMINATION_MESSAGE_MAX_BYTES,
): RunnerSuccess {
  const distinct = Object.keys(result.counts).length;
  const doc = (counts: Record<string, number>): RunnerSuccess => {
    const d: RunnerSuccess = {
      shots: result.shots,
      counts,
      distinct,
      truncated: Object.keys(counts).length < distinct,
      durationMs: Math.round(result.durationMs),
    };
    if (result.failedShots > 0) {
      d.failedShots = result.failedShots;
      d.shotError = result.shotError?.slice(0, MAX_MESSAGE_CHARS);
    }
    return { ...d, ...where };
  };
  const full = doc(result.counts);
  if (byteLength(full) <= maxBytes) return full;
  // The largest number of bitstrings that fits: size grows with the limit, so a binary search finds it.
  let fits = 0;
  let tooMany = distinct;
  while (tooMany - fits > 1) {
    const mid = Math.floor((fits + tooMany) / 2);
    if (byteLength(doc(topCounts(result.counts, mid))) <= maxBytes) fits = mid;
    else tooMany = mid;
  }
  return doc(topCounts(result.counts, fits));
}

export function runnerFailure(reason: RunnerErrorReason, message: string): RunnerFailure {
  return { error: { reason, message: message.slice(0, MAX_MESSAGE_CHARS) } };
}

const isCount = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 0;

function isDevice(v: unknown): v is RunnerDevice {
  if (typeof v !== "object" || v === null) return false;
  const d = v as Record<string, unknown>;
  return (
    (d.type === "GPU" || d.type === "CPU") &&
    typeof d.name === "string" &&
    (d.memoryBytes === undefined || isCount(d.memoryBytes)) &&
    (d.threads === undefined || isCount(d.threads))
  );
}

/** A device as status shows it: "GPU NVIDIA A100-SXM4-80GB, 80 GiB" or "CPU AMD EPYC 7763, 2 threads". */
export function describeDevice(d: RunnerDevice): string {
  const detail =
    d.memoryBytes !== undefined
      ? `, ${formatBytes(d.memoryBytes)}`
      : d.threads !== undefined
        ? `, ${d.threads} thread${d.threads === 1 ? "" : "s"}`
        : "";
  return `${d.type} ${d.name}${detail}`.slice(0, 200);
}

function asRunnerResult(value: unknown): RunnerResult | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.error === "object" && v.error !== null) {
    const { reason, message } = v.error as Record<string, unknown>;
    const reasons: unknown[] = ["InvalidCircuit", "InvalidInput", "SimulationFailed"];
    if (!reasons.includes(reason) || typeof message !== "string") return undefined;
    return runnerFailure(reason as RunnerErrorReason, message);
  }
  const counts = v.counts;
  if (typeof counts !== "object" || counts === null || !Object.values(counts).every(isCount)) return undefined;
  if (!isCount(v.shots) || !isCount(v.distinct) || typeof v.truncated !== "boolean") return undefined;
  if (typeof v.durationMs !== "number") return undefined;
  if (v.failedShots !== undefined && !isCount(v.failedShots)) return undefined;
  if (v.shotError !== undefined && typeof v.shotError !== "string") return undefined;
  if (v.device !== undefined && !isDevice(v.device)) return undefined;
  if (v.precision !== undefined && v.precision !== "single" && v.precision !== "double") return undefined;
  return value as RunnerSuccess;
}

/**
 * Reads a runner's document back from a container's termination message. Tolerant: when the message is the tail
 * of the container's log (terminationMessagePolicy FallbackToLogsOnError) the document is its last line; anything
 * that is not a runner document comes back as a MalformedResult error.
 */
export function parseRunnerResult(text: string): RunnerResult {
  const trimmed = text.trim();
  if (!trimmed) return runnerFailure("MalformedResult", "the runner left no result (killed before it finished?)");
  const lastLine = trimmed.slice(trimmed.lastIndexOf("\n") + 1);
  for (const candidate of [trimmed, lastLine]) {
    try {
      const result = asRunnerResult(JSON.parse(candidate));
      if (result) return result;
    } catch {
      // not JSON: try the next candidate
    }
  }
  return runnerFailure("MalformedResult", `not a runner result: ${JSON.stringify(trimmed.slice(0, 200))}`);
}
