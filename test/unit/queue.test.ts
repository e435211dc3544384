import { describe, expect, test, vi } from "vitest";
import { ControllerRateLimiter, ExponentialBackoff, TokenBucket, jittered } from "../../src/runtime/backoff.ts";
import { WorkQueue } from "../../src/runtime/queue.ts";

describe("WorkQueue", () => {
  test("a key added many times while waiting is handed out once", async () => {
    const q = new WorkQueue();
    for (let i = 0; i < 100; i++) q.add("ns/a");
    q.add("ns/b");
    expect(q.length).toBe(2);
    expect(await q.get()).toBe("ns/a");
    expect(await q.get()).toBe("ns/b");
    expect(q.length).toBe(0);
  });

  test("a key being processed is not handed to a second worker, and comes back after done if re-added", async () => {
    const q = new WorkQueue();
    q.add("k");
    const key = await q.get();
    q.add("k"); // changed while a worker holds it
    expect(q.length).toBe(0);
    let second: string | undefined;
    const waiting = q.get().then((k) => (second = k));
    await Promise.resolve();
    expect(second).toBeUndefined();
    q.done(key as string);
    await waiting;
    expect(second).toBe("k");
  });

  test("addAfter keeps the earliest of several delays for one key", async () => {
    const q = new WorkQueue();
    q.addAfter("k", 60_000);
    q.addAfter("k", 10);
    const started = performance.now();
    expect(await q.get()).toBe("k");
    expect(performance.now() - started).toBeLessThan(60_000);
    q.shutdown();
  });

  test("shutdown releases waiting workers with undefined and drops delayed keys", async () => {
    const q = new WorkQueue();
    q.addAfter("later", 50);
    const waiting = q.get();
    q.shutdown();
    expect(await waiting).toBeUndefined();
    q.add("x");
    expect(q.length).toBe(0);
  });

  test("the observer sees adds, depth, and retries", async () => {
    const seen = { added: 0, depth: -1, retried: 0, worked: 0 };
    const q = new WorkQueue(new ControllerRateLimiter(new ExponentialBackoff(1, 10)), {
      added: () => seen.added++,
      depth: (n) => (seen.depth = n),
      queued: () => undefined,
      worked: () => seen.worked++,
      retried: () => seen.retried++,
    });
    q.add("a");
    q.add("a");
    q.add("b");
    expect(seen).toMatchObject({ added: 2, depth: 2 });
    const k = (await q.get()) as string;
    q.done(k);
    q.addRateLimited("a");
    expect(seen.retried).toBe(1);
    expect(seen.worked).toBe(1);
    q.shutdown();
  });
});

describe("rate limiting", () => {
  test("per-key backoff doubles from 5 ms and caps at 1000 s; forget resets it", () => {
    const b = new ExponentialBackoff();
    const delays = Array.from({ length: 5 }, () => b.next("k"));
    expect(delays).toEqual([5, 10, 20, 40, 80]);
    for (let i = 0; i < 40; i++) b.next("k");
    expect(b.next("k")).toBe(1_000_000);
    expect(b.next("other")).toBe(5);
    b.forget("k");
    expect(b.next("k")).toBe(5);
  });

  test("the token bucket lets a burst through, then spaces requests at its rate", () => {
    let now = 0;
    const bucket = new TokenBucket(10, 3, () => now);
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 0]);
    expect(bucket.reserve()).toBeCloseTo(100);
    expect(bucket.reserve()).toBeCloseTo(200);
    now = 1000; // ten tokens' worth of time refills the two borrowed and one more
    expect(bucket.reserve()).toBe(0);
  });

  test("the controller limiter answers the worse of both", () => {
    const now = 0;
    const limiter = new ControllerRateLimiter(new ExponentialBackoff(5, 1000), new TokenBucket(1, 1, () => now));
    expect(limiter.when("a")).toBe(5);
    expect(limiter.when("b")).toBeCloseTo(1000);
  });

  test("jitter stays within its band", () => {
    expect(jittered(1000, 0.5, () => 0)).toBe(750);
    expect(jittered(1000, 0.5, () => 0.999999)).toBeCloseTo(1250, 2);
  });
});

test("a delay beyond what a timer can hold is capped at a day, not fired at once", async () => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
  try {
    const q = new WorkQueue();
    q.addAfter("far", 30 * 24 * 3_600_000); // 30 days: more than 2^31 ms
    vi.advanceTimersByTime(60_000);
    expect(q.length).toBe(0);
    vi.advanceTimersByTime(24 * 3_600_000);
    expect(q.length).toBe(1);
    q.shutdown();
  } finally {
    vi.useRealTimers();
  }
});
