import { applyWouldChange, mergePatch } from "./apply.ts";
import type { Cache } from "./cache.ts";
import type { KubeClient } from "./client.ts";
import { type ConditionStatus, jsonEqual, setCondition } from "./conditions.ts";
import { TerminalError } from "./errors.ts";
import type { EventRecorder } from "./events.ts";
import type { InformerEvent } from "./informer.ts";
import { type KindRef, apiVersionOf } from "./kinds.ts";
import type { Logger } from "./log.ts";
import type { Registry } from "prom-client";
import type { RuntimeMetrics } from "./metrics.ts";
import { type Condition, type KubeObject, controllerOwnerRef, objectKey, splitKey } from "./objects.ts";
import { WorkQueue } from "./queue.ts";
import type { PolicyRule } from "./rbac.ts";

export interface ReconcileResult {
  /** Look at the object again after this long even if nothing changes (e.g. the next scheduled rotation). */
  requeueAfterMs?: number;
}

/**
 * A watch on another kind whose events map to keys of the primary kind. An update brings the old object too, so a
 * mapping can reach what the object left (a Node relabelled out of a site) and skip what a change cannot affect; a
 * delete brings the object's last state, which says nothing of its going unless it had finalizers.
 */
export interface WatchMapping {
  kind: KindRef;
  /** Watch only this namespace (e.g. kube-node-lease), whatever namespaces the manager is scoped to. */
  namespace?: string;
  map(obj: KubeObject, cache: Cache, old: KubeObject | undefined, event: InformerEvent): string[];
}

export interface ControllerDefinition<T extends KubeObject = KubeObject> {
  name: string;
  /** The primary kind: its events enqueue its own key. */
  for: KindRef;
  /** Children: their events enqueue the key of their controlling owner of the primary kind. */
  owns?: KindRef[];
  watches?: WatchMapping[];
  /**
   * The writes this controller makes beyond what the runtime derives (get/list/watch of every watched kind, the
   * primary kind's status and finalizers, events). config/rbac is generated from these.
   */
  rbac?: PolicyRule[];
  maxConcurrentReconciles?: number;
  /**
   * Adds informer indexes the reconciler or the watch mappings look up, and informer hooks for what the process
   * holds outside the cluster (e.g. a run in its threads, dropped when its object is deleted).
   */
  setup?(cache: Cache, tools: { events: EventRecorder; registry: Registry }): void;
  /**
   * Counts a change of a primary object in the controller's own metrics (e.g. a job's phase becoming Succeeded):
   * called for each update the informer sees while the controller runs, so on the leader only. A transition is
   * seen once however many writes made it: a write whose answer a broken connection lost, made again; a write
   * made twice from a cache that had not caught up.
   */
  countTransition?(obj: T, old: T, tools: { cache: Cache; registry: Registry }): void;
  /**
   * Starts a source of keys other than watches (e.g. probes of remote endpoints) when the controller starts
   * leading; answers the function that stops it.
   */
  start?(enqueue: (key: string) => void, cache: Cache, registry: Registry): () => void;
  /**
   * Registers the controller's own metrics in the manager's registry when it is built, so that every family is
   * exported (with its help text) before its first sample: dashboards and alerts find it from the start.
   */
  metrics?(registry: Registry): unknown;
  reconcile(ctx: ReconcileContext, obj: T): Promise<ReconcileResult | void>;
}

export function defineController<T extends KubeObject>(def: ControllerDefinition<T>): ControllerDefinition<T> {
  return def;
}

