import { WorkerPool, siblingModule } from "../runtime/worker-pool.ts";
import type {
  CircuitCounts,
  Diagnostic,
  Noise,
  SimulationRequest,
  SimulationResult,
  SimulatorReply,
  SimulatorRequest,
} from "./simulation.ts";

/** A program that does not compile; the message locates the first diagnostic. */
export class CircuitError extends Error {
  override name = "CircuitError";
  readonly diagnostics: Diagnostic[];

  constructor(diagnostics: Diagnostic[]) {
    const first = diagnostics[0];
    super(first ? `line ${first.line}, column ${first.column}: ${first.message}` : "the circuit does not compile");
    this.diagnostics = diagnostics;
  }
}

/**
 * Runs OpenQASM programs on the QDK's WebAssembly simulator in worker threads. A run is synchronous inside its
 * thread, so cancelling one terminates the thread; the next run starts a fresh one (about 70 ms to load the wasm).
 */
export class Simulator {
  private readonly pool: WorkerPool<SimulatorRequest, SimulatorReply>;

  constructor(opts: { threads: number; idleMs?: number }) {
    this.pool = new WorkerPool(siblingModule(import.meta.url, "simulator-worker"), {
      size: opts.threads,
      idleMs: opts.idleMs,
    });
  }

  /**
   * Rejects with CircuitError for programs that do not compile; with the signal's reason when aborted or when
   * timeoutMs passes (the worker running it is terminated).
   */
  async run(
    req: SimulationRequest,
    opts: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<SimulationResult> {
    if (!Number.isSafeInteger(req.shots) || req.shots < 1) {
      throw new RangeError(`shots must be a positive integer, got ${req.shots}`);
    }
    const signals = [opts.signal, opts.timeoutMs === undefined ? undefined : AbortSignal.timeout(opts.timeoutMs)];
    const signal = AbortSignal.any(signals.filter((s) => s !== undefined));
    const reply = await this.pool.run(
      { kind: "run", source: req.source, shots: req.shots, noise: req.noise },
      { signal },
    );
    return answer(reply, "result").result;
  }

  /**
   * The compiler's counts of a program (qubits, gates by width, measurements, depth); CircuitError when it does not
   * compile or cannot run.
   */
  async count(source: string, opts: { timeoutMs?: number } = {}): Promise<CircuitCounts> {
    const signal = opts.timeoutMs === undefined ? undefined : AbortSignal.timeout(opts.timeoutMs);
    const reply = await this.pool.run({ kind: "count", source }, { signal });
    return answer(reply, "counts").counts;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** The reply of the kind asked for; CircuitError when the program does not compile. */
function answer<K extends SimulatorReply["kind"]>(
  reply: SimulatorReply,
  kind: K,
): Extract<SimulatorReply, { kind: K }> {
  if (reply.kind === "invalid") throw new CircuitError(reply.diagnostics);
  if (reply.kind !== kind) throw new Error(`the simulator worker answered ${reply.kind}, not ${kind}`);
  return reply as Extract<SimulatorReply, { kind: K }>;
}

/**
 * Maps a device's calibration onto the simulator's Pauli noise. An approximation: each gate's error becomes
 * depolarizing noise, px = py = pz = e/3, with e the per-gate error weighted 3:1 toward two-qubit gates (they
 * dominate the error budget of transpiled circuits); readout error flips the measured bit, so it adds to px. The
 * simulator applies the noise after every operation, readout error included, so deep circuits come out noisier
 * than the device. Values are clamped to [0, 0.5]; undefined when the calibration gives no error at all.
 */
export function noiseFromCalibration(cal: {
  singleQubitError?: number;
  twoQubitError?: number;
  readoutError?: number;
}): Noise | undefined {
  const rate = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? Math.max(0, v) : undefined);
  const single = rate(cal.singleQubitError);
  const two = rate(cal.twoQubitError);
  const readout = rate(cal.readoutError) ?? 0;
  const gate = single !== undefined && two !== undefined ? 0.25 * single + 0.75 * two : (two ?? single ?? 0);
  if (gate === 0 && readout === 0) return undefined;
  const clamp = (p: number) => Math.min(0.5, Math.max(0, p));
  return { pauli: [clamp(gate / 3 + readout), clamp(gate / 3), clamp(gate / 3)] };
}
