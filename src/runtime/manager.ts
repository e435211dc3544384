import { readFileSync } from "node:fs";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import type { TLSSocket } from "node:tls";
import { join } from "node:path";
import { Cache } from "./cache.ts";
import type { KubeClient } from "./client.ts";
import { Controller, type ControllerDefinition } from "./controller.ts";
import { EventRecorder } from "./events.ts";
import { Informer } from "./informer.ts";
import { type KindRef, kindKey } from "./kinds.ts";
import { DEFAULT_LEADER_TIMINGS, LeaderElector, type LeaderElectionConfig } from "./leader.ts";
import type { Logger } from "./log.ts";
import { DelegatedAuth, METRICS_PATH } from "./metrics-auth.ts";
import { RuntimeMetrics } from "./metrics.ts";
import type { KubeObject } from "./objects.ts";
import { selfSignedCertificate } from "./self-signed.ts";
import { PREFERRED_GROUPS, negotiatedGroup } from "./tls.ts";

export interface ManagerOptions {
  client: KubeClient;
  log: Logger;
  /** Namespaces whose namespaced objects are watched; undefined: all. */
  namespaces?: string[];
  /** "host:port" or ":port"; "0" turns the server off. */
  metricsAddress: string;
  /**
   * Metrics over HTTPS for authenticated and authorized readers only (TokenReview, SubjectAccessReview), as
   * kubebuilder scaffolds them; false serves them over plain HTTP to anyone who can connect.
   */
  metricsSecure?: boolean;
  /** tls.crt and tls.key to serve metrics with (a mounted Secret); default: a self-signed certificate. */
  metricsCertDir?: string;
  probeAddress: string;
  leaderElection?: Omit<LeaderElectionConfig, "leaseDurationMs" | "renewDeadlineMs" | "retryPeriodMs"> &
    Partial<typeof DEFAULT_LEADER_TIMINGS>;
  resyncMs?: number;
  /** Per-controller MaxConcurrentReconciles overrides, by controller name. */
  concurrency?: Record<string, number>;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/**
 * Drops the managedFields entries of other field managers before caching: only this operator's own entries are
 * read (to tell whether an apply would change anything), and the rest can be most of a small object's size.
 */
function keepOwnManagedFields(fieldManager: string) {
  return (obj: KubeObject) => {
    const m = obj.metadata.managedFields;
    if (m) obj.metadata.managedFields = m.filter((e) => e.manager === fieldManager);
  };
}

/** A server's certificate: tls.crt and tls.key from dir, else self-signed at start, as controller-runtime does. */
function servingCertificate(dir: string | undefined): { cert: string | Buffer; key: string | Buffer } {
  if (dir) return { cert: readFileSync(join(dir, "tls.crt")), key: readFileSync(join(dir, "tls.key")) };
  return selfSignedCertificate([hostname(), "localhost", "127.0.0.1"]);
}

export type StopReason = "signal" | "leadership-lost";

/**
 * Runs controllers over shared informers: caches on every replica, controllers only on the leader, metrics and
 * probes throughout; on stop, drains reconciles in flight, then releases the lease.
 */
export class Manager {
  readonly metrics = new RuntimeMetrics();
  readonly cache: Cache;
  private readonly opts: ManagerOptions;
  private readonly informers = new Map<string, Informer>();
  private readonly controllers: Controller[] = [];
  private readonly servers: Server[] = [];
  private elector: LeaderElector | undefined;
  private state: "starting" | "standby" | "leading" | "stopping" = "starting";
  private readonly addresses: Record<string, string> = {};
  private readonly endpoints: Array<{ name: string; address: string; handle: RequestHandler; certDir?: string }> = [];

  constructor(opts: ManagerOptions) {
    this.opts = opts;
    this.cache = new Cache(this.informers);
    opts.client.observer = (method, path, status) => {
      this.metrics.restRequests.inc({ method, code: String(status) });
      // Paths name objects, never their contents: a write's line says what changed without leaking key material.
      if (method !== "GET") opts.log.debug("api write", { method, path, code: status });
    };
    opts.client.handshakeObserver = (group, protocol) => {
      this.metrics.tlsHandshakes.inc({ peer: "kube-apiserver", group, protocol });
      opts.log.debug("tls connection to the API server", { group, protocol });
    };
  }

  /** The shared informer of a kind, created on first use; namespace pins it to one namespace. */
  informer(kind: KindRef, namespace?: string): Informer {
    let inf = this.informers.get(kindKey(kind));
    if (inf && namespace && inf.namespaces?.join() !== namespace) {
      throw new Error(
        `${kindKey(kind)} is watched in namespace ${namespace} and elsewhere; one informer serves a kind`,
      );
    }
    if (!inf) {
      inf = new Informer(this.opts.client, kind, {
        namespaces: namespace ? [namespace] : this.opts.namespaces,
        resyncMs: this.opts.resyncMs ?? 10 * 60_000,
        log: this.opts.log,
      });
      inf.addTransform(keepOwnManagedFields(this.opts.client.fieldManager));
      this.informers.set(kindKey(kind), inf);
    }
    return inf;
  }

  add(def: ControllerDefinition<never>): void {
    const d = def as unknown as ControllerDefinition;
    for (const k of [d.for, ...(d.owns ?? [])]) this.informer(k);
    for (const w of d.watches ?? []) this.informer(w.kind, w.namespace);
    const events = new EventRecorder(this.opts.client, `nextgen.itechsmart.io/${d.name}`, this.identity, this.opts.log);
    d.setup?.(this.cache, { events, registry: this.metrics.registry });
    this.controllers.push(
      new Controller(
        d,
        { cache: this.cache, client: this.opts.client, events, log: this.opts.log, metrics: this.metrics },
        this.opts.concurrency?.[d.name],
      ),
    );
  }

