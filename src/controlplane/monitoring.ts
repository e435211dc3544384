import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { dump } from "js-yaml";
import { waitUntil } from "../runtime/wait.ts";
import { ensureTool, type ToolName } from "./assets.ts";
import { spawnOwned, terminate } from "./host-process.ts";

/*
 * A real Prometheus and a real Alertmanager (built from hack/monitoring), for the tests and the demo: each a child
 * process on a loopback port, with its files in a temporary folder, and timings of seconds rather than minutes.
 */

const START_TIMEOUT_MS = 60_000;
const OUTPUT_LINES = 50;

/**
 * A static scrape job as a ServiceMonitor's endpoint becomes one: `labels` are the target labels the Prometheus
 * Operator attaches (namespace, pod, container, service, endpoint: the exporter's own), and with `honorLabels` false
 * (the default, as in Prometheus) an exporter's label of the same name is kept as `exported_<name>`.
 */
export type ScrapeJob = {
  targets: string[];
  labels?: Record<string, string>;
  honorLabels?: boolean;
  /** Scraped over HTTPS sending it, as the operator's ServiceMonitor scrapes (its certificate not verified). */
  bearerToken?: string;
};

export type PrometheusConfig = {
  /**
   * Scrape jobs by job name, each listing the host:port of its targets (or a ScrapeJob); scraped every second at
   * /metrics.
   */
  scrapeJobs?: Record<string, string[] | ScrapeJob>;
  /**
   * Scrape jobs by job name that find their targets as a ServiceMonitor does: the endpoints of a Service's named port,
   * discovered through the API server (pod IPs, which this machine must route to); a bearer token as above.
   */
  serviceJobs?: Record<
    string,
    { kubeconfig: string; namespace: string; service: string; port: string; bearerToken?: string }
  >;
  /** The content of each rule file (Prometheus' YAML rule groups); evaluated every second. */
  ruleFiles?: string[];
  /** Where Prometheus sends its alerts, firing and resolved: an Alertmanager's URL. */
  alertmanagerUrl?: string;
};

/** One series of an instant vector. */
export type Sample = { labels: Record<string, string>; value: number };

/** Prometheus scraping `scrapeJobs`, evaluating `ruleFiles` and alerting `alertmanagerUrl`, every second. */
export class Prometheus {
  readonly url: string;
  private readonly server: ServerProcess;

  private constructor(server: ServerProcess) {
    this.server = server;
    this.url = server.url;
  }

  static async start(config: PrometheusConfig, log: (line: string) => void = () => {}): Promise<Prometheus> {
    return new Prometheus(
      await ServerProcess.start("prometheus", log, (dir) => {
        writePrometheusConfig(dir, config);
        return [
          `--config.file=${join(dir, "prometheus.yml")}`,
          `--storage.tsdb.path=${join(dir, "data")}`,
          // POST /-/reload: reconfigure().
          "--web.enable-lifecycle",
        ];
      }),
    );
  }

  /** Replaces the configuration, e.g. to add scrape targets; resolves once Prometheus has applied it. */
  async reconfigure(config: PrometheusConfig): Promise<void> {
    writePrometheusConfig(this.server.dir, config);
    // Prometheus answers once the reload is done, 500 with the reason when the configuration is refused.
    const res = await fetch(`${this.url}/-/reload`, { method: "POST" });
    if (!res.ok) throw new Error(`Prometheus refused its new configuration (${res.status}): ${await res.text()}`);
  }

  /** The instant vector `promql` evaluates to now. */
  async query(promql: string): Promise<Sample[]> {
    const res = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    if (body.status !== "success") throw new Error(`Prometheus query ${promql}: ${body.error}`);
    if (body.data?.resultType !== "vector") {
      throw new Error(`Prometheus query ${promql} gave a ${body.data?.resultType}, not an instant vector`);
    }
    return body.data.result.map((s) => ({ labels: s.metric, value: Number(s.value[1]) }));
  }