/** The RBAC the runtime itself needs to run a controller, plus what the controller declares. */
export function controllerRules(def: ControllerDefinition): PolicyRule[] {
  const read = ["get", "list", "watch"];
  const rules: PolicyRule[] = [
    { apiGroups: [def.for.group], resources: [def.for.plural], verbs: [...read, "patch"] },
    { apiGroups: [def.for.group], resources: [`${def.for.plural}/status`], verbs: ["get", "patch"] },
    { apiGroups: [def.for.group], resources: [`${def.for.plural}/finalizers`], verbs: ["update"] },
    { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"] },
  ];
  for (const k of [...(def.owns ?? []), ...(def.watches ?? []).map((w) => w.kind)]) {
    rules.push({ apiGroups: [k.group], resources: [k.plural], verbs: read });
  }
  return [...rules, ...(def.rbac ?? [])];
}

/** Collects a status for the status subresource; written once, after reconcile, and only when it changed. */
export class StatusUpdate<S extends object = Record<string, unknown>> {
  readonly status: S & { conditions?: Condition[]; observedGeneration?: number };
  private readonly obj: KubeObject & { status?: unknown };
  private readonly now: Date;

  constructor(obj: KubeObject & { status?: unknown }, now: Date) {
    this.obj = obj;
    this.now = now;
    this.status = structuredClone((obj.status ?? {}) as S);
  }

  set(fields: Partial<S>): this {
    Object.assign(this.status, fields);
    return this;
  }

  condition(type: string, status: ConditionStatus, reason: string, message: string): this {
    this.status.conditions = setCondition(
      this.status.conditions,
      { type, status, reason, message, observedGeneration: this.obj.metadata.generation },
      this.now,
    );
    return this;
  }

  /** The status to write, or undefined when it equals what the object already has. */
  pending(): S | undefined {
    const next = { ...this.status, observedGeneration: this.obj.metadata.generation };
    return jsonEqual(next, this.obj.status ?? {}) ? undefined : next;
  }
}

/** What a reconcile works with: one way to read, write, record and log. */
export class ReconcileContext {
  readonly key: string;
  readonly cache: Cache;
  readonly client: KubeClient;
  readonly events: EventRecorder;
  readonly log: Logger;
  readonly now: Date;
  /** The manager's metrics registry, where a controller registers its own metrics. */
  readonly registry: Registry;
  private readonly primary: KindRef;
  private statusUpdate: { obj: KubeObject & { status?: unknown }; update: StatusUpdate<object> } | undefined;
  private statusGuarded = false;

  constructor(
    key: string,
    primary: KindRef,
    deps: { cache: Cache; client: KubeClient; events: EventRecorder; log: Logger; registry: Registry },
  ) {
    this.key = key;
    this.registry = deps.registry;
    this.primary = primary;
    this.cache = deps.cache;
    this.client = deps.client;
    this.events = deps.events;
    this.log = deps.log.with({ key });
    this.now = new Date();
  }

  /** The primary's resourceVersion after this reconcile's last write of it (finalizers), if any. */
  private lastWrittenVersion?: string;

  /** The status writer for the primary object (one per reconcile). */
  status<S extends object>(obj: KubeObject & { status?: S }): StatusUpdate<S> {
    if (!this.statusUpdate) this.statusUpdate = { obj, update: new StatusUpdate<object>(obj, this.now) };
    return this.statusUpdate.update as StatusUpdate<S>;
  }

  /**
   * Server-side applies child under the operator's field manager, controlled by owner when given. Sends nothing
   * when the cached child already matches, so a converged reconcile stays silent.
   */
  async apply<T extends KubeObject>(kind: KindRef, child: T, opts: { owner?: KubeObject } = {}): Promise<T> {
    const desired: T = {
      ...child,
      apiVersion: apiVersionOf(kind),
      kind: kind.kind,
      metadata: {
        ...child.metadata,
        ...(opts.owner ? { ownerReferences: [controllerOwnerRef(this.primary, opts.owner)] } : {}),
      },
    };
    const live = this.cache.get<T>(kind, desired.metadata.namespace, desired.metadata.name);
    if (live && !applyWouldChange(desired, live, live.metadata.managedFields, this.client.fieldManager)) return live;
    return this.client.apply(kind, desired);
  }

  /** Adds a finalizer, guarded by resourceVersion so a concurrent change of the list is never overwritten. */
  async addFinalizer<T extends KubeObject>(obj: T, finalizer: string): Promise<T> {
    const list = obj.metadata.finalizers ?? [];
    if (list.includes(finalizer)) return obj;
    return this.patchFinalizers(obj, [...list, finalizer]);
  }

  async removeFinalizer<T extends KubeObject>(obj: T, finalizer: string): Promise<T> {
    const list = obj.metadata.finalizers ?? [];
    if (!list.includes(finalizer)) return obj;
    return this.patchFinalizers(
      obj,
      list.filter((f) => f !== finalizer),
    );
  }

  private async patchFinalizers<T extends KubeObject>(obj: T, finalizers: string[]): Promise<T> {
    const updated = await this.client.patch<T>(this.primary, obj.metadata.namespace, obj.metadata.name, "merge", {
      metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers },
    });
    this.cache.informer<T>(this.primary).writeThrough(obj.metadata.resourceVersion, updated);
    this.lastWrittenVersion = updated.metadata.resourceVersion;
    return updated;
  }

  /**
   * Makes this reconcile's status write conditional on the object being the version it read (409 Conflict
   * otherwise, and the reconcile is retried): for a status that records something done, such as a start, which
   * must never land over a newer status that a stale cache did not show.
   */
  guardStatus(): void {
    this.statusGuarded = true;
  }

  /**
   * Writes the collected status through the status subresource, if it changed: a merge patch of just the
   * difference, which the API server applies far more cheaply than a server-side apply of the whole status.
   */
  async commitStatus(): Promise<boolean> {
    if (!this.statusUpdate) return false;
    const { obj, update } = this.statusUpdate;
    const status = update.pending();
    if (!status) return false;
    const patch = mergePatch(obj.status ?? {}, status);
    if (patch === undefined) return false;
    // Based on this reconcile's own last write (a finalizer) when it made one: otherwise the cache would keep that
    // version, without this status, until the watch caught up, and a reconcile in between would act on it.
    const base = this.lastWrittenVersion ?? obj.metadata.resourceVersion;
    const updated = await this.client.patch(
      this.primary,
      obj.metadata.namespace,
      obj.metadata.name,
      "merge",
      this.statusGuarded ? { metadata: { resourceVersion: base }, status: patch } : { status: patch },
      { subresource: "status" },
    );
    this.cache.informer(this.primary).writeThrough(base, updated);
    return true;
  }
}

