/**
 * The fetch the openapi-fetch client runs on: retries what is safe to retry, turns "no response"
 * into a NetworkError and "a response that breaks the contract" into a MalformedResponseError, so
 * every caller (helpers and `raw` alike) sees either a contract-shaped answer or a typed error.
 */
import { MalformedResponseError, NetworkError, isRetryableStatus } from "./errors.ts";
import { type RetryPolicy, backoffDelay, isSafeToRetry, parseRetryAfter, sleep } from "./retry.ts";

/**
 * A fetch that takes a Request, like the one openapi-fetch calls.
 * @example const f: FetchLike = (req) => globalThis.fetch(req);
 */
export type FetchLike = (request: Request) => Promise<Response>;

/**
 * Wraps `fetchImpl` with the retry policy and response checks.
 * @example const f = createTransport((r) => fetch(r), resolveRetry({ attempts: 3 }));
 */
export function createTransport(fetchImpl: FetchLike, policy: RetryPolicy): FetchLike {
  return async function transport(request) {
    const retryable = policy.attempts > 1 && isSafeToRetry(request);
    for (let attempt = 1; ; attempt++) {
      const last = !retryable || attempt >= policy.attempts;
      let response: Response;
      try {
        // Not request.clone(): undici lets a clone's link to the caller's AbortSignal be garbage collected
        // (nodejs/undici#4068), and an abort then never reaches a long-poll in flight. The constructor keeps it.
        response = await fetchImpl(last ? request : new Request(request.clone(), { signal: request.signal }));
      } catch (err) {
        if (request.signal.aborted || isAbort(err)) {
          throw err;
        }
        if (last) {
          throw new NetworkError(request.url, err);
        }
        await pause(policy, attempt, undefined, request, describe(err));
        continue;
      }
      if (!last && isRetryableStatus(response.status) && !(await isConsideredAnswer(response))) {
        const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
        if (retryAfter === undefined || retryAfter <= policy.maxRetryAfterMs) {
          await response.body?.cancel().catch(() => undefined);
          await pause(policy, attempt, retryAfter, request, `HTTP ${response.status}`);
          continue;
        }
      }
      return checked(request, response);
    }
  };
}

/**
 * Problems the gateway gives only after it has already waited its full deadline on the caller's
 * behalf (an agent that did not answer a browse or an estimate in time): retrying at once would
 * repeat that wait for nothing, so the caller gets the problem now and decides.
 */
const CONSIDERED_CODES: ReadonlySet<string> = new Set(["agent_timeout"]);

async function isConsideredAnswer(response: Response): Promise<boolean> {
  if (!/^application\/problem\+json\b/i.test(response.headers.get("content-type") ?? "")) {
    return false;
  }
  const body = await response
    .clone()
    .json()
    .catch(() => undefined);
  return typeof body?.code === "string" && CONSIDERED_CODES.has(body.code);
}

async function pause(
  policy: RetryPolicy,
  attempt: number,
  retryAfterMs: number | undefined,
  request: Request,
  reason: string,
) {
  const delayMs = backoffDelay(policy, attempt, retryAfterMs);
  policy.onRetry?.({ attempt, delayMs, reason, method: request.method, url: request.url });
  await sleep(delayMs, request.signal);
}

const EVENT_STREAM = /\btext\/event-stream\b/i;
const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json\b/i;
/** JSON lines (a sweep's results), when asked for: handed on unread, parsed by the caller as they stream in. */
const NDJSON_TYPE = /\bapplication\/x-ndjson\b/i;
/** A job's output file, when asked for: streamed to disk by the caller, never read into memory. */
const OCTET_TYPE = /\bapplication\/octet-stream\b/i;
/** A job's batch script, when asked for: text, read here like a JSON body. */
const TEXT_TYPE = /^text\/plain\b/i;

/** Reads the body once, proves it is what the API promises, and hands back an equivalent Response. */
async function checked(request: Request, response: Response): Promise<Response> {
  if (response.status === 204 || response.status === 304 || request.method === "HEAD") {
    return response;
  }
  const contentType = response.headers.get("content-type") ?? "";
  // A stream asked for (events, JSON lines) is handed over unread: it is consumed as it arrives.
  const accept = request.headers.get("accept") ?? "";
  const streamed =
    (EVENT_STREAM.test(contentType) && EVENT_STREAM.test(accept)) ||
    (NDJSON_TYPE.test(contentType) && NDJSON_TYPE.test(accept)) ||
    (OCTET_TYPE.test(contentType) && OCTET_TYPE.test(accept));
  if (response.ok && streamed) {
    return response;
  }
  const body = await readText(request, response);
  const info = { status: response.status, contentType, body, url: request.url };
  if (response.ok && TEXT_TYPE.test(contentType) && TEXT_TYPE.test(accept)) {
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  }
  if (!JSON_TYPE.test(contentType)) {
    const what = response.ok
      ? `expected JSON, got ${contentType || "no content type"}`
      : `expected a problem+json document, got ${contentType || "no content type"}`;
    throw new MalformedResponseError(what, info);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new MalformedResponseError("the body is not valid JSON", info);
  }
  if (!response.ok && !isProblem(parsed)) {
    throw new MalformedResponseError("an error without a problem document (status and code)", info);
  }
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

async function readText(request: Request, response: Response): Promise<string> {
  try {
    return await response.text();
  } catch (err) {
    if (request.signal.aborted || isAbort(err)) {
      throw err;
    }
    throw new NetworkError(request.url, err);
  }
}

function isProblem(value: unknown): boolean {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { status?: unknown }).status === "number" &&
    typeof (value as { code?: unknown }).code === "string"
  );
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return `${err.message}${cause}`;
  }
  return String(err);
}