  /** The last lines Prometheus wrote. */
  output(): string {
    return this.server.output();
  }

  async stop(): Promise<void> {
    await this.server.stop();
  }
}

/** HTTPS with a bearer token, the target's certificate not verified (the operator's is self-signed). */
const withToken = (token: string) => ({
  scheme: "https",
  authorization: { credentials: token },
  tls_config: { insecure_skip_verify: true },
});

// Rule files go in a folder of their own, rewritten whole, so that a reconfiguration drops the rules it omits.
function writePrometheusConfig(dir: string, config: PrometheusConfig): void {
  const rulesDir = join(dir, "rules");
  rmSync(rulesDir, { recursive: true, force: true });
  mkdirSync(rulesDir);
  const ruleFiles = (config.ruleFiles ?? []).map((content, i) => {
    const file = join(rulesDir, `${i}.yml`);
    writeFileSync(file, content);
    return file;
  });
  const alertmanager = config.alertmanagerUrl ? new URL(config.alertmanagerUrl) : undefined;
  const prometheusYml = {
    // The scrape timeout follows the interval down.
    global: { scrape_interval: "1s", evaluation_interval: "1s" },
    scrape_configs: [
      ...Object.entries(config.scrapeJobs ?? {}).map(([job, targets]) => {
        const {
          targets: hosts,
          labels,
          honorLabels = false,
          bearerToken,
        }: ScrapeJob = Array.isArray(targets) ? { targets } : targets;
        return {
          job_name: job,
          honor_labels: honorLabels,
          ...(bearerToken && withToken(bearerToken)),
          static_configs: [{ targets: hosts, ...(labels && { labels }) }],
        };
      }),
      ...Object.entries(config.serviceJobs ?? {}).map(
        ([job, { kubeconfig, namespace, service, port, bearerToken }]) => ({
          job_name: job,
          ...(bearerToken && withToken(bearerToken)),
          kubernetes_sd_configs: [
            { role: "endpoints", kubeconfig_file: kubeconfig, namespaces: { names: [namespace] } },
          ],
          relabel_configs: [
            { source_labels: ["__meta_kubernetes_service_name"], regex: service, action: "keep" },
            { source_labels: ["__meta_kubernetes_endpoint_port_name"], regex: port, action: "keep" },
            { source_labels: ["__meta_kubernetes_pod_name"], target_label: "pod" },
          ],
        }),
      ),
    ],
    rule_files: ruleFiles,
    ...(alertmanager && {
      alerting: {
        alertmanagers: [
          {
            scheme: alertmanager.protocol.slice(0, -1),
            path_prefix: alertmanager.pathname,
            static_configs: [{ targets: [alertmanager.host] }],
          },
        ],
      },
    }),
  };
  writeFileSync(join(dir, "prometheus.yml"), dump(prometheusYml));
}

export type AlertmanagerConfig = {
  /** Where every notification goes, firing and resolved: Alertmanager's webhook (payload version 4). */
  webhookUrl: string;
  /** Sent with each notification as `Authorization: Bearer <token>`. */
  bearerToken: string;
};

/** Alertmanager posting each alert to one webhook as soon as it fires or resolves. */
export class Alertmanager {
  readonly url: string;
  private readonly server: ServerProcess;

  private constructor(server: ServerProcess) {
    this.server = server;
    this.url = server.url;
  }

