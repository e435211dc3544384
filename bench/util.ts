import { readFileSync } from "node:fs";

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
