import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { expect, test } from "vitest";
import { WorkerPool } from "../../src/runtime/worker-pool.ts";
import { waitUntil } from "../../src/runtime/wait.ts";

const file = join(tmpdir(), `nextgen-pool-worker-${process.pid}.mjs`);
writeFileSync(
  file,
  `import { parentPort } from "node:worker_threads";
parentPort.on("message", (m) => {
  if (m === "die") process.exit(3);
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
