/**
 * Signing in to the page with an OpenID Provider: the authorization-code flow with PKCE (S256),
 * `state` and `nonce`, run by the page itself as a public client. The ID token is the bearer (the
 * gateway verifies it); it and the refresh token live in this tab's sessionStorage only.
 *
 * The callback lands on `/ui/?code=…&state=…`; the query is wiped from the address bar before
 * anything else runs, and a code is exchanged only for the one sign-in this tab started (the
 * pending record is used once, so a replayed callback is refused without asking the provider).
 */
import { OidcError } from "../../../client/errors.ts";
import { discover, refreshTokens, tokenRequest } from "../../../client/oidc.ts";

export type Offered = { issuer: string; clientId: string };

/** Scopes asked for; offline_access is what gives a refresh token (with prompt=consent, per OIDC Core). */
const SCOPE = "openid profile email offline_access";
/** Refresh this long before the ID token expires, so no request goes out with a token about to lapse. */
const EARLY_MS = 30_000;
const PENDING_KEY = "slurmgate.oidc.pending";
const OIDC_KEY = "slurmgate.oidc";

type Pending = {
  issuer: string;
  clientId: string;
  tokenEndpoint: string;
  state: string;
  nonce: string;
  verifier: string;
};
type Signed = { issuer: string; clientId: string; tokenEndpoint: string; refreshToken?: string; exp: number };

/** The issuers the gateway offers for browsers (from the page's meta tag; public values only). */
export function offeredIssuers(): Offered[] {
  const raw = document.querySelector('meta[name="slurmgate-oidc"]')?.getAttribute("content");
  try {
    const list = JSON.parse(raw ?? "[]") as unknown;
    return Array.isArray(list) ? (list as Offered[]).filter((i) => i.issuer && i.clientId) : [];
  } catch {
    return [];
  }
}

export const issuerName = (issuer: string) => new URL(issuer).host;

const redirectUri = () => `${location.origin}/ui/`;

const b64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");

const random = () => b64url(crypto.getRandomValues(new Uint8Array(32)));

/** Sends this tab to the provider's sign-in page (a top-level navigation). */
export async function beginSignIn(offered: Offered): Promise<void> {
  const endpoints = await discover(offered.issuer);
  if (!endpoints.authorizationEndpoint) {
    throw new Error(`${offered.issuer} has no authorization endpoint`);
  }
  const pending: Pending = {
    issuer: endpoints.issuer,
    clientId: offered.clientId,
    tokenEndpoint: endpoints.tokenEndpoint,
    state: random(),
    nonce: random(),
    verifier: random(),
  };
  const challenge = b64url(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(pending.verifier))),
  );
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(endpoints.authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: pending.clientId,
    redirect_uri: redirectUri(),
    scope: SCOPE,
    prompt: "consent",
    state: pending.state,
    nonce: pending.nonce,
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.href);
}

export type Callback = Record<"code" | "state" | "error" | "error_description", string | null>;

/**
 * The provider's answer in the address bar, if this load is one, taken out of it at once (and out
 * of history) so no code or token ever stays in a URL.
 */
export function takeCallback(): Callback | null {
  const q = new URLSearchParams(location.search);
  if (!q.has("code") && !q.has("error") && !q.has("state")) {
    return null;
  }
  history.replaceState(null, "", `${location.pathname}${location.hash}`);
  return {
    code: q.get("code"),
    state: q.get("state"),
    error: q.get("error"),
    error_description: q.get("error_description"),
  };
}

