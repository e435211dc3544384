import { readFileSync, writeFileSync } from "node:fs";
import { topCounts } from "../quantum/counts.ts";
import { CircuitError, type Noise, type SimulationResult, Simulator } from "../quantum/simulator.ts";
import { parse } from "./args.ts";

/** What Kubernetes keeps of a container's termination message. */
export const TERMINATION_MESSAGE_MAX_BYTES = 4096;

export const runnerHelp = `Usage: nextgen-operator runner

Runs one OpenQASM circuit on the embedded simulator, the way a Job-mode backend's container does, and writes one
JSON document to the result file and to stdout:
  {"shots":N,"counts":{...},"distinct":K,"truncated":false,"durationMs":D}   exit 0
  (counts cut to the most frequent bitstrings, "truncated":true, so that the document fits in ${TERMINATION_MESSAGE_MAX_BYTES} bytes)
  {"error":{"reason":"InvalidCircuit","message":"line L, column C: ..."}}    exit 3
  {"error":{"reason":"InvalidInput","message":"..."}}                        exit 2
  {"error":{"reason":"SimulationFailed","message":"..."}}                    exit 1

Environment:
  NEXTGEN_CIRCUIT        the OpenQASM source (or NEXTGEN_CIRCUIT_FILE, a path to it)
  NEXTGEN_SHOTS          the number of shots, a positive integer
  NEXTGEN_NOISE          optional Pauli noise: {"pauli":[px,py,pz],"qubitLoss":q}
  NEXTGEN_RESULT_FILE    where to write the document (default "/dev/termination-log", the termination message)

Flags:
  -h, --help             show this help`;

export type RunnerErrorReason = "InvalidCircuit" | "InvalidInput" | "SimulationFailed" | "MalformedResult";

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
}

export interface RunnerFailure {
  /** MalformedResult is never written by the runner: parseRunnerResult answers it for a document it cannot read. */
  error: { reason: RunnerErrorReason; message: string };
}

export type RunnerResult = RunnerSuccess | RunnerFailure;

/** Bad runner input: reported as InvalidInput, exit 2. */
class InputError extends Error {}

// An error message leaves room for the rest of the document in the termination message.
const MAX_MESSAGE_CHARS = 1000;
// The simulator takes shots as a 32-bit count.
const MAX_SHOTS = 2 ** 31 - 1;

interface RunnerInput {
  source: string;
  shots: number;
  noise?: Noise;
}

