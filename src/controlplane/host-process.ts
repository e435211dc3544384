import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { waitUntil } from "../runtime/wait.ts";

/*
 * Programs the tests run beside the control plane as host processes on loopback ports (Argo CD's components and
 * Redis, KEDA's operator): each started with its output kept for a failing test's message, and waited on until healthy.
 */

export const START_TIMEOUT_MS = 120_000;
const STOP_GRACE_MS = 10_000;
const OUTPUT_LINES = 200;

// Servers started by this process do not outlive it when it exits without stopping them.
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

/**
 * Starts a server that does not outlive this process: killed at its exit if not stopped before, and by the kernel
 * when this process dies without an exit (a signal, as when vitest ends its workers on Ctrl-C): the server runs
 * under util-linux's `setpriv --pdeathsig`, which sets its parent-death signal and execs it (same pid).
 */
export function spawnOwned(bin: string, args: string[], options: SpawnOptions): ChildProcess {
  const child = spawn("setpriv", ["--pdeathsig", "SIGKILL", "--", bin, ...args], options);
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/** SIGTERM, then SIGKILL if it has not exited after STOP_GRACE_MS. */
export async function terminate(child: ChildProcess): Promise<void> {
  // No pid: it never started, so there is no exit to wait for.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** A host process and the last lines of its output; followers see each line as it comes. */
export type Component = {
  name: string;
  child: ChildProcess;
  lines: string[];
  followers: Set<(line: string) => void>;
};

export function startComponent(
  components: Component[],
  name: string,
  bin: string,
  args: string[],
  env: Record<string, string>,
): Component {
  const child = spawnOwned(bin, args, {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const component: Component = { name, child, lines: [], followers: new Set() };
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on("line", (line) => {
      component.lines.push(line);
      if (component.lines.length > OUTPUT_LINES) component.lines.shift();
      for (const follower of component.followers) follower(line);
    });
  }
  components.push(component);
  return component;
}

/** Aborts when the component's process has exited, so that a wait on it fails at once with its output. */
export function exited(component: Component): AbortSignal {
  const gone = new AbortController();
  component.child.once("exit", () => gone.abort());
  return gone.signal;
}

/** Waits until the component answers /healthz on `port` (Argo CD serves it beside /metrics, KEDA on its probe port). */
export async function healthy(component: Component, metricsPort: number): Promise<void> {
  try {
    await waitUntil(
      `${component.name} /healthz`,
      () => fetch(`http://127.0.0.1:${metricsPort}/healthz`).then((res) => (void res.body?.cancel(), res.ok)),
      { timeoutMs: START_TIMEOUT_MS, intervalMs: 250, signal: exited(component) },
    );
  } catch (err) {
    throw new Error(
      `${component.name} did not start: ${(err as Error).message}; its output:\n${component.lines.join("\n")}`,
    );
  }
}

/**
 * A loopback port free now. Redis, Argo CD's components and KEDA take a port to listen on but do not say which one they
 * got when given 0, so one is chosen here: another process could take it in between, which start() reports.
 */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

export function mkdir(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}
