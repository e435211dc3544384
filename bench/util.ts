import { readFileSync } from "node:fs";
import type { ControlPlane } from "../src/controlplane/control-plane.ts";
import { OperatorProcess } from "../src/controlplane/operator-process.ts";

/** Runs work(0..n-1) with at most concurrency in flight. */
export async function inParallel(n: number, concurrency: number, work: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await work(next++);
    }),
  );
}

/** A variable the image sets (Dockerfile ENV), so benchmarks measure the operator as it is shipped. */
function imageEnv(name: string): string {
  const m = new RegExp(`^ENV ${name}="?([^"\n]*)"?$`, "m").exec(readFileSync("Dockerfile", "utf8"));
  if (!m) throw new Error(`the Dockerfile sets no ${name}`);
  return m[1] as string;
}

/** The NODE_OPTIONS the image sets (Dockerfile). */
export function imageNodeOptions(): string {
  return imageEnv("NODE_OPTIONS");
}

/**
 * Starts the operator as the image runs it (compiled, no type stripping, the Dockerfile's NODE_OPTIONS unless
 * nodeOptions says otherwise, and its malloc arenas) and waits until it is ready.
 */
export async function startImageOperator(
  cp: ControlPlane,
  opts: { args?: string[]; nodeOptions?: string; readyTimeoutMs?: number } = {},
): Promise<OperatorProcess> {
  const operator = await OperatorProcess.start({
    entry: "dist/cli/main.js",
    kubeconfig: cp.operatorKubeconfig,
    metricsKubeconfig: cp.adminKubeconfig,
    args: [...(opts.args ?? []), "--log-level", "info"],
    env: { NODE_OPTIONS: opts.nodeOptions ?? imageNodeOptions(), MALLOC_ARENA_MAX: imageEnv("MALLOC_ARENA_MAX") },
  });
  await operator.waitReady(opts.readyTimeoutMs ?? 120_000);
  return operator;
}
