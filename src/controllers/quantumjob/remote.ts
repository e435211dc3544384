import { ProviderError } from "../../quantum/providers/provider.ts";
import type { ReconcileContext } from "../../runtime/controller.ts";
import { remoteAccess } from "../quantumbackend/remote.ts";
import type { QuantumJob } from "../../crds/quantumjob.ts";
import type { Executor, Observation, Run } from "./execution.ts";

/** Polling slows from every 2 s to every 30 s as a remote job waits: QPU queues are minutes to hours long. */
function pollAfterMs(run: Run, now: Date): number {
  const waited = run.job.status?.startTime ? now.getTime() - Date.parse(run.job.status.startTime) : 0;
  return Math.min(30_000, Math.max(2_000, Math.round(waited / 10)));
}

/** The backend's provider cannot be reached at all (no credentials, an invalid spec), as opposed to failing. */
export class NoAccessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NoAccessError";
  }
}

function provider(ctx: ReconcileContext, run: Pick<Run, "backend">) {
  const access = remoteAccess(run.backend, ctx.cache);
  if ("reason" in access) throw new NoAccessError(`${access.reason}: ${access.message}`);
  return access.provider;
}

/** The tag that identifies one attempt at the provider, so that a restarted operator finds it again. */
function remoteTag(job: QuantumJob, attempt: number): string {
  return `nextgen-${job.metadata.uid}-${attempt}`;
}

/** Remote mode: a provider's API. A job ID in status, or one found by its tag, is resumed, never resubmitted. */
export const remoteExecutor: Executor = {
  recordBeforeStart: true,

  async start(ctx, run, source) {
    const p = provider(ctx, run);
    const tag = remoteTag(run.job, run.attempt);
    const id = (await p.findByTag(tag)) ?? (await p.submit({ qasm: source, shots: run.job.spec.shots, tag }));
    return { remoteJobId: id };
  },

  async observe(ctx, run): Promise<Observation> {
    const id = run.job.status?.remoteJobId;
    if (!id) throw new Error("a remote run is observed only once its job ID is recorded");
    const p = provider(ctx, run);
    try {
      const s = await p.status(id);
      switch (s.state) {
        case "Queued":
          return { state: "Scheduled", requeueAfterMs: pollAfterMs(run, ctx.now) };
        case "Running":
          return { state: "Running", requeueAfterMs: pollAfterMs(run, ctx.now) };
        case "Cancelled":
          return {
            state: "Cancelled",
            message: `The provider cancelled job ${id}${s.message ? `: ${s.message}` : ""}.`,
          };
        case "Failed":
          return {
            state: "Failed",
            reason: "RemoteJobFailed",
            message: `Job ${id} failed at the provider${s.message ? `: ${s.message}` : ""}.`,
            retryable: true,
          };
        case "Completed": {
          const r = await p.results(id);
          return { state: "Succeeded", shots: r.shots, counts: r.counts };
        }
      }
    } catch (e) {
      if (e instanceof ProviderError && e.kind === "RateLimited")
        return { state: "Scheduled", requeueAfterMs: e.retryAfterMs ?? 30_000 };
      if (e instanceof ProviderError && e.kind === "NotFound")
        return { state: "Failed", reason: "RemoteJobLost", message: `The provider has no job ${id}.`, retryable: true };
      throw e;
    }
  },

  async cancel(ctx, job, backend) {
    const attempt = job.status?.attempts;
    if (!backend || !attempt) return;
    const p = provider(ctx, { backend });
    // A submission whose ID was never recorded (the operator stopped in between) is found by its tag.
    const id = job.status?.remoteJobId ?? (await p.findByTag(remoteTag(job, attempt)));
    if (!id) return;
    try {
      await p.cancel(id);
    } catch (e) {
      if (!(e instanceof ProviderError && e.kind === "NotFound")) throw e; // gone already: nothing to cancel
    }
  },
};
