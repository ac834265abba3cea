/**
 * Builds the app's deps on Node: embedded libSQL file (or any libSQL URL), in-process notifier and
 * rate limiter, JSON logs on stderr.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { createClient } from "@libsql/client";
import { filesDir, type GatewayConfig } from "./config.ts";
import { openDatabase } from "./db/client.ts";
import { migrateDatabase } from "./db/migrate.ts";
import type { Deps } from "./deps.ts";
import { createFsBlobStore } from "./files/fs-blob-store.ts";
import { jsonLogger } from "./logger.ts";
import { createRateLimiter } from "./middleware/rate-limit.ts";
import { createNotifier } from "./notifier.ts";

export async function createNodeDeps(config: GatewayConfig, overrides: Partial<Deps> = {}): Promise<Deps> {
  const url = config.SLURMGATE_DB_URL;
  if (url.startsWith("file:") && !url.startsWith("file::memory:")) {
    mkdirSync(dirname(url.slice("file:".length)), { recursive: true });
  }
  // One connection for an embedded file: PRAGMAs are per connection, and a pool would open extra
  // connections under concurrent requests that run with synchronous=FULL and no busy_timeout.
  const client = createClient({
    url,
    authToken: config.SLURMGATE_DB_AUTH_TOKEN,
    ...(url.startsWith("file:") ? { concurrency: 1 } : {}),
  });
  if (url.startsWith("file:")) {
    // WAL lets readers run while a write commits; busy_timeout makes several processes on one file wait, not fail.
    await client.execute("PRAGMA journal_mode = WAL");
    await client.execute("PRAGMA busy_timeout = 5000");
    await client.execute("PRAGMA synchronous = NORMAL");
  }
  const db = openDatabase(client, { batchWrites: url.startsWith("file:") });
  await migrateDatabase(db);
  const now = () => Date.now();
  return {
    db,
    config,
    now,
    notifier: createNotifier(),
    rateLimiter: createRateLimiter(config.SLURMGATE_RATE_LIMIT_PER_SECOND, config.SLURMGATE_RATE_LIMIT_BURST, now),
    log: jsonLogger(config.SLURMGATE_LOG_LEVEL, (line) => process.stderr.write(`${line}\n`)),
    blobs: overrides.blobs ?? (await createFsBlobStore(filesDir(config))),
    recheckMs: url.startsWith("file:") ? 2_000 : 1_000,
    ...overrides,
  };
}
