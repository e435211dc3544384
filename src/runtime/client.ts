import { readFileSync } from "node:fs";
import { type IncomingMessage, request as httpRequest } from "node:http";
import { Agent, request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { type KindRef, PodKind, apiVersionOf, resourcePath } from "./kinds.ts";
import { type Credentials, type KubeConfig, loadKubeConfig } from "./kubeconfig.ts";
import type { KubeObject } from "./objects.ts";
import { PREFERRED_GROUPS, negotiatedGroup } from "./tls.ts";

/** What every request says it is: `nextgen-operator/<version>`, as client-go sends `<binary>/<version>`. */
export const USER_AGENT = `nextgen-operator/${
  (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version
}`;

/**
 * How long a connection may stay silent before TCP probes it: the kernel then sends a probe a second (libuv's
 * interval) and gives up after ten unanswered, so a watch whose connection died without a reset (a partition that
 * drops packets, a NAT that forgot it) fails within about 25 s and the informer starts another, instead of waiting
 * out the watch's timeout (5–10 min). client-go's dialer uses 30 s.
 */
export const KEEPALIVE_IDLE_MS = 15_000;

/** An error answered by the API server, carrying its metav1.Status. */
export class ApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.reason = reason;
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof ApiError && e.status === 404;
export const isConflict = (e: unknown): boolean => e instanceof ApiError && e.status === 409;
export const isGone = (e: unknown): boolean => e instanceof ApiError && e.status === 410;

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

export interface ObjectList<T> {
  items: T[];
  metadata: { resourceVersion: string; continue?: string };
}

export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

export type PatchType = "merge" | "json" | "apply";
const patchContentType: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  apply: "application/apply-patch+yaml",
};

/** Observes every response, e.g. to count API requests by verb and code. */
export type ResponseObserver = (method: string, path: string, status: number) => void;
/** Observes every new TLS connection to the API server: the key-exchange group and protocol it negotiated. */
export type HandshakeObserver = (group: string, protocol: string) => void;

/**
 * A keep-alive pool whose sockets send TCP keepalive probes after KEEPALIVE_IDLE_MS of silence, prefer the hybrid
 * post-quantum key exchange, and report each handshake.
 */
class ApiServerAgent extends Agent {
  private readonly onHandshake: (socket: Socket) => void;
  constructor(options: ConstructorParameters<typeof Agent>[0], onHandshake: (socket: Socket) => void) {
    super({ ...options, keepAlive: true, keepAliveMsecs: KEEPALIVE_IDLE_MS, ecdhCurve: PREFERRED_GROUPS });
    this.onHandshake = onHandshake;
  }

  override createConnection(...args: Parameters<Agent["createConnection"]>): ReturnType<Agent["createConnection"]> {
    const socket = super.createConnection(...args) as Socket | undefined;
    socket?.once("secureConnect", () => this.onHandshake(socket));
    return socket as ReturnType<Agent["createConnection"]>;
  }
}

/**
 * A small REST client over the API server. Where it is and how to authenticate come from ./kubeconfig.ts
 * (kubeconfig files, in-cluster service-account tokens, exec plugins); requests share one connection pool, where
 * client-node's generated clients open a new TLS connection per call.
 */
export class KubeClient {
  readonly kubeConfig: KubeConfig;
  readonly fieldManager: string;
  observer: ResponseObserver | undefined;
  handshakeObserver: HandshakeObserver | undefined;
  /**
   * How long a request (not a watch) waits for its whole answer. A request sent on a kept-alive connection that a
   * partition cut hangs in TCP retransmits, resent at growing intervals long after the network is back; given up
   * on, it is retried on a new connection.
   */
  requestTimeoutMs = 30_000;
  private auth: { at: number; credentials: Credentials } | undefined;
  /** The connection pool, built for the client certificate it presents (rotated files, exec plugins renew it). */
  private pool: { cert?: Buffer; key?: Buffer; agent: Agent } | undefined;
  /** A request got no answer at all (refused, reset, unreachable), and none has been answered since. */
  private outOfReach = false;
  private readonly reachWaiters = new Set<() => void>();

  constructor(kubeConfig: KubeConfig, fieldManager: string) {
    this.kubeConfig = kubeConfig;
    this.fieldManager = fieldManager;
  }

  /** From a kubeconfig file, else $KUBECONFIG / ~/.kube/config / the in-cluster service account. */
  static load(kubeconfigPath: string | undefined, fieldManager: string): KubeClient {
    return new KubeClient(loadKubeConfig(kubeconfigPath), fieldManager);
  }

