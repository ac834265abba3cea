/**
 * What a process remembers of its database between requests. The caches hang off the database
 * handle that Deps carries (`deps.db.caches`), because every store function receives that handle:
 * a store write that changes what a cache holds clears it itself, so no caller can forget to.
 * Other processes and isolates have their own handle and see a change within each cache's TTL.
 */
import type { IssuerKeys } from "../auth/jwks-cache.ts";
import type { CachedPrincipal } from "../middleware/auth.ts";
import type { QueueCount } from "../queue-cap.ts";
import type { RoutingSnapshot } from "../routing-view.ts";

export type Caches = {
  /** Bearer token → principal (middleware/auth.ts); cleared by writes to users and tokens. */
  auth: Map<string, CachedPrincipal>;
  /** Clusters, grants and agents as routing sees them (routing-view.ts); cleared by writes to those. */
  routing: { snapshot?: RoutingSnapshot };
  /** Live jobs per user, counted up locally between reads (queue-cap.ts). */
  queue: Map<string, QueueCount>;
  /** Each trusted issuer's signing keys (auth/jwks-cache.ts); they change at the IdP, not here. */
  jwks: Map<string, IssuerKeys>;
};

export function createCaches(): Caches {
  return { auth: new Map(), routing: {}, queue: new Map(), jwks: new Map() };
}

/** For the store's writes to users and tokens. */
export function forgetPrincipals(caches: Caches): void {
  caches.auth.clear();
}

/** For the store's writes to clusters, grants and agents (and for tests that write past the store). */
export function forgetRouting(caches: Caches): void {
  caches.routing.snapshot = undefined;
}
