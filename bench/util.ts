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

/** The NODE_OPTIONS the image sets (Dockerfile), so benchmarks measure the operator as it is shipped. */
export function imageNodeOptions(): string {
  const m = /^ENV NODE_OPTIONS="([^"]*)"$/m.exec(readFileSync("Dockerfile", "utf8"));
  if (!m) throw new Error("the Dockerfile sets no NODE_OPTIONS");
  return m[1] as string;
}

/**
 * Starts the operator as the image runs it (compiled, no type stripping, the Dockerfile's NODE_OPTIONS unless
 * nodeOptions says otherwise) and waits until it is ready.
 */
export async function startImageOperator(
  cp: ControlPlane,
  opts: { args?: string[]; nodeOptions?: string; readyTimeoutMs?: number } = {},
): Promise<OperatorProcess> {
  const operator = await OperatorProcess.start({
    entry: "dist/cli/main.js",
    kubeconfig: cp.operatorKubeconfig,
    args: [...(opts.args ?? []), "--log-level", "info"],
    env: { NODE_OPTIONS: opts.nodeOptions ?? imageNodeOptions() },
  });
  await operator.waitReady(opts.readyTimeoutMs ?? 120_000);
  return operator;
}
