import type { QuantumBackend } from "../../crds/quantumbackend.ts";
import { parseQuantity } from "../../runtime/quantity.ts";
import {
  type StateVectorMemory,
  qubitsThatFit,
  stateVectorArithmetic,
  stateVectorRoom,
} from "../../quantum/placement.ts";

/**
 * What the embedded simulator can hold: WebAssembly's 32-bit memory stops at 4 GiB, state vector and simulator
 * together.
 */
const EMBEDDED_MEMORY_BYTES = 4 * 1024 ** 3;

/**
 * The memory a simulator backend's state vector lives in: its GPU's (gpuMemory), else its runner's memory limit,
 * else, embedded, the WebAssembly memory. Undefined for QPUs, for runners without a memory bound, and for a
 * quantity that does not parse (memoryQuantityProblem says which).
 */
export function stateVectorMemory(backend: QuantumBackend): StateVectorMemory | undefined {
  const exec = backend.spec.execution;
  if (backend.spec.type !== "Simulator") return undefined;
  const precision = exec.precision ?? "Double";
  if (exec.mode === "Embedded") {
    return { bytes: EMBEDDED_MEMORY_BYTES, precision, holder: "the embedded simulator's WebAssembly memory" };
  }
  if (exec.mode !== "Job") return undefined;
  if (memoryQuantityProblem(backend)) return undefined;
  if (exec.gpuMemory !== undefined) {
    return { bytes: parseQuantity(exec.gpuMemory), precision, holder: "GPU memory (spec.execution.gpuMemory)" };
  }
  const limit = exec.resources?.limits?.memory;
  if (limit === undefined) return undefined;
  return { bytes: parseQuantity(limit), precision, holder: "the runner's memory limit" };
}

/** Why gpuMemory or limits.memory is not a quantity; undefined when both are (or are unset). */
export function memoryQuantityProblem(backend: QuantumBackend): string | undefined {
  const exec = backend.spec.execution;
  const fields: Array<[string, string | number | undefined]> = [
    ["spec.execution.gpuMemory", exec.gpuMemory],
    ["spec.execution.resources.limits.memory", exec.resources?.limits?.memory],
  ];
  for (const [field, value] of fields) {
    if (value === undefined) continue;
    try {
      parseQuantity(value);
    } catch {
      return `${field} "${value}" is not a quantity (e.g. 16Gi).`;
    }
  }
  return undefined;
}

/** The most qubits placement sends to the backend, and why when its memory is what bounds it. */
export function qubitCapacity(backend: QuantumBackend): { maxQubits: number; boundByMemory?: string } {
  const declared = backend.spec.capabilities.maxQubits;
  const memory = stateVectorMemory(backend);
  if (!memory) return { maxQubits: declared };
  const fit = qubitsThatFit(memory);
  if (fit >= declared) return { maxQubits: declared };
  return {
    maxQubits: fit,
    boundByMemory:
      `capabilities allow ${declared}, but ${fit} is the most whose state vector, ` +
      `${stateVectorArithmetic(fit, memory.precision)}, fits in ${stateVectorRoom(memory)}`,
  };
}
