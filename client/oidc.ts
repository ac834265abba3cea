/**
 * The client's side of an OpenID Provider: discovery, checked before any endpoint is trusted, the
 * token endpoint's answers, and refresh. Web APIs only, so a browser or Deno caller can keep its own
 * token fresh the same way the CLI does (pass the result to `createClient({ token: () => … })`).
 */
import { OidcError } from "./errors.ts";
import { clip, defaultFetch, getJson, postForm } from "./oidc-http.ts";
import type { FetchLike } from "./transport.ts";

/** What discovery told us, after checking it. */
export type OidcEndpoints = {
  /** The provider's own `issuer`: exactly what its tokens carry in `iss`. */
  issuer: string;
  tokenEndpoint: string;
  /** Where a browser is sent for the authorization-code flow (the web page's sign-in). */
  authorizationEndpoint?: string;
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
    authorizationEndpoint: endpoint("authorization_endpoint", false),
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
