import { readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import type { Noise } from "../quantum/simulation.ts";
import { CircuitError, Simulator } from "../quantum/simulator.ts";
import {
  type RunnerResult,
  TERMINATION_MESSAGE_MAX_BYTES,
  runnerFailure,
  successDocument,
} from "../quantum/runner-result.ts";
import { parse } from "./args.ts";

/** What Kubernetes keeps of a container's termination message. */

export const runnerHelp = `Usage: nextgen-operator runner

Runs one OpenQASM circuit on the embedded simulator, the way a Job-mode backend's container does, and writes one
JSON document to the result file and to stdout:
  {"shots":N,"counts":{...},"distinct":K,"truncated":false,"durationMs":D,
   "device":{"type":"CPU","name":"<model>","threads":1},"precision":"double"}     exit 0
  (counts cut to the most frequent bitstrings, "truncated":true, so that the document fits in NEXTGEN_RESULT_MAX_BYTES)
  {"error":{"reason":"InvalidCircuit","message":"line L, column C: ..."}}    exit 3
  {"error":{"reason":"InvalidInput","message":"..."}}                        exit 2
  {"error":{"reason":"SimulationFailed","message":"..."}}                    exit 1

Environment:
  NEXTGEN_CIRCUIT           the OpenQASM source (or NEXTGEN_CIRCUIT_FILE, a path to it)
  NEXTGEN_SHOTS             the number of shots, a positive integer
  NEXTGEN_NOISE             optional Pauli noise: {"pauli":[px,py,pz],"qubitLoss":q}
  NEXTGEN_PRECISION         double (the only precision this simulator has)
  NEXTGEN_RESULT_FILE       where to write the document (default "/dev/termination-log", the termination message)
  NEXTGEN_RESULT_MAX_BYTES  the document's size limit (default ${TERMINATION_MESSAGE_MAX_BYTES}, what Kubernetes keeps of a
                            termination message; more only where the result file is read some other way)

Flags:
  -h, --help             show this help`;

/** Bad runner input: reported as InvalidInput, exit 2. */
class InputError extends Error {}

// The simulator takes shots as a 32-bit count.
const MAX_SHOTS = 2 ** 31 - 1;

interface RunnerInput {
  source: string;
  shots: number;
  noise?: Noise;
  maxBytes: number;
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
  const precision = env.NEXTGEN_PRECISION || "double";
  if (precision !== "double") {
    throw new InputError(
      `NEXTGEN_PRECISION "${precision}": the QDK simulator runs in double precision only (the GPU runner has single)`,
    );
  }
  const maxBytesText = env.NEXTGEN_RESULT_MAX_BYTES || String(TERMINATION_MESSAGE_MAX_BYTES);
  if (!/^[1-9][0-9]*$/.test(maxBytesText)) {
    throw new InputError(`NEXTGEN_RESULT_MAX_BYTES must be a positive integer, got "${maxBytesText}"`);
  }
  return {
    source,
    shots,
    noise: env.NEXTGEN_NOISE ? parseNoise(env.NEXTGEN_NOISE) : undefined,
    maxBytes: Number(maxBytesText),
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

/** Runs the circuit the environment describes; throws InputError, CircuitError or whatever else went wrong. */
async function runFromEnv(env: NodeJS.ProcessEnv): Promise<[RunnerResult, number]> {
  const input = readInput(env);
  const simulator = new Simulator({ threads: 1 });
  try {
    const result = await simulator.run({ source: input.source, shots: input.shots, noise: input.noise });
    if (result.shots === 0) {
      return [runnerFailure("SimulationFailed", `every shot failed: ${result.shotError ?? "no result"}`), 1];
    }
    const device = { type: "CPU", name: cpus()[0]?.model ?? "unknown", threads: 1 } as const;
    return [successDocument(result, { device, precision: "double" }, input.maxBytes), 0];
  } finally {
    await simulator.close();
  }
}

function errorOutcome(e: unknown): [RunnerResult, number] {
  if (e instanceof InputError) return [runnerFailure("InvalidInput", e.message), 2];
  if (e instanceof CircuitError) return [runnerFailure("InvalidCircuit", e.message), 3];
  return [runnerFailure("SimulationFailed", e instanceof Error ? e.message : String(e)), 1];
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