function claimsOf(jwt: string): Record<string, unknown> {
  try {
    const part = (jwt.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

/** The ID token must be the provider's, for this page's client, and (at sign-in) for this sign-in. */
function checkIdToken(idToken: string, expect: { issuer: string; clientId: string; nonce?: string }) {
  const claims = claimsOf(idToken);
  const aud = [claims.aud].flat();
  if (claims.iss !== expect.issuer || !aud.includes(expect.clientId)) {
    throw new Error("Sign-in refused: the ID token is not from this provider for this page.");
  }
  if (expect.nonce !== undefined && claims.nonce !== expect.nonce) {
    throw new Error("Sign-in refused: the ID token was not issued for this sign-in (nonce mismatch).");
  }
}

/** Finishes the sign-in this tab started; returns the ID token to use as the bearer. */
export async function completeSignIn(callback: Callback): Promise<string> {
  const raw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  const pending = raw ? (JSON.parse(raw) as Pending) : null;
  if (!pending || !callback.state || callback.state !== pending.state) {
    throw new Error(
      "Sign-in refused: the answer does not belong to a sign-in started in this tab (state). Nothing was exchanged.",
    );
  }
  if (callback.error || !callback.code) {
    const why = callback.error_description ?? callback.error ?? "no code";
    throw new Error(`Sign-in at ${issuerName(pending.issuer)} did not complete: ${why}`);
  }
  const tokens = await tokenRequest(pending.issuer, pending.tokenEndpoint, {
    grant_type: "authorization_code",
    code: callback.code,
    redirect_uri: redirectUri(),
    client_id: pending.clientId,
    code_verifier: pending.verifier,
  }).catch((err: unknown) => {
    throw err instanceof OidcError ? new Error(`Sign-in at ${issuerName(pending.issuer)} failed: ${err.message}`) : err;
  });
  checkIdToken(tokens.idToken, pending);
  store(pending, tokens.idToken, tokens.refreshToken);
  return tokens.idToken;
}

function store(on: Omit<Signed, "exp" | "refreshToken">, idToken: string, refreshToken: string | undefined) {
  lapsed = undefined;
  const exp = Number(claimsOf(idToken).exp) * 1000;
  const signed: Signed = {
    issuer: on.issuer,
    clientId: on.clientId,
    tokenEndpoint: on.tokenEndpoint,
    refreshToken,
    exp,
  };
  sessionStorage.setItem(OIDC_KEY, JSON.stringify(signed));
  sessionStorage.setItem(TOKEN_KEY, idToken);
}

export const TOKEN_KEY = "slurmgate.token";

/** Forgets every credential of this tab: the bearer, the provider sign-in and any sign-in under way. */
export function forget() {
  for (const key of [TOKEN_KEY, OIDC_KEY, PENDING_KEY]) {
    sessionStorage.removeItem(key);
  }
}

/** Thrown when the sign-in has lapsed and cannot be renewed: the page goes back to sign-in with it. */
export class SignInExpired extends Error {}

/**
 * Why the sign-in lapsed, until the next sign-in: requests that were already on their way then get
 * the same reason, not a bare "no token" from the gateway.
 */
let lapsed: string | undefined;

/** A new token sign-in: an earlier lapse no longer applies. */
export function signedInWithToken(token: string) {
  lapsed = undefined;
  sessionStorage.setItem(TOKEN_KEY, token);
}

function lapse(reason: string): never {
  lapsed = reason;
  throw new SignInExpired(reason);
}

let refreshing: Promise<string> | undefined;

/**
 * The bearer to send: a token-sign-in token as it is; a provider's ID token refreshed shortly
 * before it expires (once, however many requests ask at the same time).
 */
export async function freshToken(): Promise<string | null> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const raw = sessionStorage.getItem(OIDC_KEY);
  if (!token && lapsed) {
    throw new SignInExpired(lapsed);
  }
  if (!token || !raw) {
    return token;
  }
  const signed = JSON.parse(raw) as Signed;
  if (signed.exp - Date.now() > EARLY_MS) {
    return token;
  }
  if (!signed.refreshToken) {
    if (signed.exp > Date.now()) {
      return token;
    }
    lapse(`your sign-in with ${issuerName(signed.issuer)} expired; sign in again`);
  }
  refreshing ??= refreshTokens({ ...signed, refreshToken: signed.refreshToken })
    .then((tokens) => {
      checkIdToken(tokens.idToken, signed);
      store(signed, tokens.idToken, tokens.refreshToken ?? signed.refreshToken);
      return tokens.idToken;
    })
    .catch((err: unknown) =>
      lapse(
        `your sign-in with ${issuerName(signed.issuer)} could not be renewed (${(err as Error).message}); sign in again`,
      ),
    )
    .finally(() => {
      refreshing = undefined;
    });
  return refreshing;
}
