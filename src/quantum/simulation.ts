/** What a simulation takes and gives: shared by the Simulator on the caller's thread and the worker that runs it. */

/** The QDK simulator's noise: Pauli X, Y, Z probabilities applied per qubit after every gate and measurement. */
export interface Noise {
  pauli: [number, number, number];
  /** Probability that a qubit is lost; its measurements then read "-". */
  qubitLoss?: number;
}

export interface SimulationRequest {
  /** An OpenQASM 3 (or 2) program. */
  source: string;
  shots: number;
  noise?: Noise;
}

export interface SimulationResult {
  /** Shots that produced a result. */
  shots: number;
  /**
   * Bitstring → count in Qiskit order: c[n-1] first, several registers joined by " " with the last-declared first.
   * Only bit-typed outputs count.
   */
  counts: Record<string, number>;
  /** Shots that hit a runtime error (an index out of range, say); the others still count. */
  failedShots: number;
  /** The first runtime error's message, if any. */
  shotError?: string;
  /** Time spent compiling and simulating in the worker, without waiting for a thread. */
  durationMs: number;
}

/** A compiler diagnostic; line and column are 1-based. */
export interface Diagnostic {
  code: string;
  message: string;
  line: number;
  column: number;
}

/** What the compiler counts in a program, as one run executes it. */
export interface CircuitCounts {
  /** Qubits the program allocates. */
  qubits: number;
  /** Gate applications by width (controls included); measurements per qubit measured, not in total. */
  gates: { singleQubit: number; twoQubit: number; multiQubit: number; measurements: number; total: number };
  /** Layers of the compiler's circuit: operations on disjoint qubits share one. */
  depth: number;
  /**
   * false when the operations depend on measured values (a branch or loop on a measurement): the counts are then
   * those of one simulated run, a sample, not a bound.
   */
  exact: boolean;
}

/** A message to the simulator worker and its answer. */
export type SimulatorRequest =
  { kind: "run"; source: string; shots: number; noise?: Noise } | { kind: "count"; source: string };

export type SimulatorReply =
  | { kind: "result"; result: SimulationResult }
  | { kind: "counts"; counts: CircuitCounts }
  | { kind: "invalid"; diagnostics: Diagnostic[] };