/** Reads the runner's input from its environment; throws InputError naming what is wrong. */
function readInput(env: NodeJS.ProcessEnv): RunnerInput {
  // Empty counts as unset, as a template that fills in nothing leaves a variable.
  const inline = env.NEXTGEN_CIRCUIT || undefined;
  const file = env.NEXTGEN_CIRCUIT_FILE || undefined;
  if (inline !== undefined && file !== undefined) {
    throw new InputError("set NEXTGEN_CIRCUIT or NEXTGEN_CIRCUIT_FILE, not both");
  }
  let source = inline;
  if (file !== undefined) {
    try {
      source = readFileSync(file, "utf8");
    } catch (e) {
      throw new InputError(`cannot read NEXTGEN_CIRCUIT_FILE "${file}": ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  }
  if (!source?.trim()) throw new InputError("no circuit: set NEXTGEN_CIRCUIT or NEXTGEN_CIRCUIT_FILE");
  const shotsText = env.NEXTGEN_SHOTS ?? "";
  const shots = Number(shotsText);
  if (!/^[1-9][0-9]*$/.test(shotsText) || shots > MAX_SHOTS) {
    throw new InputError(`NEXTGEN_SHOTS must be an integer from 1 to ${MAX_SHOTS}, got "${shotsText}"`);
  }
  return {
    source,
    shots,
    noise: env.NEXTGEN_NOISE ? parseNoise(env.NEXTGEN_NOISE) : undefined,
  };
}

function parseNoise(text: string): Noise {
  const invalid = () =>
    new InputError(`NEXTGEN_NOISE must be {"pauli":[px,py,pz],"qubitLoss":q} with probabilities, got ${text}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid();
  }
  const { pauli, qubitLoss } = (value ?? {}) as { pauli?: unknown; qubitLoss?: unknown };
  const probability = (p: unknown): p is number => typeof p === "number" && p >= 0 && p <= 1;
  if (!Array.isArray(pauli) || pauli.length !== 3 || !pauli.every(probability)) throw invalid();
  const [px, py, pz] = pauli as [number, number, number];
  if (px + py + pz > 1) throw invalid();
  if (qubitLoss !== undefined && !probability(qubitLoss)) throw invalid();
  return { pauli: [px, py, pz], qubitLoss };
}

const byteLength = (doc: RunnerResult) => Buffer.byteLength(JSON.stringify(doc));

/** The success document, its counts cut to the most frequent bitstrings when the whole would not fit in maxBytes. */
export function successDocument(result: SimulationResult, maxBytes = TERMINATION_MESSAGE_MAX_BYTES): RunnerSuccess {
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
    return d;
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

function failure(reason: RunnerErrorReason, message: string): RunnerFailure {
  return { error: { reason, message: message.slice(0, MAX_MESSAGE_CHARS) } };
}

const isCount = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 0;

function asRunnerResult(value: unknown): RunnerResult | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.error === "object" && v.error !== null) {
    const { reason, message } = v.error as Record<string, unknown>;
    const reasons: unknown[] = ["InvalidCircuit", "InvalidInput", "SimulationFailed"];
    if (!reasons.includes(reason) || typeof message !== "string") return undefined;
    return failure(reason as RunnerErrorReason, message);
  }
  const counts = v.counts;
  if (typeof counts !== "object" || counts === null || !Object.values(counts).every(isCount)) return undefined;
  if (!isCount(v.shots) || !isCount(v.distinct) || typeof v.truncated !== "boolean") return undefined;
  if (typeof v.durationMs !== "number") return undefined;
  if (v.failedShots !== undefined && !isCount(v.failedShots)) return undefined;
  if (v.shotError !== undefined && typeof v.shotError !== "string") return undefined;
  return value as RunnerSuccess;
}

/**
 * Reads a runner's document back from a container's termination message. Tolerant: when the message is the tail
 * of the container's log (terminationMessagePolicy FallbackToLogsOnError) the document is its last line; anything
 * that is not a runner document comes back as a MalformedResult error.
 */
export function parseRunnerResult(text: string): RunnerResult {
  const trimmed = text.trim();
  if (!trimmed) return failure("MalformedResult", "the runner left no result (killed before it finished?)");
  const lastLine = trimmed.slice(trimmed.lastIndexOf("\n") + 1);
  for (const candidate of [trimmed, lastLine]) {
    try {
      const result = asRunnerResult(JSON.parse(candidate));
      if (result) return result;
    } catch {
      // not JSON: try the next candidate
    }
  }
  return failure("MalformedResult", `not a runner result: ${JSON.stringify(trimmed.slice(0, 200))}`);
}

/** Runs the circuit the environment describes; throws InputError, CircuitError or whatever else went wrong. */
async function runFromEnv(env: NodeJS.ProcessEnv): Promise<[RunnerResult, number]> {
  const input = readInput(env);
  const simulator = new Simulator({ threads: 1 });
  try {
    const result = await simulator.run({ source: input.source, shots: input.shots, noise: input.noise });
    if (result.shots === 0) {
      return [failure("SimulationFailed", `every shot failed: ${result.shotError ?? "no result"}`), 1];
    }
    return [successDocument(result), 0];
  } finally {
    await simulator.close();
  }
}

function errorOutcome(e: unknown): [RunnerResult, number] {
  if (e instanceof InputError) return [failure("InvalidInput", e.message), 2];
  if (e instanceof CircuitError) return [failure("InvalidCircuit", e.message), 3];
  return [failure("SimulationFailed", e instanceof Error ? e.message : String(e)), 1];
}

export async function runnerCommand(args: string[]): Promise<number> {
  const { values } = parse("runner", args, {});
  if (values.help) return (console.log(runnerHelp), 0);
  const resultFile = process.env.NEXTGEN_RESULT_FILE || "/dev/termination-log";
  const [doc, code] = await runFromEnv(process.env).catch(errorOutcome);
  const text = JSON.stringify(doc);
  console.log(text);
  try {
    writeFileSync(resultFile, text);
  } catch (e) {
    console.error(`error: cannot write the result to ${resultFile}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    return code === 0 ? 1 : code;
  }
  return code;
}
