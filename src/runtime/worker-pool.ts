import { availableParallelism } from "node:os";
import { type ResourceLimits, Worker } from "node:worker_threads";

interface Task<Req, Res> {
  request: Req;
  resolve(r: Res): void;
  reject(e: Error): void;
}

/**
 * A fixed pool of worker threads for CPU-heavy work (key generation, signing, simulation), so that the event loop
 * keeps renewing the lease, answering probes and running other reconciles meanwhile. The worker module receives
 * each request as a message and answers `{ ok: true, value }` or `{ ok: false, error }`.
 */
export class WorkerPool<Req, Res> {
  private readonly file: URL;
  private readonly idle: Worker[] = [];
  private readonly busy = new Map<Worker, Task<Req, Res>>();
  private readonly waiting: Task<Req, Res>[] = [];
  private readonly size: number;
  private readonly limits: ResourceLimits | undefined;
  private closed = false;

  constructor(file: URL, size = Math.max(1, availableParallelism() - 1), limits?: ResourceLimits) {
    this.file = file;
    this.size = size;
    this.limits = limits;
  }

  run(request: Req): Promise<Res> {
    if (this.closed) return Promise.reject(new Error("worker pool is closed"));
    return new Promise((resolve, reject) => {
      this.waiting.push({ request, resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.waiting.splice(0)) t.reject(new Error("worker pool is closed"));
    await Promise.all([...this.idle.splice(0), ...this.busy.keys()].map((w) => w.terminate()));
  }

  private dispatch(): void {
    while (this.waiting.length) {
      const worker = this.idle.pop() ?? (this.busy.size < this.size ? this.spawn() : undefined);
      if (!worker) return;
      const task = this.waiting.shift() as Task<Req, Res>;
      this.busy.set(worker, task);
      worker.postMessage(task.request);
    }
  }

  private spawn(): Worker {
    const worker = new Worker(this.file, { resourceLimits: this.limits });
    worker.unref();
    worker.on("message", (m: { ok: true; value: Res } | { ok: false; error: string }) => {
      const task = this.busy.get(worker);
      this.busy.delete(worker);
      if (!this.closed) this.idle.push(worker);
      if (m.ok) task?.resolve(m.value);
      else task?.reject(new Error(m.error));
      this.dispatch();
    });
    // A worker that dies takes its task with it; the next task gets a fresh worker.
    worker.on("error", (e) => this.lose(worker, e));
    worker.on("exit", (code) => this.lose(worker, new Error(`worker exited with code ${code}`)));
    return worker;
  }

  private lose(worker: Worker, e: Error): void {
    const task = this.busy.get(worker);
    this.busy.delete(worker);
    const i = this.idle.indexOf(worker);
    if (i >= 0) this.idle.splice(i, 1);
    task?.reject(e);
    if (!this.closed) this.dispatch();
  }
}

/** The URL of a sibling module, whether running from the TypeScript sources or from compiled dist/. */
export function siblingModule(importMetaUrl: string, name: string): URL {
  return new URL(`./${name}${importMetaUrl.endsWith(".ts") ? ".ts" : ".js"}`, importMetaUrl);
}
