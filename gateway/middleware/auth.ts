/**
 * Bearer authentication and the role guards. Only hashes are stored, so a token is looked up by
 * its SHA-256. Failed attempts count against the caller's address in the rate limiter.
 */
import type { MiddlewareHandler } from "hono";
import { aToken } from "../../schemas/index.ts";
import type { AppEnv, Deps, Principal } from "../deps.ts";
import { principalFromClaims } from "../auth/oidc-principal.ts";
import { looksLikeJwt, verifyOidcToken } from "../auth/oidc-verify.ts";
import { ApiProblem } from "../problem.ts";
import { findToken, touchToken } from "../store/tokens.ts";
import { getUser } from "../store/users.ts";
import { refuseDisabled } from "../auth/user-state.ts";

const TOUCH_EVERY_MS = 60_000;
const FIELD = "header.authorization";
/**
 * Valid tokens are remembered this long, so a busy client costs no token and user reads per
 * request (two of the five statements of a submit). The store's writes to users and tokens clear
 * the cache at once (db/caches.ts); other processes and isolates see them within this window.
 */
const CACHE_MS = 2_000;

export type CachedPrincipal = { principal: Principal; tokenId: string; until: number };

export function authenticate(deps: Deps): MiddlewareHandler<AppEnv> {
  const lastTouched = new Map<string, number>();
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) {
      throw new ApiProblem("unauthorized", "send 'Authorization: Bearer <token>'", {
        field: FIELD,
        headers: { "www-authenticate": 'Bearer realm="slurmgate"' },
      });
    }
    const now = deps.now();
    const cache = deps.db.caches.auth;
    const hit = cache.get(match[1]);
    if (hit && hit.until > now) {
      return admit(c, next, hit.principal, hit.tokenId, now);
    }
    if (looksLikeJwt(match[1])) {
      let principal: Principal;
      let exp: number;
      try {
        const verified = await verifyOidcToken(deps, match[1]);
        exp = verified.claims.exp * 1000;
        principal = await principalFromClaims(deps, verified.issuer, verified.claims);
      } catch (e) {
        if (e instanceof ApiProblem && e.code === "unauthorized") {
          countFailure(c);
        }
        throw e;
      }
      remember(cache, match[1], principal, Math.min(now + CACHE_MS, exp));
      return admit(c, next, principal, principal.tokenId, now);
    }
    const row = await findToken(deps.db, match[1]);
    const invalid = !row || row.revokedAt !== null || (row.expiresAt !== null && row.expiresAt <= now);
    if (invalid) {
      countFailure(c);
      throw new ApiProblem("unauthorized", row ? "token revoked or expired" : "unknown token", {
        field: FIELD,
        headers: { "www-authenticate": 'Bearer realm="slurmgate", error="invalid_token"' },
      });
    }
    let principal: Principal;
    if (row.kind === "agent") {
      const owner = row.user ? await getUser(deps.db, row.user) : undefined;
      if (owner) {
        refuseDisabled(owner);
      }
      principal = { kind: "agent", cluster: row.cluster ?? "", tokenId: row.id, user: row.user };
    } else {
      const user = row.user ? await getUser(deps.db, row.user) : undefined;
      if (!user || (row.kind === "admin" && !user.admin)) {
        throw new ApiProblem("unauthorized", "the token's user no longer exists or lost its rights", {
          field: FIELD,
        });
      }
      refuseDisabled(user);
      principal = { kind: row.kind, user: user.name, tokenId: row.id };
    }
    remember(cache, match[1], principal, Math.min(now + CACHE_MS, row.expiresAt ?? Number.POSITIVE_INFINITY));
    return admit(c, next, principal, row.id, now);
  };

  function remember(cache: Map<string, CachedPrincipal>, token: string, principal: Principal, until: number) {
    if (cache.size > 10_000) {
      cache.clear();
    }
    cache.set(token, { principal, tokenId: principal.tokenId, until });
  }

  /** Failed attempts count against the caller's address; past the limit they are refused unread. */
  function countFailure(c: Parameters<MiddlewareHandler<AppEnv>>[0]) {
    const address = c.req.header("x-forwarded-for") ?? c.req.header("cf-connecting-ip") ?? "local";
    const limited = deps.rateLimiter.take(`fail:${address}`);
    if (!limited.ok) {
      throw new ApiProblem("rate_limited", "too many failed authentications", {
        field: FIELD,
        headers: { "retry-after": String(limited.retryAfterSeconds) },
      });
    }
  }

  async function admit(
    c: Parameters<MiddlewareHandler<AppEnv>>[0],
    next: () => Promise<void>,
    principal: Principal,
    tokenId: string,
    now: number,
  ) {
    const limited = deps.rateLimiter.take(`tok:${tokenId}`);
    if (!limited.ok) {
      throw new ApiProblem("rate_limited", "rate limit exceeded for this token", {
        field: FIELD,
        headers: { "retry-after": String(limited.retryAfterSeconds) },
      });
    }
    // A JWT has no token row to touch.
    const fromJwt = principal.kind !== "agent" && principal.via !== undefined && principal.via.kind !== "token";
    if (!fromJwt && now - (lastTouched.get(tokenId) ?? 0) > TOUCH_EVERY_MS) {
      lastTouched.set(tokenId, now);
      await touchToken(deps.db, tokenId, now);
    }
    c.set("principal", principal);
    await next();
  }
}

type Role = "user" | "agent" | "admin";

/** Users (and admins, acting as themselves) may use user routes; agents and admins their own. */
export function requireRole(role: Role): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const p = c.get("principal");
    const allowed = role === "user" ? p.kind === "user" || p.kind === "admin" : p.kind === role;
    if (!allowed) {
      throw new ApiProblem("forbidden", `this route needs ${aToken(role)}; you sent ${aToken(p.kind)}`, {
        field: FIELD,
      });
    }
    await next();
  };
}
