import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import { once } from "node:events";
import { request } from "node:https";
import { join } from "node:path";
import { fromFiles } from "../runtime/kubeconfig.ts";
import { waitUntil } from "../runtime/wait.ts";

const MAIN = join(import.meta.dirname, "..", "cli", `main${import.meta.filename.endsWith(".ts") ? ".ts" : ".js"}`);

// Operators started by this process never outlive it, whatever way it exits.
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

/** The operator as a real process (`nextgen-operator run`), as the demo and the integration tests run it. */
export class OperatorProcess {
  readonly child: ChildProcess;
  /** host:port of every server the operator logged as listening ("metrics", "probes", "alert webhook"), by name. */
  readonly addresses: Record<string, string> = {};
  /** The bearer token scrape() sends by default: of an identity allowed `get` on /metrics. */
  metricsToken: string | undefined;
  /** Set once stop() was asked for: an exit after that was wanted. */
  stopRequested = false;
  /** "METHOD path code" of every API write the operator logged (at --log-level debug), in order. */
  readonly writeLog: string[] = [];
  private output = "";
  private exited: Promise<number | null>;

  private constructor(child: ChildProcess, logFile?: string) {
    this.child = child;
    const log = logFile ? createWriteStream(logFile, { flags: "a" }) : undefined;
    const partial = { stdout: "", stderr: "" };
    const keep = (stream: keyof typeof partial) => (chunk: Buffer) => {
      // Kept bounded: tests read recent lines; the log file has everything.
      const text = chunk.toString();
      this.output = (this.output + text).slice(-1_000_000);
      log?.write(chunk);
      const lines = (partial[stream] + text).split("\n");
      partial[stream] = lines.pop() ?? "";
      for (const line of lines) {
        if (line.includes('"api write"')) {
          const w = JSON.parse(line) as { method: string; path: string; code: number };
          this.writeLog.push(`${w.method} ${w.path} ${w.code}`);
        } else if (line.includes(' server listening"')) {
          const entry = JSON.parse(line) as { msg: string; address: string };
          this.addresses[entry.msg.replace(/ server listening$/, "")] = entry.address;
        }
      }
    };
    child.stdout?.on("data", keep("stdout"));
    child.stderr?.on("data", keep("stderr"));
    live.add(child);
    this.exited = once(child, "exit").then(([code]) => {
      live.delete(child);
      log?.end();
      return code as number | null;
    });
  }

  /**
   * entry: the CLI module to run (default: this checkout's, as sources or compiled alike); node: the Node binary
   * (default: this one); wrapper: a command that execs the one it is given after its own arguments (a sandbox), so
   * that the operator keeps the child's pid.
   */
  static async start(opts: {
    entry?: string;
    node?: string;
    kubeconfig: string;
    args?: string[];
    env?: NodeJS.ProcessEnv;
    logFile?: string;
    wrapper?: string[];
    /** Whose token scrape() sends: a kubeconfig of an identity allowed `get` on /metrics (an admin's). */
    metricsKubeconfig?: string;
  }): Promise<OperatorProcess> {
    const [command, ...wrapperArgs] = [...(opts.wrapper ?? []), opts.node ?? process.execPath];
    // The operator binds port 0 and logs where it listens: ports chosen here and bound there could be taken in
    // between by anything else on the machine.
    const child = spawn(
      command as string,
      [
        ...wrapperArgs,
        opts.entry ?? MAIN,
        "run",
        "--kubeconfig",
        opts.kubeconfig,
        "--metrics-bind-address",
        "127.0.0.1:0",
        "--health-probe-bind-address",
        "127.0.0.1:0",
        ...(opts.args ?? []),
      ],
      { env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    const op = new OperatorProcess(child, opts.logFile);
    if (opts.metricsKubeconfig) {
      const { authorization } = (await fromFiles([opts.metricsKubeconfig]).credentials()).headers;
      op.metricsToken = authorization?.replace(/^Bearer /, "");
    }
    await waitUntil(
      "the operator's metrics and probe servers to listen",
      () => {
        if (child.exitCode !== null)
          throw new Error(`operator exited with ${child.exitCode}:\n${op.output.slice(-4000)}`);
        return op.addresses.metrics !== undefined && op.addresses.probes !== undefined;
      },
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    return op;
  }

  get metricsUrl(): string {
    return `https://${this.addresses.metrics}/metrics`;
  }

  /**
   * GET /metrics with a bearer token (default metricsToken; none: anonymous), as Prometheus' ServiceMonitor scrapes:
   * over TLS, the operator's self-signed certificate not verified.
   */
  scrape(token: string | undefined = this.metricsToken): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const headers = token ? { authorization: `Bearer ${token}` } : undefined;
      // A connection of its own each time (no agent): a kept-alive one could be one a fault under test cut.
      request(this.metricsUrl, { headers, rejectUnauthorized: false, agent: false, timeout: 30_000 }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body })).on("error", reject);
      })
        .on("timeout", function (this: ReturnType<typeof request>) {
          this.destroy(new Error("no answer from /metrics within 30 s"));
        })
        .on("error", reject)
        .end();
    });
  }

  /** The metrics text, read with metricsToken; an error unless the operator answered 200. */
  async metricsText(): Promise<string> {
    const { status, body } = await this.scrape();
    if (status !== 200) throw new Error(`GET ${this.metricsUrl}: ${status} ${body.trim()}`);
    return body;
  }

  get probeUrl(): string {
    return `http://${this.addresses.probes}`;
  }

  get logs(): string {
    return this.output;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  async readyz(): Promise<{ ok: boolean; body: string }> {
    const res = await fetch(`${this.probeUrl}/readyz`);
    return { ok: res.ok, body: await res.text() };
  }

  /** The manager's state as /readyz reports it: starting, standby, leading or stopping. */
  async state(): Promise<string> {
    return JSON.parse((await this.readyz()).body).state;
  }

  async waitReady(timeoutMs = 60_000): Promise<void> {
    await waitUntil(
      "the operator's /readyz",
      async () => {
        if (this.child.exitCode !== null)
          throw new Error(`operator exited with ${this.child.exitCode}:\n${this.output.slice(-4000)}`);
        return (await this.readyz()).ok;
      },
      { timeoutMs, intervalMs: 200 },
    );
  }

  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const text = await this.metricsText();
    let sum = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith(name)) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const got = Object.fromEntries([...(m[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
      if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[4]);
    }
    return sum;
  }

  /** API requests that write (every verb but GET), from the operator's rest_client_requests_total. */
  async apiWrites(): Promise<number> {
    let n = 0;
    for (const method of ["POST", "PUT", "PATCH", "DELETE"])
      n += await this.metric("rest_client_requests_total", { method });
    return n;
  }

  /** The process's resident set (VmRSS) or its peak (VmHWM), in MB. */
  rssMb(field: "VmRSS" | "VmHWM"): number {
    return (
      Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${this.pid}/status`, "utf8"))?.[1]) / 1024
    );
  }

  /** Sends signal and waits for the exit code (SIGKILL after timeoutMs). */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 30_000): Promise<number | null> {
    this.stopRequested = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  waitExit(): Promise<number | null> {
    return this.exited;
  }
}
