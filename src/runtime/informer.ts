import { setTimeout as sleep } from "node:timers/promises";
import { jittered } from "./backoff.ts";
import { type KubeClient, isGone } from "./client.ts";
import { type KindRef, kindKey } from "./kinds.ts";
import { type LabelSelector, matchesSelector } from "./labels.ts";
import type { Logger } from "./log.ts";
import { type KubeObject, compareResourceVersions, objectKey } from "./objects.ts";

export type InformerEvent = "add" | "update" | "delete" | "resync";
export type InformerHandler<T extends KubeObject> = (event: InformerEvent, obj: T, old?: T) => void;
export type IndexFunc<T extends KubeObject> = (obj: T) => string[];

/** How long a reopened watch is given to deliver the events it missed while it was down. */
const CATCH_UP_MS = 1_000;

/** Index of every informer: objects by the uid of each of their owners. */
export const OWNER_INDEX = "owner-uid";

export interface InformerOptions {
  /** Namespaces to watch (namespaced kinds only); undefined watches all. */
  namespaces?: string[];
  /** Re-delivers every cached object this often, so level-triggered controllers correct drift they missed. */
  resyncMs: number;
  log: Logger;
  /** Backoff between failed list/watch attempts: from minBackoffMs doubling to maxBackoffMs, jittered. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * A list-watch cache of one kind that survives: a watch that ends is resumed from the last resourceVersion seen,
 * a 410 Gone re-lists, and any other failure retries with jittered exponential backoff, until stop().
 */
export class Informer<T extends KubeObject = KubeObject> {
  readonly kind: KindRef;
  private readonly client: KubeClient;
  private readonly opts: InformerOptions;
  private readonly store = new Map<string, T>();
  private readonly indexes = new Map<string, { fn: IndexFunc<T>; values: Map<string, Set<string>> }>();
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly transforms: Array<(obj: T) => void> = [];
  private readonly abort = new AbortController();
  private readonly unsynced = new Set<string>();
  private syncWaiters: Array<() => void> = [];
  private loops: Promise<void>[] = [];
  /**
   * Per scope whose list/watch failed: when it failed (the cache may miss every change since) and, once a watch
   * has reopened, until when the changes it missed are still arriving.
   */
  private readonly behind = new Map<string, { since: number; until?: number }>();
  /** Lists performed (the first one and every re-list); tests read it to prove a 410 re-listed. */
  lists = 0;

  constructor(client: KubeClient, kind: KindRef, opts: InformerOptions) {
    this.client = client;
    this.kind = kind;
    this.opts = opts;
    this.addIndex(OWNER_INDEX, (o) => (o.metadata.ownerReferences ?? []).map((r) => r.uid));
  }

  addIndex(name: string, fn: IndexFunc<T>): void {
    const values = new Map<string, Set<string>>();
    this.indexes.set(name, { fn, values });
    for (const [key, obj] of this.store) for (const v of fn(obj)) addTo(values, v, key);
  }

  /**
   * Trims each object before it is cached, to keep the cache small: the manager drops managedFields nobody reads, a
   * controller the parts of a large kind it never reads.
   * Every controller sharing the informer sees the trimmed objects, so a transform drops only what none reads.
   */
  addTransform(fn: (obj: T) => void): void {
    this.transforms.push(fn);
    for (const obj of this.store.values()) fn(obj);
  }

