import type { QuantumJob } from "../../crds/quantumjob.ts";
import { describeDevice, parseRunnerResult } from "../../quantum/runner-result.ts";
import { JobKind, PodKind } from "../../runtime/kinds.ts";
import type { KubeObject } from "../../runtime/objects.ts";
import { SITE_LABEL } from "../edgenode/controller.ts";
import type { Executor, Observation, Run } from "./execution.ts";

/** The operator's own image runs `nextgen-operator runner` unless a backend names another. */
export const DEFAULT_RUNNER_IMAGE = process.env.NEXTGEN_RUNNER_IMAGE ?? "ghcr.io/itechsmart/nextgen-operator:0.1.0";
const RUNNER_CONTAINER = "runner";
export const JOB_LABEL = "nextgen.itechsmart.io/quantumjob";

type BatchJob = KubeObject & {
  spec?: unknown;
  status?: { active?: number; conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> };
};
type Pod = KubeObject & {
  status?: {
    containerStatuses?: Array<{ name: string; state?: { terminated?: { exitCode: number; message?: string } } }>;
  };
};

/**
 * One name per attempt: creating it again (after a restart) finds the same Job instead of a second one. The uid
 * keeps two QuantumJobs whose names share a long prefix apart, within the 63 characters of the job-name label.
 */
function batchJobName(job: QuantumJob, attempt: number): string {
  return `${job.metadata.name.slice(0, 40)}-${(job.metadata.uid ?? "").slice(0, 8)}-run-${attempt}`;
}

function batchJob(run: Run, source: string): BatchJob {
  const { job, backend } = run;
  const exec = backend.spec.execution;
  const env = [
    { name: "NEXTGEN_CIRCUIT", value: source },
    { name: "NEXTGEN_SHOTS", value: String(job.spec.shots) },
    // The contract spells it as Aer does; placement sized the circuit for it.
    { name: "NEXTGEN_PRECISION", value: (exec.precision ?? "Double").toLowerCase() },
    ...(run.noise ? [{ name: "NEXTGEN_NOISE", value: JSON.stringify(run.noise) }] : []),
  ];
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name: batchJobName(job, run.attempt),
      namespace: job.metadata.namespace,
      labels: { [JOB_LABEL]: job.metadata.name, "app.kubernetes.io/managed-by": "nextgen-operator" },
    },
    spec: {
      // Retries are the QuantumJob's (with its backoff and attempts in status), not the Job's.
      backoffLimit: 0,
      ...(run.deadlineMs !== undefined ? { activeDeadlineSeconds: Math.max(1, Math.ceil(run.deadlineMs / 1000)) } : {}),
      template: {
        metadata: { labels: { [JOB_LABEL]: job.metadata.name } },
        spec: {
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          nodeSelector: { ...exec.nodeSelector, ...(run.site ? { [SITE_LABEL]: run.site } : {}) },
          ...(exec.tolerations?.length ? { tolerations: exec.tolerations } : {}),
          securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: RUNNER_CONTAINER,
              image: exec.image ?? DEFAULT_RUNNER_IMAGE,
              // The operator's image enters at its CLI: `runner` picks the command. Other images run their own
              // entrypoint unless the backend names a command.
              ...(exec.command ? { command: exec.command } : exec.image ? {} : { args: ["runner"] }),
              env,
              ...(exec.resources ? { resources: quantities(exec.resources) } : {}),
              terminationMessagePolicy: "FallbackToLogsOnError",
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
            },
          ],
        },
      },
    },
  };
}

/** Resource quantities as core/v1 types them (strings); the CRD also takes plain numbers such as `gpu: 1`. */
function quantities(r: NonNullable<Run["backend"]["spec"]["execution"]["resources"]>) {
  const strings = (m?: Record<string, string | number>) =>
    m && Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)]));
  return { requests: strings(r.requests), limits: strings(r.limits) };
}

/** What the runner wrote as its termination message, read from the Job's pod. */
async function runnerOutput(ctx: Parameters<Executor["observe"]>[0], job: QuantumJob, name: string) {
  const pods = await ctx.client.list<Pod>(PodKind, {
    namespace: job.metadata.namespace,
    labelSelector: `job-name=${name}`,
  });
  for (const pod of pods.items) {
    const terminated = pod.status?.containerStatuses?.find((c) => c.name === RUNNER_CONTAINER)?.state?.terminated;
    if (terminated) return parseRunnerResult(terminated.message ?? "");
  }
  return undefined;
}

/** Job mode: a batch/v1 Job per attempt, on the nodes of the backend's site, that runs the runner contract. */
export const batchJobExecutor: Executor = {
  async start(ctx, run, source) {
    const obj = await ctx.apply(JobKind, batchJob(run, source), { owner: run.job });
    return { jobRef: { name: obj.metadata.name } };
  },

  async observe(ctx, run): Promise<Observation> {
    const name = run.job.status?.jobRef?.name ?? batchJobName(run.job, run.attempt);
    const obj = ctx.cache.get<BatchJob>(JobKind, run.job.metadata.namespace, name);
    if (!obj)
      return {
        state: "Failed",
        reason: "JobDeleted",
        message: `Job ${name} disappeared before it finished.`,
        retryable: true,
      };
    const done = obj.status?.conditions?.find(
      (c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True",
    );
    if (!done) return { state: obj.status?.active ? "Running" : "Scheduled" };
    const output = await runnerOutput(ctx, run.job, name);
    if (output && "counts" in output)
      return {
        state: "Succeeded",
        shots: output.shots,
        counts: output.counts,
        distinct: output.distinct,
        ...(output.device ? { device: describeDevice(output.device) } : {}),
        ...(output.precision ? { precision: output.precision === "single" ? "Single" : "Double" } : {}),
      };
    if (output && "error" in output)
      return {
        state: "Failed",
        reason: output.error.reason,
        message: output.error.message,
        retryable: output.error.reason !== "InvalidCircuit" && output.error.reason !== "InvalidInput",
      };
    return {
      state: "Failed",
      reason: done.type === "Complete" ? "NoResult" : (done.reason ?? "JobFailed"),
      message:
        done.type === "Complete"
          ? `Job ${name} completed without a result in its termination message (see the runner contract).`
          : `Job ${name} failed: ${done.message ?? done.reason ?? "no reason given"}.`,
      retryable: done.reason !== "DeadlineExceeded",
    };
  },

  async cancel(ctx, job) {
    const name = job.status?.jobRef?.name;
    if (name) await ctx.client.delete(JobKind, job.metadata.namespace, name, { propagationPolicy: "Background" });
  },
};
