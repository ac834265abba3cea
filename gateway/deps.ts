/**
 * Everything the app needs from its host. The Node and Workers entries build this; tests build it
 * with an in-memory database.
 */
import type { GatewayConfig } from "./config.ts";
import type { Database } from "./db/client.ts";
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
  /** How often a long-poll re-reads the database when no notification arrives. */
  recheckMs: number;
};

export type Principal =
  | { kind: "user" | "admin"; user: string; tokenId: string }
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
