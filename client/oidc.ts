/**
 * The client's side of an OpenID Provider: discovery, checked before any endpoint is trusted, the
 * token endpoint's answers, and refresh. Web APIs only, so a browser or Deno caller can keep its own
 * token fresh the same way the CLI does (pass the result to `createClient({ token: () => … })`).
 */
import { OidcError } from "./errors.ts";
import type { FetchLike } from "./transport.ts";

/** What discovery told us, after checking it. */
export type OidcEndpoints = {
  /** The provider's own `issuer`: exactly what its tokens carry in `iss`. */
  issuer: string;
  tokenEndpoint: string;
  deviceAuthorizationEndpoint?: string;
  revocationEndpoint?: string;
};

/** A token endpoint's successful answer, reduced to what a caller keeps. */
export type OidcTokens = {
  /** The ID token: a JWT whose audience is the client id; what the gateway accepts as a bearer. */
  idToken: string;
  /** Absent when the provider gave none (no `offline_access`); then the sign-in ends with the ID token. */
  refreshToken?: string;
  /** The ID token's `exp`, as an ISO time. */
  expiresAt: string;
  subject: string;
  /** `preferred_username`, when the token has one. */
  username?: string;
};

/** Discovery and token answers are small; a provider that sends megabytes is not one to trust. */
const MAX_BODY_BYTES = 256 * 1024;
const TIMEOUT_MS = 10_000;

/**
 * True for hosts on this machine, where plain http cannot be overheard.
 * @example isLoopback("127.0.0.1") === true; isLoopback("idp.example.org") === false
 */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * Why `url` may not carry credentials, or undefined when it may: https, or http on loopback only.
 * @example untrustedUrl("http://idp.example.org/token") // => "is not https (plain http only on this machine)"
 */
export function untrustedUrl(url: URL): string | undefined {
  if (url.protocol === "https:") {
    return undefined;
  }
  if (url.protocol === "http:" && isLoopback(url.hostname)) {
    return undefined;
  }
  return url.protocol === "http:" ? "is not https (plain http only on this machine)" : `uses ${url.protocol}`;
}

/**
 * Fetches `<issuer>/.well-known/openid-configuration` and checks it: its `issuer` must be the one
 * asked for (a document claiming another issuer is a mix-up), and every endpoint must be https (or
 * loopback http) on the issuer's own origin, so no credential is ever posted anywhere else.
 * @example const endpoints = await discover("https://idp.example.org/realms/hpc");
 */
export async function discover(issuerUrl: string, fetchImpl: FetchLike = defaultFetch): Promise<OidcEndpoints> {
  const wanted = issuerUrl.replace(/\/+$/, "");
  const untrusted = (why: string) =>
    new OidcError(wanted, "untrusted_discovery", `refusing to sign in at ${wanted}: ${why}`);
  let base: URL;
  try {
    base = new URL(wanted);
  } catch {
    throw untrusted("not a URL");
  }
  const baseWhy = untrustedUrl(base);
  if (baseWhy) {
    throw untrusted(`the issuer URL ${baseWhy}`);
  }
  if (base.search || base.hash || base.username || base.password) {
    throw untrusted("an issuer URL has no query, fragment or credentials");
  }
  const doc = await getJson(wanted, `${wanted}/.well-known/openid-configuration`, {}, fetchImpl);
  if (typeof doc.issuer !== "string" || doc.issuer.replace(/\/+$/, "") !== wanted) {
    throw untrusted(`its discovery document names another issuer (${clip(String(doc.issuer))})`);
  }
  const endpoint = (name: string, required: boolean): string | undefined => {
    const value = doc[name];
    if (value === undefined && !required) {
      return undefined;
    }
    if (typeof value !== "string") {
      throw untrusted(`${name} is ${value === undefined ? "missing" : "not a string"}`);
    }
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw untrusted(`${name} is not a URL`);
    }
    const why = untrustedUrl(url);
    if (why) {
      throw untrusted(`${name} ${clip(value)} ${why}`);
    }
    if (url.origin !== base.origin) {
      throw untrusted(`${name} ${clip(value)} is on another origin than the issuer (${base.origin})`);
    }
    return value;
  };
  return {
    issuer: doc.issuer,
    tokenEndpoint: endpoint("token_endpoint", true)!,
    deviceAuthorizationEndpoint: endpoint("device_authorization_endpoint", false),
    revocationEndpoint: endpoint("revocation_endpoint", false),
  };
}

