import { availableParallelism } from "node:os";
import type { CircuitCounts } from "../../quantum/simulation.ts";
import { CircuitError, Simulator } from "../../quantum/simulator.ts";
import type { Executor, Observation } from "./execution.ts";

/**
 * Runs in this process by job key and attempt; an outcome waits here until the job's status in the cache shows
 * it (a status write that failed is made again from it).
 */
const runs = new Map<string, { abort: AbortController; outcome?: Observation }>();
let simulator: Simulator | undefined;
let checker: Simulator | undefined;
let enqueue: ((key: string) => void) | undefined;

/** The simulator's worker threads for runs: one core left to the operator's main thread, between 2 and 8. */
export const EMBEDDED_RUN_THREADS = Math.max(2, Math.min(8, availableParallelism() - 1));

/**
 * Starts the simulator's worker threads for the controller's lifetime: runs get their own threads, and counting a
 * new circuit (a compile and the compiler's circuit) gets one of its own, so it never waits behind an hour-long run. Answers the
 * function that stops them, aborting what still runs.
 */
export function startEmbedded(enqueueKey: (key: string) => void): () => Promise<void> {
  enqueue = enqueueKey;
  const sim = (simulator = new Simulator({ threads: EMBEDDED_RUN_THREADS }));
  const check = (checker = new Simulator({ threads: 1 }));
  return async () => {
    for (const run of runs.values()) run.abort.abort();
    runs.clear();
    await Promise.all([sim.close(), check.close()]);
  };
}

/** The QDK compiler's counts of a circuit, from a worker thread; CircuitError when it does not compile or run. */
export function countCircuit(source: string): Promise<CircuitCounts> {
  if (!checker) throw new Error("the embedded simulator is not running");
  // Counting takes a second or less; one that hangs must not hold up every other job's check.
  return checker.count(source, { timeoutMs: CHECK_TIMEOUT_MS });
}

const CHECK_TIMEOUT_MS = 30_000;
const runId = (key: string, attempt: number) => `${key}#${attempt}`;

function outcomeOf(e: unknown): Observation {
  if (e instanceof CircuitError)
    return { state: "Failed", reason: "InvalidCircuit", message: e.message, retryable: false };
  const name = e instanceof Error ? e.name : "";
  if (name === "TimeoutError")
    return {
      state: "Failed",
      reason: "DeadlineExceeded",
      message: "The run passed activeDeadlineSeconds.",
      retryable: false,
    };
  if (name === "AbortError") return { state: "Cancelled", message: "The run was cancelled." };
  return {
    state: "Failed",
    reason: "SimulationFailed",
    message: e instanceof Error ? e.message : String(e),
    retryable: true,
  };
}

/** Embedded mode: the QDK simulator in the operator's worker threads. */
export const embeddedExecutor: Executor = {
  async start(ctx, run, source) {
    if (!simulator) throw new Error("the embedded simulator is not running");
    const id = runId(ctx.key, run.attempt);
    const existing = runs.get(id);
    if (existing) {
      // Started before, its status write lost: if it has ended meanwhile, the job is looked at again to record it.
      if (existing.outcome) enqueue?.(ctx.key);
      return { running: true };
    }
    const entry: { abort: AbortController; outcome?: Observation } = { abort: new AbortController() };
    runs.set(id, entry);
    const key = ctx.key;
    simulator
      .run(
        { source, shots: run.job.spec.shots, noise: run.noise },
        { signal: entry.abort.signal, timeoutMs: run.deadlineMs },
      )
      .then(
        (r): Observation => ({
          state: "Succeeded",
          shots: r.shots,
          counts: r.counts,
          failedShots: r.failedShots,
          shotError: r.shotError,
        }),
        outcomeOf,
      )
      .then((outcome) => {
        entry.outcome = outcome;
        if (runs.get(id) === entry) enqueue?.(key);
      });
    return { running: true };
  },

  async observe(ctx, run) {
    const entry = runs.get(runId(ctx.key, run.attempt));
    // The run lived in a process that is gone. Running it again costs an attempt, so a circuit that brings the
    // operator down cannot do so forever.
    if (!entry)
      return {
        state: "Failed",
        reason: "Interrupted",
        message: "The operator restarted while the circuit ran inside it.",
        retryable: true,
      };
    return entry.outcome ?? { state: "Running" };
  },

  async cancel(ctx) {
    embeddedExecutor.forget?.(ctx.key);
  },

  /** Aborts whatever still runs for the job (a finished run has nothing to abort) and drops its outcomes. */
  forget(key) {
    let stopped = false;
    for (const [id, entry] of runs)
      if (id.startsWith(`${key}#`)) {
        stopped ||= entry.outcome === undefined;
        entry.abort.abort();
        runs.delete(id);
      }
    return stopped;
  },
};