  /**
   * Resolves when the API server next answers after being out of reach, or when signal aborts: loops backing off
   * after a failure (the informers) try again together once the network is back, instead of each waiting out a
   * backoff that grew while it was gone.
   */
  untilReachable(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.reachWaiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      if (signal.aborted) return resolve();
      this.reachWaiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  async close(): Promise<void> {
    this.pool?.agent.destroy();
  }

  /**
   * Authentication headers and the pool to send with, credentials refreshed every few seconds: tokens of exec
   * plugins and projected service-account files rotate, but working them out anew for every request would cost
   * more than the request.
   */
  private async connection(): Promise<{ headers: Record<string, string>; agent: Agent }> {
    const now = Date.now();
    if (!this.auth || now - this.auth.at > 5_000)
      this.auth = { at: now, credentials: await this.kubeConfig.credentials() };
    const { headers, cert, key } = this.auth.credentials;
    if (!this.pool || !sameBytes(this.pool.cert, cert) || !sameBytes(this.pool.key, key)) {
      // A new certificate: the old pool's connections (watches among them) are closed, as client-go closes them
      // on rotation, so that nothing goes on authenticating with the certificate that was replaced; the
      // informers start their watches again on the new pool.
      this.pool?.agent.destroy();
      const { ca, rejectUnauthorized, servername } = this.kubeConfig.tls;
      this.pool = {
        cert,
        key,
        agent: new ApiServerAgent({ ca, cert, key, rejectUnauthorized, servername, maxSockets: 64 }, (socket) =>
          this.handshakeObserver?.(negotiatedGroup(socket), (socket as TLSSocket).getProtocol() ?? "none"),
        ),
      };
    }
    return { headers, agent: this.pool.agent };
  }

  private async send(
    method: string,
    path: string,
    init: { query?: Record<string, string | number | boolean | undefined>; body?: unknown; contentType?: string },
    signal?: AbortSignal,
  ) {
    const url = new URL(this.kubeConfig.server + path);
    const deadline = signal ?? AbortSignal.timeout(this.requestTimeoutMs);
    for (const [k, v] of Object.entries(init.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const connection = await this.connection();
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": USER_AGENT,
      ...connection.headers,
    };
    const body = init.body === undefined ? undefined : JSON.stringify(init.body);
    if (body !== undefined) {
      headers["content-type"] = init.contentType ?? "application/json";
      // Said explicitly: Node sends a DELETE's body (delete options) with neither a length nor chunking, and the
      // bytes would then run into the next request on the kept-alive connection.
      headers["content-length"] = String(Buffer.byteLength(body));
    }
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const send = url.protocol === "http:" ? httpRequest : httpsRequest;
      const agent = url.protocol === "http:" ? undefined : connection.agent;
      send(url, { method, headers, agent, signal: deadline }, resolve).on("error", reject).end(body);
    }).catch((e: unknown) => {
      if (signal?.aborted) throw e;
      this.outOfReach = true;
      throw deadline.aborted ? new Error(`${method} ${path}: no answer within ${this.requestTimeoutMs} ms`) : e;
    });
    if (this.outOfReach) {
      this.outOfReach = false;
      for (const wake of [...this.reachWaiters]) wake();
    }
    const status = res.statusCode ?? 0;
    this.observer?.(method, path, status);
    if (status === 401) {
      // Refused credentials are not used again: the next request asks for new ones (an exec plugin reruns).
      this.kubeConfig.expireCredentials();
      this.auth = undefined;
    }
    if (status >= 400) {
      const text = await readText(res);
      let reason = res.statusMessage ?? "";
      let message = text;
      try {
        const s = JSON.parse(text) as { reason?: string; message?: string };
        reason = s.reason ?? reason;
        message = s.message ?? message;
      } catch {
        // not a metav1.Status: keep the raw body as the message
      }
      throw new ApiError(status, reason, `${method} ${path}: ${status} ${message}`);
    }
    return res;
  }

  async request<T>(
    method: string,
    path: string,
    init: { query?: Record<string, string | number | boolean | undefined>; body?: unknown; contentType?: string } = {},
  ): Promise<T> {
    return JSON.parse(await readText(await this.send(method, path, init))) as T;
  }

