import { ControllerRateLimiter } from "./backoff.ts";

const MAX_DELAY_MS = 24 * 3_600_000;

/** What a queue reports; the manager wires these to the workqueue_* metrics. */
export interface QueueObserver {
  added(): void;
  depth(n: number): void;
  queued(seconds: number): void;
  worked(seconds: number): void;
  retried(): void;
}

/**
 * A keyed work queue with client-go's semantics: a key waiting is held once however often it is added; a key being
 * processed is never handed to a second worker, and if it is added meanwhile it is handed out again after done().
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly addedAt = new Map<string, number>();
  private readonly startedAt = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private shuttingDown = false;
  readonly rateLimiter: ControllerRateLimiter;
  private readonly observer: QueueObserver | undefined;

  constructor(rateLimiter = new ControllerRateLimiter(), observer?: QueueObserver) {
    this.rateLimiter = rateLimiter;
    this.observer = observer;
  }

  get length(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.observer?.added();
    this.dirty.add(key);
    this.addedAt.set(key, performance.now());
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) this.handOut(key, waiter);
    else {
      this.queue.push(key);
      this.observer?.depth(this.queue.length);
    }
  }

  /**
   * Adds key after delayMs; of several pending delays for one key the earliest wins. Delays are capped at a day:
   * a timer longer than 2^31 ms fires at once, and a level-triggered reconcile loses nothing by looking early.
   */
  addAfter(key: string, requestedMs: number): void {
    if (this.shuttingDown) return;
    const delayMs = Math.min(requestedMs, MAX_DELAY_MS);
    if (delayMs <= 0) return this.add(key);
    const at = performance.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    this.timers.set(key, { at, timer });
  }

  addRateLimited(key: string): void {
    this.observer?.retried();
    this.addAfter(key, this.rateLimiter.when(key));
  }

  forget(key: string): void {
    this.rateLimiter.forget(key);
  }

  retries(key: string): number {
    return this.rateLimiter.retries(key);
  }

  /** The next key to work on, or undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.observer?.depth(this.queue.length);
      return Promise.resolve(this.take(key));
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    const started = this.startedAt.get(key);
    this.startedAt.delete(key);
    if (started !== undefined) this.observer?.worked((performance.now() - started) / 1000);
    if (!this.dirty.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) this.handOut(key, waiter);
    else {
      this.queue.push(key);
      this.observer?.depth(this.queue.length);
    }
  }

  /** Stops handing out keys: waiting workers get undefined; pending delays are dropped. */
  shutdown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }

  private handOut(key: string, waiter: (key: string) => void): void {
    waiter(this.take(key));
  }

  private take(key: string): string {
    this.dirty.delete(key);
    this.processing.add(key);
    const added = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (added !== undefined) this.observer?.queued((performance.now() - added) / 1000);
    this.startedAt.set(key, performance.now());
    return key;
  }
}
