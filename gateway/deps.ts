/**
 * Everything the app needs from its host. The Node and Workers entries build this; tests build it
 * with an in-memory database.
 */
import type { WorkloadScope } from "./auth/oidc-config.ts";
import type { GatewayConfig } from "./config.ts";
import type { Database } from "./db/client.ts";
import type { BlobStore } from "./files/blob-store.ts";
import type { Notifier } from "./notifier.ts";
import type { RateLimiter } from "./middleware/rate-limit.ts";

export type Logger = (entry: Record<string, unknown>) => void;

export type Deps = {
  db: Database;
  config: GatewayConfig;
  now: () => number;
  notifier: Notifier;
  rateLimiter: RateLimiter;
  log: Logger;
  /** File bytes (uploads, job inputs and outputs); their rows are in the database. */
  blobs: BlobStore;
  /** How often a long-poll re-reads the database when no notification arrives. */
  recheckMs: number;
};

import type { Via } from "../schemas/admin.ts";

export type { Via };

export type Principal =
  | {
      kind: "user" | "admin";
      user: string;
      /** The token row's id, or `oidc:<sha-256 of iss and sub>` for a JWT (rate limits and the auth cache key on it). */
      tokenId: string;
      /** Absent means a slurmgate token. */
      via?: Via;
      /** A workload admitted by a trust policy: narrower than its user's grants (gateway/auth/oidc-config.ts). */
      scope?: WorkloadScope & { labels?: Record<string, string> };
    }
  /** `user` is set for a personal agent: it may run only that user's jobs. */
  | { kind: "agent"; cluster: string; tokenId: string; user: string | null };

export type AppEnv = {
  Variables: {
    principal: Principal;
    /** hono/request-id: the caller's sane X-Request-Id, or a fresh UUID. */
    requestId: string;
    /** Set once a 5xx of this request has been logged, so it is logged once. */
    errorLogged: boolean;
  };
};
