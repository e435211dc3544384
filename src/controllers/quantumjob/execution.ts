import type { QuantumBackend } from "../../crds/quantumbackend.ts";
import type { QuantumJob } from "../../crds/quantumjob.ts";
import type { Precision } from "../../quantum/placement.ts";
import type { Noise } from "../../quantum/simulation.ts";
import type { ReconcileContext } from "../../runtime/controller.ts";

/** One attempt at running a job's circuit on a backend. */
export interface Run {
  job: QuantumJob;
  backend: QuantumBackend;
  attempt: number;
  noise?: Noise;
  site?: string;
  /** Milliseconds left of spec.activeDeadlineSeconds, if set. */
  deadlineMs?: number;
}

/** What a reconcile learns about a run in flight. */
export type Observation =
  | { state: "Scheduled" | "Running"; requeueAfterMs?: number }
  | {
      state: "Succeeded";
      shots: number;
      counts: Record<string, number>;
      /** Distinct bitstrings, when counts holds only the most frequent of them. */
      distinct?: number;
      failedShots?: number;
      shotError?: string;
      /** Job mode: the device the runner reported, as describeDevice writes it, and its precision. */
      device?: string;
      precision?: Precision;
    }
  | { state: "Failed"; reason: string; message: string; retryable: boolean }
  | { state: "Cancelled"; message: string };

/** What start records in status so that a restarted operator resumes the run instead of starting another. */
export interface RunReference {
  /** The run began at once (in-process): the job is Running, not waiting to be picked up. */
  running?: boolean;
  remoteJobId?: string;
  jobRef?: { name: string };
}

/** How one execution mode runs circuits: start once, observe until finished, cancel on deletion. */
export interface Executor {
  /**
   * The run outlives the operator where only this backend can find it again (a provider's job, billed): its start
   * (backend and attempt) is recorded in status, with a finalizer to cancel it, before it happens. The other modes
   * start at once: an embedded run dies with the process, and a batch Job is the QuantumJob's child, collected
   * with it.
   */
  recordBeforeStart?: true;
  start(ctx: ReconcileContext, run: Run, source: string): Promise<RunReference>;
  observe(ctx: ReconcileContext, run: Run): Promise<Observation>;
  cancel(ctx: ReconcileContext, job: QuantumJob, backend: QuantumBackend | undefined): Promise<void>;
  /**
   * Drops what the executor holds for a job that is finished (its outcome is in status now) or gone; answers
   * whether a run was still in flight (and is now stopped).
   */
  forget?(key: string): boolean;
}
