import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, test } from "vitest";
import { WorkerPool } from "../../src/runtime/worker-pool.ts";
import { waitUntil } from "../../src/runtime/wait.ts";

const file = join(tmpdir(), `nextgen-pool-worker-${process.pid}.mjs`);
writeFileSync(
  file,
  `import { parentPort } from "node:worker_threads";
parentPort.on("message", (m) => {
  if (m === "die") process.exit(3);
  if (m instanceof SharedArrayBuffer) { Atomics.store(new Int32Array(m), 0, 1); for (;;); } // says it started, never ends
  if (m === "fail") return parentPort.postMessage({ ok: false, error: "asked to fail" });
  const until = Date.now() + m; while (Date.now() < until); // busy: CPU work off the caller's thread
  parentPort.postMessage({ ok: true, value: m * 2 });
});`,
);
const url = pathToFileURL(file);

test("runs work on at most size threads while the caller's event loop stays free", async () => {
  const pool = new WorkerPool<number | string, number>(url, { size: 2 });
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 5);
  const results = await Promise.all([200, 200, 200].map((ms) => pool.run(ms)));
  clearInterval(ticker);
  expect(results).toEqual([400, 400, 400]);
  expect(pool.threads).toBe(2);
  expect(ticks).toBeGreaterThan(20); // 600 ms of work never blocked the timer here
  await pool.close();
});

test("a failing task rejects with its message; a dying thread rejects its task and the pool goes on", async () => {
  const pool = new WorkerPool<number | string, number>(url, { size: 1 });
  await expect(pool.run("fail")).rejects.toThrow("asked to fail");
  await expect(pool.run("die")).rejects.toThrow(/exited with code 3/);
  expect(await pool.run(1)).toBe(2);
  await pool.close();
});

test("idle threads exit after idleMs", async () => {
  const pool = new WorkerPool<number | string, number>(url, { size: 2, idleMs: 50 });
  await Promise.all([pool.run(1), pool.run(1)]);
  expect(pool.threads).toBeGreaterThan(0);
  await waitUntil("idle threads to exit", () => pool.threads === 0, { timeoutMs: 5_000, intervalMs: 10 });
  expect(await pool.run(2)).toBe(4);
  await pool.close();
});

describe("cancellation", () => {
  // A task that flags when it starts and then never finishes, so only terminating its thread can stop it.
  const endless = () => new SharedArrayBuffer(4);
  const started = (flag: SharedArrayBuffer) => Atomics.load(new Int32Array(flag), 0) === 1;

  test("aborting a running task terminates its thread and rejects with the reason; the next task gets a fresh thread", async () => {
    const pool = new WorkerPool<number | string | SharedArrayBuffer, number>(url, { size: 1 });
    const flag = endless();
    const stop = new AbortController();
    const running = pool.run(flag, { signal: stop.signal });
    await waitUntil("the task to start", () => started(flag), { timeoutMs: 10_000, intervalMs: 10 });
    stop.abort();
    await expect(running).rejects.toMatchObject({ name: "AbortError" });
    expect(pool.threads).toBe(0);
    // With one thread the endless task would hold it forever: this answer comes from a fresh one.
    expect(await pool.run(3)).toBe(6);
    await pool.close();
  });

  test("aborting a waiting task removes it from the queue; an aborted signal rejects at once", async () => {
    const pool = new WorkerPool<number | string | SharedArrayBuffer, number>(url, { size: 1 });
    const first = endless();
    const second = endless();
    const stopFirst = new AbortController();
    const stopSecond = new AbortController();
    const running = pool.run(first, { signal: stopFirst.signal });
    const waiting = pool.run(second, { signal: stopSecond.signal });
    await waitUntil("the first task to start", () => started(first), { timeoutMs: 10_000, intervalMs: 10 });
    stopSecond.abort(new Error("not needed any more"));
    await expect(waiting).rejects.toThrow("not needed any more");
    stopFirst.abort();
    await expect(running).rejects.toMatchObject({ name: "AbortError" });
    expect(await pool.run(4)).toBe(8);
    expect(started(second)).toBe(false);
    await expect(pool.run(1, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: "AbortError" });
    await pool.close();
  });

  test("a timeout signal rejects with a TimeoutError", async () => {
    const pool = new WorkerPool<number | string | SharedArrayBuffer, number>(url, { size: 1 });
    await expect(pool.run(endless(), { signal: AbortSignal.timeout(100) })).rejects.toMatchObject({
      name: "TimeoutError",
    });
    expect(await pool.run(5)).toBe(10);
    await pool.close();
  });
});
