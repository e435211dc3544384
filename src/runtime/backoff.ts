/** Per-key exponential backoff (client-go's ItemExponentialFailureRateLimiter): base·2^failures, capped. */
export class ExponentialBackoff {
  private readonly failures = new Map<string, number>();
  readonly baseMs: number;
  readonly maxMs: number;
  constructor(baseMs = 5, maxMs = 1_000_000) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }

  /** Records one more failure of key and answers how long to wait before its next try. */
  next(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    return Math.min(this.maxMs, this.baseMs * 2 ** n);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }
}

/** A token bucket over all keys (client-go's BucketRateLimiter): the delay until a token is free, reserving it. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  readonly ratePerSecond: number;
  readonly burst: number;
  private readonly now: () => number;
  constructor(ratePerSecond = 10, burst = 100, now: () => number = performance.now.bind(performance)) {
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
    this.now = now;
    this.tokens = burst;
    this.last = now();
  }

  reserve(): number {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.ratePerSecond);
    this.last = t;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.ratePerSecond) * 1000;
  }
}

/** The worst of both limiters, as client-go's DefaultControllerRateLimiter. */
export class ControllerRateLimiter {
  readonly perKey: ExponentialBackoff;
  readonly overall: TokenBucket;
  constructor(perKey = new ExponentialBackoff(), overall = new TokenBucket()) {
    this.perKey = perKey;
    this.overall = overall;
  }
  when(key: string): number {
    return Math.max(this.perKey.next(key), this.overall.reserve());
  }
  retries(key: string): number {
    return this.perKey.retries(key);
  }
  forget(key: string): void {
    this.perKey.forget(key);
  }
}

/** A delay in [d·(1−f/2), d·(1+f/2)) so that many clients retrying at once spread out. */
export function jittered(ms: number, fraction = 0.5, random: () => number = Math.random): number {
  return ms * (1 - fraction / 2 + random() * fraction);
}
