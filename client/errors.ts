/**
 * The client's errors. Three kinds, so callers can tell "the gateway said no" from "we never got a
 * sensible answer": {@link SlurmgateError} (a problem+json from the gateway), {@link NetworkError}
 * (no response at all) and {@link MalformedResponseError} (a response that is not what the API
 * promises, e.g. a proxy's HTML error page). {@link WaitTimeoutError} ends a `wait` that ran out
 * of time. Every one carries `retryable`.
 */
import type { Problem } from "./types.ts";

/**
 * Statuses worth retrying unchanged, the client's one list: 408 and 429 (come back later), 503 (the
 * gateway is busy or starting), 502/504 (what proxies say while a gateway restarts). The transport
 * retries them, errors carry `retryable` from them, and long waits ride them out.
 */
const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 502, 503, 504]);

/**
 * True when a status means "try again later".
 * @example isRetryableStatus(503) === true
 */
export function isRetryableStatus(status: number): boolean {
  return RETRYABLE_STATUSES.has(status);
}

/** One field at fault in a refused request: `body.resources.cpus`, and why. */
export type FieldError = { field: string; message: string };

/**
 * The gateway refused a request with an RFC 9457 problem.
 * @example
 * try { await client.submit(spec); }
 * catch (err) {
 *   if (err instanceof SlurmgateError && err.code === "validation_failed") {
 *     for (const e of err.errors) console.error(e.field, e.message);
 *   }
 * }
 */
export class SlurmgateError extends Error {
  override readonly name = "SlurmgateError";
  /** HTTP status, e.g. 422. */
  readonly status: number;
  /** Stable machine code, e.g. `validation_failed`. */
  readonly code: Problem["code"];
  /** The request field at fault as a dotted path (`body.resources.time`), when one is. */
  readonly field: string | undefined;
  /** The human explanation; with several faults, a summary of all of them. */
  readonly detail: string;
  /**
   * Every field at fault, one entry each (a 422 lists all of a body's faults at once: unknown
   * fields with the field probably meant, wrong types, patterns, fields that exclude each other).
   * Empty when the problem names no field.
   */
  readonly errors: FieldError[];
  /** The whole problem document as sent. */
  readonly problem: Problem;
  /** True for 429/503 and similar: the same request may succeed later. */
  readonly retryable: boolean;
  /** Seconds the gateway asked us to wait (Retry-After), when it did. */
  readonly retryAfterSeconds: number | undefined;