  onEvent(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  /**
   * The time up to which the cache is known to hold every change: now while its watches run; while they are down,
   * the moment they failed (and for a moment after one reopens, as the events it missed arrive). A controller that
   * judges by time what did not change (a heartbeat not renewed) judges as of this: it cannot tell a renewal that
   * did not happen from one it was cut off from.
   */
  currentAsOf(now: number): number {
    let asOf = now;
    for (const [scope, b] of this.behind) {
      if (b.until !== undefined && now >= b.until) this.behind.delete(scope);
      else asOf = Math.min(asOf, b.since);
    }
    return asOf;
  }

  /** The namespaces watched, undefined for all. */
  get namespaces(): string[] | undefined {
    return this.kind.namespaced ? this.opts.namespaces : undefined;
  }

  get synced(): boolean {
    return this.loops.length > 0 && this.unsynced.size === 0;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.store.get(namespace && this.kind.namespaced ? `${namespace}/${name}` : name);
  }

  list(filter: { namespace?: string; selector?: LabelSelector } = {}): T[] {
    const out: T[] = [];
    for (const obj of this.store.values()) {
      if (filter.namespace !== undefined && obj.metadata.namespace !== filter.namespace) continue;
      if (filter.selector && !matchesSelector(obj.metadata.labels, filter.selector)) continue;
      out.push(obj);
    }
    return out;
  }

  byIndex(index: string, value: string): T[] {
    const idx = this.indexes.get(index);
    if (!idx) throw new Error(`informer ${kindKey(this.kind)} has no index ${index}`);
    return [...(idx.values.get(value) ?? [])].map((k) => this.store.get(k)).filter((o): o is T => o !== undefined);
  }

  start(): void {
    if (this.loops.length) return;
    const scopes = this.kind.namespaced && this.opts.namespaces ? this.opts.namespaces : [undefined];
    for (const ns of scopes) this.unsynced.add(ns ?? "");
    this.loops = scopes.map((ns) => this.run(ns));
    if (this.opts.resyncMs > 0) void this.resyncLoop();
  }

  async waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return;
    await new Promise<void>((resolve, reject) => {
      this.syncWaiters.push(resolve);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.all(this.loops);
  }

  private async run(namespace: string | undefined): Promise<void> {
    const signal = this.abort.signal;
    const log = this.opts.log.with({ kind: kindKey(this.kind), namespace });
    const minBackoff = this.opts.minBackoffMs ?? 800;
    let backoff = minBackoff;
    const scope = namespace ?? "";
    let resourceVersion: string | undefined;
    while (!signal.aborted) {
      try {
        if (resourceVersion === undefined) resourceVersion = await this.relist(namespace);
        const onOpen = () => {
          const b = this.behind.get(scope);
          if (b && b.until === undefined) b.until = Date.now() + CATCH_UP_MS;
        };
        // The server ends each watch after timeoutSeconds; the client gives up a little later in case the
        // connection died silently (no FIN/RST ever arrives).
        const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
        await this.client.watch<T>(
          this.kind,
          { namespace, resourceVersion, timeoutSeconds, onOpen },
          (e) => {
            resourceVersion = e.object.metadata.resourceVersion ?? resourceVersion;
            const change = e.type === "ADDED" || e.type === "MODIFIED";
            if (change && !this.olderThanCached(e.object)) this.upsert(e.object);
            else if (e.type === "DELETED") this.remove(e.object);
          },
          AbortSignal.any([signal, AbortSignal.timeout((timeoutSeconds + 30) * 1000)]),
        );
        backoff = minBackoff;
      } catch (e) {
        if (signal.aborted) break;
        if (isGone(e)) {
          log.debug("watch expired (410 Gone): re-listing");
          resourceVersion = undefined;
          continue;
        }
        const b = this.behind.get(scope);
        this.behind.set(scope, { since: b?.since ?? Date.now() });
        log.info("list/watch failed; retrying", { error: String(e), retryInMs: Math.round(backoff) });
        const waited = new AbortController();
        const until = AbortSignal.any([signal, waited.signal]);
        await Promise.race([
          sleep(jittered(backoff), undefined, { signal: until }).catch(() => undefined),
          this.client.untilReachable(until),
        ]);
        waited.abort();
        backoff = Math.min(backoff * 2, this.opts.maxBackoffMs ?? 30_000);
      }
    }
  }

  /** Lists the scope page by page and replaces its part of the store, answering the list's resourceVersion. */
  private async relist(namespace: string | undefined): Promise<string> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv = "";
    do {
      const page = await this.client.list<T>(this.kind, { namespace, limit: 500, continue: cont });
      items.push(...page.items);
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion;
    } while (cont);
    this.lists++;
    this.behind.delete(namespace ?? "");
    const seen = new Set(items.map(objectKey));
    for (const [key, obj] of this.store) {
      if ((namespace === undefined || obj.metadata.namespace === namespace) && !seen.has(key)) this.remove(obj);
    }
    for (const item of items) this.upsert(item);
    this.unsynced.delete(namespace ?? "");
    if (this.synced) for (const w of this.syncWaiters.splice(0)) w();
    return rv;
  }

  /**
   * Takes in the object one of our writes answered with, when the cache still holds the version that write was
   * based on: the next reconcile then sees its own write, not the state before it. The watch event that follows
   * carries the same resourceVersion, so handlers hear of the change once.
   */
  writeThrough(basedOn: string | undefined, obj: T): void {
    const cached = this.store.get(objectKey(obj));
    if (cached && cached.metadata.resourceVersion === basedOn) this.upsert(obj);
  }

  /**
   * A watch event older than the cached object: our own write, taken in by writeThrough, got there first. Taking
   * the event in would move the cache back, and the write would come round again as a second change.
   */
  private olderThanCached(obj: T): boolean {
    const cached = this.store.get(objectKey(obj));
    return (compareResourceVersions(obj.metadata.resourceVersion, cached?.metadata.resourceVersion) ?? 0) < 0;
  }

  private upsert(obj: T): void {
    for (const t of this.transforms) t(obj);
    const key = objectKey(obj);
    const old = this.store.get(key);
    if (old && old.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    if (old) this.unindex(key, old);
    this.store.set(key, obj);
    for (const { fn, values } of this.indexes.values()) for (const v of fn(obj)) addTo(values, v, key);
    this.emit(old ? "update" : "add", obj, old);
  }

  private remove(obj: T): void {
    const key = objectKey(obj);
    const old = this.store.get(key);
    if (!old) return;
    this.unindex(key, old);
    this.store.delete(key);
    this.emit("delete", old);
  }

  private unindex(key: string, obj: T): void {
    for (const { fn, values } of this.indexes.values()) {
      for (const v of fn(obj)) {
        const keys = values.get(v);
        keys?.delete(key);
        if (keys?.size === 0) values.delete(v);
      }
    }
  }

  private emit(event: InformerEvent, obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        h(event, obj, old);
      } catch (e) {
        this.opts.log.error("informer handler failed", { kind: kindKey(this.kind), error: String(e) });
      }
    }
  }

  private async resyncLoop(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      await sleep(this.opts.resyncMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;
      for (const obj of this.store.values()) this.emit("resync", obj);
    }
  }
}

function addTo(m: Map<string, Set<string>>, value: string, key: string): void {
  let s = m.get(value);
  if (!s) m.set(value, (s = new Set()));
  s.add(key);
}
