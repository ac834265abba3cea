/**
 * How the client talks to an OpenID Provider: one JSON answer per request, read with a size cap and
 * a timeout, OAuth error answers turned into OidcErrors carrying the provider's code, and the
 * provider's words made safe to print. Web APIs only.
 */
import { readCappedText } from "./read-capped.ts";
import { OidcError } from "./errors.ts";
import type { FetchLike } from "./transport.ts";

/** Discovery and token answers are small; a provider that sends megabytes is not one to trust. */
const MAX_BODY_BYTES = 256 * 1024;
const TIMEOUT_MS = 10_000;

/**
 * POSTs a form and returns the JSON answer, or throws the OAuth error it carries. Form fields are
 * never put in the error (they hold codes and tokens).
 */
export async function postForm(
  issuer: string,
  url: string,
  form: Record<string, string>,
  fetchImpl: FetchLike = defaultFetch,
  signal?: AbortSignal,
): Promise<Record<string, unknown>> {
  const init = {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams(form),
  };
  return getJson(issuer, url, init, fetchImpl, signal);
}

/**
 * One request whose answer must be a JSON object: an `error` member, a non-2xx status, no answer or
 * an oversized one become OidcErrors (`unreachable` and 5xx are `retryable`).
 */
export async function getJson(
  issuer: string,
  url: string,
  init: RequestInit,
  fetchImpl: FetchLike,
  outer?: AbortSignal,
): Promise<Record<string, unknown>> {
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  const request = new Request(url, { ...init, signal: outer ? AbortSignal.any([outer, timeout]) : timeout });
  let response: Response;
  let text: string;
  try {
    response = await fetchImpl(request);
    text = await readCapped(response);
  } catch (err) {
    if (outer?.aborted) {
      throw err;
    }
    if (err instanceof OidcError) {
      throw err;
    }
    throw new OidcError(issuer, "unreachable", `cannot reach ${originOf(request.url)}: ${describe(err)}`, {
      retryable: true,
      cause: err,
    });
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new OidcError(
      issuer,
      "invalid_response",
      `${originOf(request.url)} answered HTTP ${response.status} without a JSON object`,
      { retryable: response.status >= 500 },
    );
  }
  const record = body as Record<string, unknown>;
  if (typeof record.error === "string") {
    const description = typeof record.error_description === "string" ? `: ${clip(record.error_description)}` : "";
    throw new OidcError(issuer, clip(record.error), `${clip(record.error)}${description}`, {
      retryable: response.status >= 500,
    });
  }
  if (!response.ok) {
    throw new OidcError(issuer, "invalid_response", `${originOf(request.url)} answered HTTP ${response.status}`, {
      retryable: response.status >= 500,
    });
  }
  return record;
}

/** Reads at most MAX_BODY_BYTES, whatever content-length claims. */
async function readCapped(response: Response): Promise<string> {
  const text = await readCappedText(response, MAX_BODY_BYTES);
  if (text === null) {
    throw new OidcError(originOf(response.url), "invalid_response", `answer larger than ${MAX_BODY_BYTES} bytes`);
  }
  return text;
}

export const defaultFetch: FetchLike = (request) => globalThis.fetch(request);

/** Text from a provider, made safe to print on one line and short. */
export function clip(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? err.cause : undefined;
    const code = cause && "code" in cause && typeof cause.code === "string" ? `${cause.code} ` : "";
    return clip(cause ? `${code}${cause.message}` : err.message);
  }
  return clip(String(err));
}