  constructor(problem: Problem, retryAfterSeconds?: number) {
    const detail = problem.detail ?? problem.title;
    super(`${detail} (${problem.status} ${problem.code})`);
    this.status = problem.status;
    this.code = problem.code;
    this.field = problem.field;
    this.detail = detail;
    this.errors = fieldErrorsOf(problem);
    this.problem = problem;
    this.retryable = isRetryableStatus(problem.status);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * No HTTP response: DNS, refused connection, reset, TLS. Thrown after the retries are spent.
 * @example catch (err) { if (err instanceof NetworkError) console.error("gateway unreachable:", err.url); }
 */
export class NetworkError extends Error {
  override readonly name = "NetworkError";
  readonly retryable = true;
  /** The URL that could not be reached. */
  readonly url: string;

  constructor(url: string, cause: unknown) {
    const why = cause instanceof Error ? (causeMessage(cause) ?? cause.message) : String(cause);
    super(`cannot reach ${originOf(url)}: ${why}`, { cause });
    this.url = url;
  }
}

/**
 * A response that is not what the API promises: not JSON, JSON that does not parse, an error status
 * without a problem document, or a body of the wrong shape.
 * @example catch (err) { if (err instanceof MalformedResponseError) console.error(err.status, err.bodySnippet); }
 */
export class MalformedResponseError extends Error {
  override readonly name = "MalformedResponseError";
  readonly status: number;
  readonly contentType: string;
  /** The first 200 characters of the body, for the message and for debugging. */
  readonly bodySnippet: string;
  readonly url: string;
  /** A 502/503/504 HTML page from a proxy is worth retrying; a bad 200 is not. */
  readonly retryable: boolean;

  constructor(what: string, info: { status: number; contentType: string; body: string; url: string }) {
    const snippet = info.body.replace(/\s+/g, " ").trim().slice(0, 200);
    super(
      `malformed response from ${originOf(info.url)} (HTTP ${info.status}): ${what}${snippet ? `: ${snippet}` : ""}`,
    );
    this.status = info.status;
    this.contentType = info.contentType;
    this.bodySnippet = snippet;
    this.url = info.url;
    this.retryable = isRetryableStatus(info.status);
  }
}

/**
 * `wait` or a followed `logs` gave up after the gateway stayed unreachable (or answered 502/503/504)
 * for longer than `retry.outageMs`.
 * @example catch (err) { if (err instanceof GatewayUnavailableError) console.error(err.message); }
 */
export class GatewayUnavailableError extends Error {
  override readonly name = "GatewayUnavailableError";
  readonly retryable = true;
  /** How long the gateway had been unreachable when the client gave up. */
  readonly downForMs: number;

  constructor(downForMs: number, cause: Error) {
    super(`gateway unreachable for ${Math.round(downForMs / 1000)}s, giving up: ${cause.message}`, { cause });
    this.downForMs = downForMs;
  }
}

/**
 * `wait` ran out of time before the job reached the state asked for.
 * @example catch (err) { if (err instanceof WaitTimeoutError) console.error("still", err.job.state); }
 */
export class WaitTimeoutError extends Error {
  override readonly name = "WaitTimeoutError";
  readonly retryable = true;
  /** The job as last seen. */
  readonly job: { id: string; state: string };

  constructor(job: { id: string; state: string }, timeoutMs: number) {
    super(`job ${job.id} is still ${job.state} after ${Math.round(timeoutMs / 1000)}s`);
    this.job = job;
  }
}

/**
 * True for errors a caller may retry unchanged (network, 429, 503, proxies' 502/504).
 * @example if (isRetryable(err)) setTimeout(run, 1000);
 */
export function isRetryable(err: unknown): boolean {
  return typeof err === "object" && err !== null && "retryable" in err && err.retryable === true;
}

/**
 * True for the error a fetch or a helper throws when its AbortSignal fires.
 * @example catch (err) { if (isAbortError(err)) return; throw err; }
 */
export function isAbortError(err: unknown): boolean {
  return (
    typeof err === "object" &&
    err !== null &&
    "name" in err &&
    (err.name === "AbortError" || err.name === "TimeoutError")
  );
}

/** The problem's `errors[]`, keeping only well-formed entries: a proxy's or a broken gateway's body must not crash a catch block. */
function fieldErrorsOf(problem: Problem): FieldError[] {
  const errors: unknown = (problem as { errors?: unknown }).errors;
  if (!Array.isArray(errors)) {
    return [];
  }
  return errors.filter(
    (e): e is FieldError =>
      typeof e === "object" && e !== null && typeof e.field === "string" && typeof e.message === "string",
  );
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/** undici hides the useful part ("ECONNREFUSED 127.0.0.1:9") in `cause`. */
function causeMessage(err: Error): string | undefined {
  const cause = err.cause;
  if (cause instanceof Error && cause.message) {
    const code = "code" in cause && typeof cause.code === "string" ? cause.code : undefined;
    return code && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message;
  }
  return undefined;
}

/**
 * Signing in with an OpenID Provider failed: the provider refused (`access_denied`, `expired_token`,
 * `invalid_grant` for a revoked refresh token, …, as the provider's OAuth error code), could not be
 * reached (`unreachable`), or said something the client must not trust (`untrusted_discovery`,
 * `invalid_response`).
 * @example catch (err) { if (err instanceof OidcError && err.code === "invalid_grant") console.error("sign in again"); }
 */
export class OidcError extends Error {
  override readonly name = "OidcError";
  /** The provider's OAuth error code, or `unreachable`, `untrusted_discovery`, `invalid_response`. */
  readonly code: string;
  /** The issuer the client was talking to. */
  readonly issuer: string;
  /** True when the same call may succeed later (the provider was unreachable or busy). */
  readonly retryable: boolean;

  constructor(issuer: string, code: string, message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.issuer = issuer;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}