  async get<T extends KubeObject>(kind: KindRef, namespace: string | undefined, name: string): Promise<T | undefined> {
    try {
      return await this.request<T>("GET", resourcePath(kind, namespace, name));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async list<T extends KubeObject>(kind: KindRef, opts: ListOptions = {}): Promise<ObjectList<T>> {
    const { namespace, ...query } = opts;
    const list = await this.request<ObjectList<T>>("GET", resourcePath(kind, namespace), { query });
    // Items of a list carry no apiVersion/kind; fill them in so cached objects are complete.
    for (const item of list.items) Object.assign(item, { apiVersion: apiVersionOf(kind), kind: kind.kind });
    return list;
  }

  /** Creates obj; with dryRun the API server validates and defaults it (schemas, admission) without storing it. */
  async create<T extends KubeObject>(kind: KindRef, obj: T, opts: { dryRun?: boolean } = {}): Promise<T> {
    return this.request<T>("POST", resourcePath(kind, obj.metadata.namespace), {
      body: obj,
      query: { fieldManager: this.fieldManager, dryRun: opts.dryRun ? "All" : undefined },
    });
  }

  /** PUT guarded by the object's resourceVersion: a concurrent change answers 409 Conflict. */
  async update<T extends KubeObject>(kind: KindRef, obj: T, subresource?: string): Promise<T> {
    return this.request<T>("PUT", resourcePath(kind, obj.metadata.namespace, obj.metadata.name, subresource), {
      body: obj,
      query: { fieldManager: this.fieldManager },
    });
  }

  async patch<T extends KubeObject>(
    kind: KindRef,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patch: unknown,
    opts: { subresource?: string; force?: boolean } = {},
  ): Promise<T> {
    return this.request<T>("PATCH", resourcePath(kind, namespace, name, opts.subresource), {
      body: patch,
      contentType: patchContentType[type],
      query: { fieldManager: this.fieldManager, force: type === "apply" ? (opts.force ?? true) : undefined },
    });
  }

  /** Server-side apply of the fields this operator owns (JSON is YAML, so the body is the object as JSON). */
  async apply<T extends KubeObject>(kind: KindRef, obj: T, opts: { subresource?: string } = {}): Promise<T> {
    return this.patch<T>(kind, obj.metadata.namespace, obj.metadata.name, "apply", obj, { ...opts, force: true });
  }

  /**
   * Evicts a pod through the Eviction API, so that PodDisruptionBudgets hold: false when a budget refuses it now
   * (429), true when the eviction was accepted or the pod is already gone.
   */
  async evict(namespace: string, name: string): Promise<boolean> {
    try {
      await this.request("POST", resourcePath(PodKind, namespace, name, "eviction"), {
        body: { apiVersion: "policy/v1", kind: "Eviction", metadata: { name, namespace } },
      });
      return true;
    } catch (e) {
      if (isNotFound(e)) return true;
      if (e instanceof ApiError && e.status === 429) return false;
      throw e;
    }
  }

  async delete(
    kind: KindRef,
    namespace: string | undefined,
    name: string,
    opts: { propagationPolicy?: "Background" | "Foreground" | "Orphan"; uid?: string } = {},
  ): Promise<boolean> {
    try {
      await this.request("DELETE", resourcePath(kind, namespace, name), {
        body: {
          apiVersion: "v1",
          kind: "DeleteOptions",
          propagationPolicy: opts.propagationPolicy,
          preconditions: opts.uid ? { uid: opts.uid } : undefined,
        },
      });
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /**
   * Streams watch events until the server ends the watch (resolves) or the connection fails (rejects). An ERROR
   * event is turned into an ApiError, so a 410 Gone surfaces as isGone(e). onOpen is called once the server has
   * accepted the watch, before its first event.
   */
  async watch<T extends KubeObject>(
    kind: KindRef,
    opts: {
      namespace?: string;
      resourceVersion: string;
      labelSelector?: string;
      timeoutSeconds: number;
      onOpen?: () => void;
    },
    onEvent: (e: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const res = await this.send(
      "GET",
      resourcePath(kind, opts.namespace),
      {
        query: {
          watch: 1,
          resourceVersion: opts.resourceVersion,
          allowWatchBookmarks: true,
          labelSelector: opts.labelSelector,
          timeoutSeconds: opts.timeoutSeconds,
        },
      },
      signal,
    );
    opts.onOpen?.();
    res.setEncoding("utf8");
    let buffered = "";
    for await (const chunk of res) {
      buffered += chunk as string;
      let start = 0;
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n", start)) {
        const line = buffered.slice(start, nl).trim();
        start = nl + 1;
        if (!line) continue;
        const event = JSON.parse(line) as WatchEvent<T>;
        if (event.type === "ERROR") {
          const s = event.object as unknown as { code?: number; reason?: string; message?: string };
          throw new ApiError(s.code ?? 500, s.reason ?? "WatchError", s.message ?? "watch error");
        }
        onEvent(event);
      }
      buffered = buffered.slice(start);
    }
  }
}

const sameBytes = (a: Buffer | undefined, b: Buffer | undefined) => (a && b ? a.equals(b) : a === b);

async function readText(res: IncomingMessage): Promise<string> {
  res.setEncoding("utf8");
  let text = "";
  for await (const chunk of res) text += chunk as string;
  return text;
}
