/**
 * When and how long to retry. Pure functions plus an abortable sleep; the transport applies them to
 * each request, and {@link rideOutOutage} to the long-running helpers (wait, logs follow).
 *
 * Why these numbers: the gateway's rate limiter refills per second and answers 429 with a
 * Retry-After of at least 1 s, and a restarting Node gateway is back within a few seconds. Four
 * tries with a 300 ms base (≈ 0.3 + 0.6 + 1.2 s, each jittered) ride out both without holding a
 * script for long; Retry-After always wins when it is longer.
 */

import { GatewayUnavailableError, MalformedResponseError, NetworkError, SlurmgateError } from "./errors.ts";

/**
 * How the client retries. Only requests that are safe to repeat are retried: GET/HEAD/PUT/DELETE,
 * POST /v1/jobs and /v1/sweeps with an Idempotency-Key (submit and sweep always send one) and the
 * cancels of a job or a sweep.
 * @example createClient({ baseUrl, token, retry: { attempts: 6, baseDelayMs: 500 } })
 */
export type RetryOptions = {
  /** Total tries, including the first. 1 disables retries. Default 4. */
  attempts?: number;
  /** First backoff step; each retry doubles it. Default 300 ms. */
  baseDelayMs?: number;
  /** Upper bound of one backoff step (before Retry-After). Default 10 s. */
  maxDelayMs?: number;
  /** A Retry-After longer than this is not waited for: the error is returned instead. Default 60 s. */
  maxRetryAfterMs?: number;
  /** Called before each retry, e.g. to log it. */
  onRetry?: (info: RetryInfo) => void;
  /**
   * How long `wait` and following `logs` keep trying while the gateway cannot be reached (or answers
   * 502/503/504) before they give up with a {@link GatewayUnavailableError}. Default 5 minutes.
   */
  outageMs?: number;
  /** Called before each try during an outage (wait, logs follow), e.g. to say "gateway unreachable, retrying…". */
  onOutage?: (info: OutageInfo) => void;
  /** Random source in [0, 1), for tests. Default Math.random. */
  random?: () => number;
};

/**
 * What `onRetry` is told.
 * @example retry: { onRetry: (i: RetryInfo) => console.error(`retry ${i.attempt} in ${i.delayMs}ms: ${i.reason}`) }
 */
export type RetryInfo = { attempt: number; delayMs: number; reason: string; method: string; url: string };

/**
 * What `onOutage` is told: how long the gateway has been unreachable, the wait before the next try, why.
 * @example retry: { onOutage: (o: OutageInfo) => console.error(`gateway unreachable for ${o.downForMs} ms, retrying…`) }
 */
export type OutageInfo = { downForMs: number; delayMs: number; error: Error };

/** Defaults of {@link RetryOptions}, resolved. */
export type RetryPolicy = Required<Omit<RetryOptions, "onRetry" | "onOutage">> &
  Pick<RetryOptions, "onRetry" | "onOutage">;

/**
 * Fills in the defaults.
 * @example resolveRetry({ attempts: 1 }).baseDelayMs === 300
 */
export function resolveRetry(options: RetryOptions = {}): RetryPolicy {
  return {
    attempts: Math.max(1, Math.floor(options.attempts ?? 4)),
    baseDelayMs: options.baseDelayMs ?? 300,
    maxDelayMs: options.maxDelayMs ?? 10_000,
    maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
    random: options.random ?? Math.random,
    onRetry: options.onRetry,
    outageMs: Math.max(0, options.outageMs ?? 300_000),
    onOutage: options.onOutage,
  };
}

const IDEMPOTENT_METHODS = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);
const CANCEL_PATH = /\/v1\/(jobs|sweeps)\/[^/]+\/cancel$/;
const KEYED_PATH = /\/v1\/(jobs|sweeps)$/;

/**
 * True when sending the request twice cannot do anything twice.
 * @example isSafeToRetry(new Request("https://gw/v1/jobs", { method: "POST" })) === false
 */
export function isSafeToRetry(request: Request): boolean {
  if (IDEMPOTENT_METHODS.has(request.method)) {
    return true;
  }
  if (request.method !== "POST") {
    return false;
  }
  const path = new URL(request.url).pathname;
  return CANCEL_PATH.test(path) || (KEYED_PATH.test(path) && request.headers.has("idempotency-key"));
}

/**
 * Parses Retry-After (delta seconds or an HTTP date) into milliseconds.
 * @example parseRetryAfter("2") === 2000
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) {
    return undefined;
  }
  if (/^\d+$/.test(value.trim())) {
    return Number(value.trim()) * 1000;
  }
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The delay before retry number `attempt` (1-based): exponential with "equal jitter" (half fixed,
 * half random, so clients that failed together do not return together), never below Retry-After.
 * @example backoffDelay(resolveRetry(), 1, undefined) // 150..300
 */
export function backoffDelay(policy: RetryPolicy, attempt: number, retryAfterMs: number | undefined): number {
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  const jittered = step / 2 + policy.random() * (step / 2);
  return Math.round(Math.max(jittered, retryAfterMs ?? 0));
}

/**
 * Runs `call` again and again while it fails with an error that says "the gateway is not there right
 * now" (no response, or 502/503/504 and the like), with backoff and Retry-After, for at most
 * `policy.outageMs` from the first failure; then throws a {@link GatewayUnavailableError}. Any other
 * error, and an abort, is thrown at once.
 * @example const events = await rideOutOutage(policy, () => fetchEvents(raw, id), signal);
 */
export async function rideOutOutage<T>(policy: RetryPolicy, call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  let since: number | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (signal?.aborted || !isOutage(err)) {
        throw err;
      }
      since ??= Date.now();
      const downForMs = Date.now() - since;
      if (downForMs >= policy.outageMs) {
        throw new GatewayUnavailableError(downForMs, err as Error);
      }
      const retryAfterMs = retryAfterOf(err);
      const delayMs = Math.min(backoffDelay(policy, attempt, retryAfterMs), Math.max(1, policy.outageMs - downForMs));
      policy.onOutage?.({ downForMs, delayMs, error: err as Error });
      await sleep(delayMs, signal);
    }
  }
}

function isOutage(err: unknown): boolean {
  if (err instanceof NetworkError) {
    return true;
  }
  return (err instanceof SlurmgateError || err instanceof MalformedResponseError) && err.retryable;
}

function retryAfterOf(err: unknown): number | undefined {
  return err instanceof SlurmgateError && err.retryAfterSeconds !== undefined
    ? err.retryAfterSeconds * 1000
    : undefined;
}

/**
 * Resolves after `ms`, or rejects with the signal's reason when it aborts first.
 * @example await sleep(500, controller.signal);
 */
export function sleep(ms: number, signal?: AbortSignal | null): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
