/**
 * Per-token token bucket. In one process it is exact; across Workers isolates each keeps its own
 * buckets, so the limit is per isolate: a guard against floods, not a billing meter.
 */
export type RateLimiter = { take(key: string): { ok: true } | { ok: false; retryAfterSeconds: number } };

export function createRateLimiter(perSecond: number, burst: number, now: () => number): RateLimiter {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(key) {
      if (perSecond <= 0) {
        return { ok: true };
      }
      const t = now();
      const bucket = buckets.get(key) ?? { tokens: burst, at: t };
      bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.at) / 1000) * perSecond);
      bucket.at = t;
      if (buckets.size > 100_000) {
        buckets.clear();
      }
      buckets.set(key, bucket);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return { ok: true };
      }
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond)) };
    },
  };
}
