import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { waitUntil } from "../runtime/wait.ts";
import { killOnExit } from "./monitoring.ts";

/*
 * Programs the tests run beside the control plane as host processes on loopback ports (Argo CD's components and
 * Redis, KEDA's operator): each started with its output kept for a failing test's message, and waited on until healthy.
 */

export const START_TIMEOUT_MS = 120_000;
const OUTPUT_LINES = 200;

export type Component = { name: string; child: ChildProcess; lines: string[] };

export function startComponent(
  components: Component[],
  name: string,
  bin: string,
  args: string[],
  env: Record<string, string>,
): Component {
  const child = spawn(bin, args, {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  killOnExit(child);
  const component = { name, child, lines: [] as string[] };
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on("line", (line) => {
      component.lines.push(line);
      if (component.lines.length > OUTPUT_LINES) component.lines.shift();
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