/**
 * Trades a refresh token for fresh tokens. With rotation, the answer carries a new refresh token and
 * the old one is spent: store the new one before using the ID token.
 * @example const next = await refreshTokens({ issuer, tokenEndpoint, clientId: "slurmgate", refreshToken });
 */
export function refreshTokens(input: {
  issuer: string;
  tokenEndpoint: string;
  clientId: string;
  refreshToken: string;
  fetch?: FetchLike;
}): Promise<OidcTokens> {
  return tokenRequest(
    input.issuer,
    input.tokenEndpoint,
    { grant_type: "refresh_token", refresh_token: input.refreshToken, client_id: input.clientId },
    input.fetch,
  );
}

/**
 * Revokes a refresh token (RFC 7009). True when the provider said 200 (which it also says for a
 * token it no longer knows); false when it could not be reached or refused.
 * @example await revokeToken({ revocationEndpoint, clientId: "slurmgate", refreshToken });
 */
export async function revokeToken(input: {
  revocationEndpoint: string;
  clientId: string;
  refreshToken: string;
  fetch?: FetchLike;
}): Promise<boolean> {
  const form = { token: input.refreshToken, token_type_hint: "refresh_token", client_id: input.clientId };
  try {
    const response = await (input.fetch ?? defaultFetch)(
      new Request(input.revocationEndpoint, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(form),
        signal: AbortSignal.timeout(5000),
      }),
    );
    await response.body?.cancel().catch(() => undefined);
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * One POST to the token endpoint. An OAuth error answer becomes an OidcError with the provider's
 * code (`authorization_pending`, `invalid_grant`, …); a success must carry an ID token.
 */
export async function tokenRequest(
  issuer: string,
  tokenEndpoint: string,
  form: Record<string, string>,
  fetchImpl: FetchLike = defaultFetch,
  signal?: AbortSignal,
): Promise<OidcTokens> {
  const body = await postForm(issuer, tokenEndpoint, form, fetchImpl, signal);
  const idToken = body.id_token;
  if (typeof idToken !== "string") {
    throw new OidcError(issuer, "invalid_response", `${issuer} returned no ID token (is "openid" in the scope?)`);
  }
  const claims = jwtClaims(issuer, idToken);
  return {
    idToken,
    refreshToken: typeof body.refresh_token === "string" ? body.refresh_token : undefined,
    expiresAt: new Date(claims.exp * 1000).toISOString(),
    subject: claims.sub,
    username: typeof claims.preferred_username === "string" ? claims.preferred_username : undefined,
  };
}

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

/** The payload of a JWT, unverified: the gateway verifies; the client only needs `exp` and `sub`. */
function jwtClaims(issuer: string, jwt: string): { exp: number; sub: string } & Record<string, unknown> {
  const bad = () => new OidcError(issuer, "invalid_response", `${issuer} returned an ID token that is not a JWT`);
  const payload = jwt.split(".")[1];
  if (payload === undefined) {
    throw bad();
  }
  let claims: Record<string, unknown>;
  try {
    const bytes = Uint8Array.from(atob(payload.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    claims = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw bad();
  }
  if (typeof claims?.exp !== "number" || typeof claims.sub !== "string") {
    throw new OidcError(issuer, "invalid_response", `${issuer} returned an ID token without exp or sub`);
  }
  return claims as { exp: number; sub: string };
}

async function getJson(
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
  const reader = response.body?.getReader();
  if (!reader) {
    return "";
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      break;
    }
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw new OidcError(originOf(response.url), "invalid_response", `answer larger than ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}

const defaultFetch: FetchLike = (request) => globalThis.fetch(request);

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
