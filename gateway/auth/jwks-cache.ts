/**
 * Each trusted issuer's public signing keys, fetched from discovery (or the configured `jwksUri`)
 * and kept in `deps.db.caches` (one per process). Web APIs only (fetch, streams), so the same code runs on Node and Workers.
 *
 * An IdP is a remote party the gateway does not control: every fetch has a deadline and a byte cap,
 * fetches per issuer are rate-limited (a token with a made-up `kid` must not make the gateway hammer
 * the IdP), and a failed fetch keeps the keys already known, so an IdP outage only refuses new keys.
 */
import { readCappedText } from "../../client/read-capped.ts";
import type { JWK } from "jose";
import type { Deps } from "../deps.ts";
import type { OidcIssuer } from "./oidc-config.ts";

/** Fetching an issuer's keys (discovery and JWKS together, bodies included) gives up after this long. */
export const JWKS_FETCH_TIMEOUT_MS = 5_000;
/** Discovery documents and key sets larger than this are refused (real ones are a few KiB). */
export const JWKS_MAX_BYTES = 256 * 1024;
/** At most one fetch per issuer this often, however many unknown `kid`s arrive. */
export const JWKS_REFETCH_MIN_MS = 30_000;
/** Known keys are re-read this often, so a key the IdP withdrew stops verifying. */
export const JWKS_MAX_AGE_MS = 10 * 60_000;
const MAX_KEYS = 100;

export type IssuerKeys = {
  keys: JWK[];
  /** When `keys` were last fetched successfully. */
  fetchedAt: number;
  /** When a fetch was last started, successful or not. */
  attemptedAt: number;
  /** When an unknown `kid` last caused a fetch. */
  unknownKidAt: number;
  /** Counts successful fetches, so a caller can tell whether keys were re-read while it waited. */
  generation: number;
  jwksUri?: string;
  inflight?: Promise<void>;
  lastError?: string;
};

export class JwksUnavailable extends Error {}

function stateOf(deps: Deps, issuer: string): IssuerKeys {
  const cache = deps.db.caches.jwks;
  let state = cache.get(issuer);
  if (!state) {
    state = {
      keys: [],
      fetchedAt: 0,
      attemptedAt: Number.NEGATIVE_INFINITY,
      unknownKidAt: Number.NEGATIVE_INFINITY,
      generation: 0,
    };
    cache.set(issuer, state);
  }
  return state;
}

/** The issuer's known keys; fetched first when none are known yet or they are old (rate-limited). */
export async function issuerKeys(deps: Deps, issuer: OidcIssuer): Promise<JWK[]> {
  const state = stateOf(deps, issuer.issuer);
  const due = state.generation === 0 || deps.now() - state.fetchedAt > JWKS_MAX_AGE_MS;
  // Failed fetches are retried at most this often, so an IdP that is down is not hammered.
  if (due && deps.now() - state.attemptedAt >= JWKS_REFETCH_MIN_MS) {
    await refresh(deps, issuer, state);
  }
  if (state.generation === 0) {
    throw new JwksUnavailable(state.lastError ?? "the issuer's keys could not be fetched");
  }
  return state.keys;
}

/**
 * Re-reads the issuer's keys because a token names a key not among them. Resolves true if a fetch
 * happened (so looking again may help), false when the rate limit held it back.
 */
export async function refreshForUnknownKey(deps: Deps, issuer: OidcIssuer): Promise<boolean> {
  const state = stateOf(deps, issuer.issuer);
  if (!state.inflight && deps.now() - state.unknownKidAt < JWKS_REFETCH_MIN_MS) {
    return false;
  }
  if (!state.inflight) {
    state.unknownKidAt = deps.now();
  }
  const before = state.generation;
  await refresh(deps, issuer, state);
  return state.generation !== before;
}

/** One fetch at a time per issuer: concurrent callers share it. */
async function refresh(deps: Deps, issuer: OidcIssuer, state: IssuerKeys): Promise<void> {
  if (state.inflight) {
    return state.inflight;
  }
  state.attemptedAt = deps.now();
  state.inflight = (async () => {
    const signal = AbortSignal.timeout(JWKS_FETCH_TIMEOUT_MS);
    try {
      const jwksUri = issuer.jwksUri ?? state.jwksUri ?? (await discoverJwksUri(issuer.issuer, signal));
      // Discovered again after a failure, in case the IdP moved its keys.
      state.jwksUri = undefined;
      const keys = parseJwks(await fetchJson(jwksUri, signal));
      state.jwksUri = jwksUri;
      state.keys = keys;
      state.fetchedAt = deps.now();
      state.generation++;
      state.lastError = undefined;
    } catch (e) {
      state.lastError = e instanceof Error ? e.message : String(e);
      deps.log({
        level: "warn",
        msg: "oidc: fetching signing keys failed",
        issuer: issuer.issuer,
        error: state.lastError,
      });
    } finally {
      state.inflight = undefined;
    }
  })();
  return state.inflight;
}

async function discoverJwksUri(issuer: string, signal: AbortSignal): Promise<string> {
  const doc = await fetchJson(`${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`, signal);
  if (typeof doc !== "object" || doc === null) {
    throw new Error("discovery document is not a JSON object");
  }
  const { issuer: iss, jwks_uri } = doc as Record<string, unknown>;
  // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was fetched for.
  if (iss !== issuer) {
    throw new Error("discovery document names a different issuer");
  }
  if (typeof jwks_uri !== "string" || !URL.canParse(jwks_uri)) {
    throw new Error("discovery document has no valid jwks_uri");
  }
  return jwks_uri;
}

/** Public signing keys only: private parts are dropped, symmetric keys never become verification keys. */
function parseJwks(body: unknown): JWK[] {
  const keys = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) {
    throw new Error("key set has no 'keys' array");
  }
  const out: JWK[] = [];
  for (const k of keys.slice(0, MAX_KEYS)) {
    if (typeof k !== "object" || k === null) {
      continue;
    }
    const jwk = k as JWK;
    if (jwk.kty !== "RSA" && jwk.kty !== "EC" && jwk.kty !== "OKP") {
      continue;
    }
    if (jwk.use !== undefined && jwk.use !== "sig") {
      continue;
    }
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, ...pub } = jwk;
    out.push(pub);
  }
  return out;
}

/** GET a JSON document before `signal` fires (body included), reading at most JWKS_MAX_BYTES. */
async function fetchJson(url: string, signal: AbortSignal): Promise<unknown> {
  const work = (async () => {
    const res = await fetch(url, { signal, headers: { accept: "application/json" }, redirect: "follow" });
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`${new URL(url).pathname} answered HTTP ${res.status}`);
    }
    const text = await readCapped(res, JWKS_MAX_BYTES);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new Error(`${new URL(url).pathname} is not JSON`);
    }
  })();
  // A body that trickles in must not outlive the deadline, whatever the runtime does with the signal.
  const deadline = new Promise<never>((_, reject) => {
    const fail = () => reject(new Error(`${new URL(url).pathname} timed out`));
    if (signal.aborted) {
      fail();
    }
    signal.addEventListener("abort", fail, { once: true });
  });
  work.catch(() => {});
  return Promise.race([work, deadline]);
}

async function readCapped(res: Response, max: number): Promise<string> {
  const text = await readCappedText(res, max);
  if (text === null) {
    throw new Error(`response larger than ${max} bytes`);
  }
  return text;
}
