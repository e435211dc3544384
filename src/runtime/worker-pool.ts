import { type ResourceLimits, Worker } from "node:worker_threads";

interface Task<Req, Res> {
  request: Req;
  resolve(r: Res): void;
  reject(e: Error): void;
}

export interface WorkerPoolOptions {
  /** At most this many threads at once. */
  size: number;
  /** A thread idle this long exits, so a converged operator holds no threads (each costs tens of MB). */
  idleMs?: number;
  resourceLimits?: ResourceLimits;
}

/**
 * Worker threads for CPU-heavy work (key generation, signing, simulation), started on demand, so that the event
 * loop keeps renewing the lease, answering probes and running other reconciles meanwhile. The worker module
 * receives each request as a message and answers `{ ok: true, value }` or `{ ok: false, error }`.
 */
export class WorkerPool<Req, Res> {
  private readonly file: URL;
  private readonly opts: WorkerPoolOptions;
  private readonly idle = new Map<Worker, NodeJS.Timeout>();
  private readonly busy = new Map<Worker, Task<Req, Res>>();
  private readonly waiting: Task<Req, Res>[] = [];
  private closed = false;

  constructor(file: URL, opts: WorkerPoolOptions) {
    this.file = file;
    this.opts = opts;
  }

  /** Threads alive now (busy or idle). */
  get threads(): number {
    return this.idle.size + this.busy.size;
  }

  /**
   * Runs request on a thread. Aborting signal rejects with its reason: a waiting task leaves the queue, a running
   * one has its thread terminated (a synchronous computation there cannot be interrupted any other way) and the
   * next task gets a fresh thread.
   */
  run(request: Req, opts: { signal?: AbortSignal } = {}): Promise<Res> {
    if (this.closed) return Promise.reject(new Error("worker pool is closed"));
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => this.cancel(task, (signal as AbortSignal).reason);
      const task: Task<Req, Res> = {
        request,
        resolve: (r) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(r);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(task);
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.waiting.splice(0)) t.reject(new Error("worker pool is closed"));
    for (const timer of this.idle.values()) clearTimeout(timer);
    const all = [...this.idle.keys(), ...this.busy.keys()];
    this.idle.clear();
    await Promise.all(all.map((w) => w.terminate()));
  }

  private cancel(task: Task<Req, Res>, reason: Error): void {
    const queued = this.waiting.indexOf(task);
    if (queued >= 0) this.waiting.splice(queued, 1);
    for (const [worker, running] of this.busy) {
      if (running !== task) continue;
      // Out of busy before it exits, so its exit rejects nothing and a result it still sends is dropped.
      this.busy.delete(worker);
      void worker.terminate();
    }
    task.reject(reason);
    if (!this.closed) this.dispatch();
  }

  private dispatch(): void {
    while (this.waiting.length) {
      const worker = this.takeIdle() ?? (this.threads < this.opts.size ? this.spawn() : undefined);
      if (!worker) return;
      const task = this.waiting.shift() as Task<Req, Res>;
      this.busy.set(worker, task);
      worker.postMessage(task.request);
    }
  }

  private takeIdle(): Worker | undefined {
    const next = this.idle.entries().next();
    if (next.done) return undefined;
    const [worker, timer] = next.value;
    clearTimeout(timer);
    this.idle.delete(worker);
    return worker;
  }

  private release(worker: Worker): void {
    const timer = setTimeout(() => {
      this.idle.delete(worker);
      void worker.terminate();
    }, this.opts.idleMs ?? 30_000);
    timer.unref();
    this.idle.set(worker, timer);
  }

  private spawn(): Worker {
    const worker = new Worker(this.file, { resourceLimits: this.opts.resourceLimits });
    worker.unref();
    worker.on("message", (m: { ok: true; value: Res } | { ok: false; error: string }) => {
      const task = this.busy.get(worker);
      if (!task) return; // a cancelled task's thread, being terminated
      this.busy.delete(worker);
      if (!this.closed) this.release(worker);
      if (m.ok) task.resolve(m.value);
      else task.reject(new Error(m.error));
      this.dispatch();
    });
    // A thread that dies takes its task with it; the next task gets a fresh thread.
    worker.on("error", (e) => this.lose(worker, e));
    worker.on("exit", (code) => this.lose(worker, new Error(`worker exited with code ${code}`)));
    return worker;
  }

  private lose(worker: Worker, e: Error): void {
    const task = this.busy.get(worker);
    this.busy.delete(worker);
    clearTimeout(this.idle.get(worker));
    this.idle.delete(worker);
    task?.reject(e);
    if (!this.closed) this.dispatch();
  }
}

/** The URL of a sibling module, whether running from the TypeScript sources or from compiled dist/. */
export function siblingModule(importMetaUrl: string, name: string): URL {
  return new URL(`./${name}${importMetaUrl.endsWith(".ts") ? ".ts" : ".js"}`, importMetaUrl);
}