  /**
   * Serves another HTTPS endpoint on every replica, leader or not (e.g. a webhook receiver), as the metrics server
   * is served: tls.crt and tls.key from certDir (a mounted Secret), else self-signed; call before run.
   */
  serve(name: string, address: string, handle: RequestHandler, certDir?: string): void {
    this.endpoints.push({ name, address, handle, certDir });
  }

  get identity(): string {
    return this.opts.leaderElection?.identity ?? "nextgen-operator";
  }

  get cachesSynced(): boolean {
    return [...this.informers.values()].every((i) => i.synced);
  }

  /** Bound addresses of the servers (metrics, probes and opts.servers by name), once listening. */
  address(server: string): string | undefined {
    return this.addresses[server];
  }

  /** Runs until signal aborts or leadership is lost; everything started is stopped before it returns. */
  async run(signal: AbortSignal): Promise<StopReason> {
    const log = this.opts.log;
    try {
      const metricsTls = this.opts.metricsSecure === false ? undefined : servingCertificate(this.opts.metricsCertDir);
      await this.listen("metrics", this.opts.metricsAddress, this.metricsHandler(), metricsTls);
      await this.listen("probes", this.opts.probeAddress, async (req, res) => {
        const path = (req.url ?? "").split("?")[0];
        if (path === "/healthz") return void res.end("ok");
        if (path !== "/readyz") return void ((res.statusCode = 404), res.end());
        const ready = this.cachesSynced && (this.state === "standby" || this.state === "leading");
        res.statusCode = ready ? 200 : 503;
        res.end(JSON.stringify({ cachesSynced: this.cachesSynced, state: this.state }));
      });
      for (const e of this.endpoints) await this.listen(e.name, e.address, e.handle, servingCertificate(e.certDir));
      for (const inf of this.informers.values()) inf.start();
      await Promise.all([...this.informers.values()].map((i) => i.waitForSync(signal)));
      log.info("caches synced", { kinds: [...this.informers.keys()] });

      const le = this.opts.leaderElection;
      if (le) {
        this.elector = new LeaderElector(this.opts.client, { ...DEFAULT_LEADER_TIMINGS, ...le }, log);
        this.state = "standby";
        await this.elector.acquire(signal);
        this.metrics.leaderElection.set({ name: le.name }, 1);
      }
      this.state = "leading";
      for (const c of this.controllers) c.start();
      log.info("controllers started", { controllers: this.controllers.map((c) => c.def.name) });

      if (this.elector) {
        await this.elector.holdUntilLost(signal);
        if (!signal.aborted) return "leadership-lost";
      } else {
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      }
      return "signal";
    } catch (e) {
      if (signal.aborted) return "signal";
      throw e;
    } finally {
      await this.shutdown();
    }
  }

  private async shutdown(): Promise<void> {
    this.state = "stopping";
    await Promise.all(this.controllers.map((c) => c.stop()));
    await this.elector?.release();
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    await Promise.all(
      this.servers.map((s) => {
        s.closeAllConnections(); // keep-alive scrapes and probes would hold close() open
        return new Promise((r) => s.close(r));
      }),
    );
    this.opts.log.info("stopped");
  }

  /** /metrics, behind TokenReview and SubjectAccessReview unless metricsSecure is false. */
  private metricsHandler(): RequestHandler {
    const auth = this.opts.metricsSecure === false ? undefined : new DelegatedAuth(this.opts.client);
    return async (req, res) => {
      if ((req.url ?? "").split("?")[0] !== METRICS_PATH) return void ((res.statusCode = 404), res.end());
      const verdict = auth && (await auth.check(req));
      if (verdict && verdict.status !== 200) {
        if (verdict.status === 500) this.opts.log.error(verdict.message, { error: verdict.cause });
        else this.opts.log.debug("metrics request refused", { status: verdict.status, reason: verdict.message });
        res.statusCode = verdict.status;
        return void res.end(`${verdict.message}\n`);
      }
      res.setHeader("content-type", this.metrics.registry.contentType);
      res.end(await this.metrics.registry.metrics());
    };
  }

  private async listen(
    name: string,
    address: string,
    handle: RequestHandler,
    tls?: { cert: string | Buffer; key: string | Buffer },
  ): Promise<void> {
    if (address === "0") return;
    const i = address.lastIndexOf(":");
    const host = address.slice(0, i) || "0.0.0.0";
    const port = Number(address.slice(i + 1));
    const serve = (req: IncomingMessage, res: ServerResponse) => {
      handle(req, res).catch((e) => {
        res.statusCode = 500;
        res.end(String(e));
      });
    };
    // TLS 1.2 at least (as controller-runtime's servers), the hybrid post-quantum group preferred.
    const server = tls
      ? createTlsServer({ ...tls, minVersion: "TLSv1.2", ecdhCurve: PREFERRED_GROUPS }, serve)
      : createServer(serve);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    // Which key exchange each client's connection negotiated: a metric by server, a log line by client address.
    server.on("secureConnection", (socket: TLSSocket) => {
      const group = negotiatedGroup(socket);
      const protocol = socket.getProtocol() ?? "none";
      this.metrics.tlsHandshakes.inc({ peer: `${name} client`, group, protocol });
      this.opts.log.debug(`tls connection to the ${name} server`, { client: socket.remoteAddress, group, protocol });
    });
    this.servers.push(server);
    const a = server.address() as AddressInfo;
    this.addresses[name] = `${a.address}:${a.port}`;
    this.opts.log.info(`${name} server listening`, { address: this.addresses[name] });
  }
}