  static async start(config: AlertmanagerConfig, log: (line: string) => void = () => {}): Promise<Alertmanager> {
    return new Alertmanager(
      await ServerProcess.start("alertmanager", log, (dir) => {
        // Read from a file, so the token is in no configuration Alertmanager shows (GET /api/v2/status).
        const tokenFile = join(dir, "webhook-token");
        writeFileSync(tokenFile, config.bearerToken, { mode: 0o600 });
        const alertmanagerYml = {
          route: {
            receiver: "webhook",
            // Each alert a group of its own, notified a second after it arrives and whenever it changes; repeated
            // unchanged only after an hour, so a test sees one notification per change.
            group_by: ["..."],
            group_wait: "1s",
            group_interval: "1s",
            repeat_interval: "1h",
          },
          receivers: [
            {
              name: "webhook",
              webhook_configs: [
                {
                  url: config.webhookUrl,
                  send_resolved: true,
                  // The operator's webhook serves HTTPS with a self-signed certificate unless given one.
                  http_config: {
                    authorization: { type: "Bearer", credentials_file: tokenFile },
                    tls_config: { insecure_skip_verify: true },
                  },
                },
              ],
            },
          ],
        };
        writeFileSync(join(dir, "alertmanager.yml"), dump(alertmanagerYml));
        return [
          `--config.file=${join(dir, "alertmanager.yml")}`,
          `--storage.path=${join(dir, "data")}`,
          // No gossip: a single Alertmanager, which would otherwise also listen on 0.0.0.0:9094.
          "--cluster.listen-address=",
        ];
      }),
    );
  }

  /** The last lines Alertmanager wrote. */
  output(): string {
    return this.server.output();
  }

  async stop(): Promise<void> {
    await this.server.stop();
  }
}

/**
 * A Prometheus project's server as a child process in a temporary folder, removed when it stops. It binds a port the
 * OS chooses and logs where it listens (a port chosen here and bound there could be taken in between); it is started
 * once it answers /-/ready.
 */
class ServerProcess {
  readonly url: string;
  readonly dir: string;
  private readonly child: ChildProcess;
  private readonly lines: string[];

  private constructor(child: ChildProcess, url: string, dir: string, lines: string[]) {
    this.child = child;
    this.url = url;
    this.dir = dir;
    this.lines = lines;
  }

  /** `configure` writes the server's files into its folder and answers its arguments. */
  static async start(
    name: ToolName,
    log: (line: string) => void,
    configure: (dir: string) => string[],
  ): Promise<ServerProcess> {
    const bin = await ensureTool(name, log);
    const dir = mkdtempSync(join(tmpdir(), `nextgen-${name}-`));
    const args = [...configure(dir), "--web.listen-address=127.0.0.1:0", "--log.format=json"];
    const child = spawnOwned(bin, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    // "close" comes after the last line of output, which the error below should include.
    const closed = new AbortController();
    child.once("close", () => closed.abort());
    const lines: string[] = [];
    let address: string | undefined;
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => {
        lines.push(line);
        if (lines.length > OUTPUT_LINES) lines.shift();
        address ??= listeningAddress(line);
      });
    }
    try {
      await once(child, "spawn");
      const url = `http://${await waitUntil(`${name} to listen`, () => address, {
        timeoutMs: START_TIMEOUT_MS,
        signal: closed.signal,
      })}`;
      await waitUntil(
        `${name} ${url}/-/ready`,
        () => fetch(`${url}/-/ready`).then((res) => (void res.body?.cancel(), res.ok)),
        { timeoutMs: START_TIMEOUT_MS, signal: closed.signal },
      );
      log(`${name} ready at ${url}`);
      return new ServerProcess(child, url, dir, lines);
    } catch (err) {
      await terminate(child);
      rmSync(dir, { recursive: true, force: true });
      const exit = child.exitCode ?? child.signalCode;
      const reason = exit !== null ? `exited (${exit})` : err instanceof Error ? err.message : String(err);
      throw new Error(`${name} did not start: ${reason}; its last output:\n${lines.join("\n")}`);
    }
  }

  output(): string {
    return this.lines.join("\n");
  }

  async stop(): Promise<void> {
    await terminate(this.child);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The address in the "Listening on" line the Prometheus projects' web servers (exporter-toolkit) log. */
function listeningAddress(line: string): string | undefined {
  try {
    const entry = JSON.parse(line) as { msg?: string; address?: string };
    return entry.msg === "Listening on" ? entry.address : undefined;
  } catch {
    return undefined; // not a log entry: a panic's trace, say
  }
}