/** Runs one controller: maps informer events to keys, and workers reconcile keys from its queue. */
export class Controller {
  readonly def: ControllerDefinition;
  readonly queue: WorkQueue;
  private readonly deps: {
    cache: Cache;
    client: KubeClient;
    events: EventRecorder;
    log: Logger;
    metrics: RuntimeMetrics;
  };
  private readonly concurrency: number;
  private started = false;
  private workers: Promise<void>[] = [];
  private stopSource: (() => void) | undefined;

  constructor(
    def: ControllerDefinition,
    deps: { cache: Cache; client: KubeClient; events: EventRecorder; log: Logger; metrics: RuntimeMetrics },
    concurrency?: number,
  ) {
    this.def = def;
    this.deps = { ...deps, log: deps.log.with({ controller: def.name }) };
    this.concurrency = concurrency ?? def.maxConcurrentReconciles ?? 1;
    this.queue = new WorkQueue(undefined, deps.metrics.queueObserver(def.name));
    def.metrics?.(deps.metrics.registry);
    this.wire();
  }

  private wire(): void {
    const { cache } = this.deps;
    cache.informer(this.def.for).onEvent((event, obj, old) => {
      if (event === "update" && old) {
        if (this.started) this.def.countTransition?.(obj, old, { cache, registry: this.deps.metrics.registry });
        if (onlyStatusChanged(old, obj)) return;
      }
      this.enqueue(objectKey(obj));
    });
    for (const kind of this.def.owns ?? []) {
      cache.informer(kind).onEvent((_e: InformerEvent, obj: KubeObject) => {
        const ref = obj.metadata.ownerReferences?.find(
          (r) => r.controller && r.kind === this.def.for.kind && r.apiVersion === apiVersionOf(this.def.for),
        );
        if (!ref) return;
        this.enqueue(this.def.for.namespaced ? `${obj.metadata.namespace}/${ref.name}` : ref.name);
      });
    }
    for (const w of this.def.watches ?? []) {
      cache.informer(w.kind).onEvent((event, obj, old) => {
        for (const key of w.map(obj, cache, old, event)) this.enqueue(key);
      });
    }
  }

  private enqueue(key: string): void {
    if (this.started) this.queue.add(key);
  }

  /** Starts the workers; every cached primary object is enqueued once, as an informer's initial list would. */
  start(): void {
    this.started = true;
    this.deps.metrics.maxConcurrentReconciles.set({ controller: this.def.name }, this.concurrency);
    for (const obj of this.deps.cache.list(this.def.for)) this.queue.add(objectKey(obj));
    this.workers = Array.from({ length: this.concurrency }, () => this.work());
    this.stopSource = this.def.start?.((key) => this.enqueue(key), this.deps.cache, this.deps.metrics.registry);
  }

  /** Stops taking keys and waits for reconciles in flight to finish. */
  async stop(): Promise<void> {
    this.stopSource?.();
    this.queue.shutdown();
    await Promise.all(this.workers);
  }

  private async work(): Promise<void> {
    const gauge = this.deps.metrics.activeWorkers;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      gauge.inc({ controller: this.def.name });
      try {
        await this.reconcileKey(key);
      } finally {
        gauge.dec({ controller: this.def.name });
        this.queue.done(key);
      }
    }
  }

  private async reconcileKey(key: string): Promise<void> {
    const { metrics, cache } = this.deps;
    const controller = this.def.name;
    const { namespace, name } = splitKey(key);
    const obj = cache.get(this.def.for, namespace, name);
    if (!obj) {
      this.queue.forget(key); // deleted: owner references and finalizers took care of the rest
      return;
    }
    const ctx = new ReconcileContext(key, this.def.for, { ...this.deps, registry: metrics.registry });
    const end = metrics.reconcileTime.startTimer({ controller });
    try {
      const result = await this.def.reconcile(ctx, obj);
      const wrote = await ctx.commitStatus();
      ctx.log.debug("reconciled", { controller, statusWritten: wrote, requeueAfterMs: result?.requeueAfterMs });
      this.queue.forget(key);
      if (result?.requeueAfterMs !== undefined) {
        this.queue.addAfter(key, result.requeueAfterMs);
        metrics.reconcileTotal.inc({ controller, result: "requeue_after" });
      } else metrics.reconcileTotal.inc({ controller, result: "success" });
    } catch (e) {
      // Failure conditions the reconcile set before throwing are worth keeping.
      await ctx.commitStatus().catch((se) => ctx.log.warn("status write failed", { error: String(se) }));
      metrics.reconcileTotal.inc({ controller, result: "error" });
      metrics.reconcileErrors.inc({ controller });
      if (e instanceof TerminalError) {
        metrics.terminalReconcileErrors.inc({ controller });
        this.queue.forget(key);
        ctx.log.info("reconcile failed; not retrying until the object changes", { reason: e.reason, error: e.message });
      } else {
        ctx.log.warn("reconcile failed; retrying with backoff", {
          error: e instanceof Error ? e.message : String(e),
          retries: this.queue.retries(key),
        });
        this.queue.addRateLimited(key);
      }
    } finally {
      end();
    }
  }
}

/** An update that changed only status (our own write coming back) needs no reconcile. */
function onlyStatusChanged(old: KubeObject, obj: KubeObject): boolean {
  const a = old.metadata;
  const b = obj.metadata;
  return (
    a.generation !== undefined &&
    a.generation === b.generation &&
    a.deletionTimestamp === b.deletionTimestamp &&
    jsonEqual(a.labels, b.labels) &&
    jsonEqual(a.annotations, b.annotations) &&
    jsonEqual(a.finalizers, b.finalizers) &&
    jsonEqual(a.ownerReferences, b.ownerReferences)
  );
}
