/**
 * Builds the app's deps inside a Workers isolate: libSQL over HTTP (Turso or sqld), an in-isolate
 * notifier and rate limiter (shortcuts and flood guards only: other isolates share nothing), JSON
 * logs on the console, which Workers Logs collects.
 */
import { createClient } from "@libsql/client/web";
import { parseGatewayConfig } from "./config.ts";
import { openDatabase } from "./db/client.ts";
import type { Deps } from "./deps.ts";
import { type BlobStore, unavailableBlobStoreFor } from "./files/blob-store.ts";
import { createR2BlobStore, type R2BucketLike } from "./files/r2-blob-store.ts";
import { jsonLogger } from "./logger.ts";
import { createRateLimiter } from "./middleware/rate-limit.ts";
import { createNotifier } from "./notifier.ts";

/** The bindings the Worker reads; wrangler.toml documents each (vars there, secrets via `wrangler secret put`). */
export type WorkerEnv = {
  LIBSQL_URL?: string; // secret: libsql://<db>-<org>.turso.io or https://sqld.example.org
  LIBSQL_AUTH_TOKEN?: string; // secret: database auth token (Turso: `turso db tokens create`)
  SLURMGATE_BOOTSTRAP_TOKEN?: string; // secret: becomes the first admin's token while no admin exists
  SLURMGATE_FILES?: R2BucketLike; // [[r2_buckets]] binding: file storage; without it file routes answer 503
  [name: string]: unknown; // the SLURMGATE_* vars of gateway/config.ts
};

/** Whether the R2 bucket is bound (wrangler.toml `[[r2_buckets]]`, binding SLURMGATE_FILES). */
export function hasFileStorage(env: WorkerEnv): env is WorkerEnv & { SLURMGATE_FILES: R2BucketLike } {
  const bucket = env.SLURMGATE_FILES;
  return typeof bucket === "object" && bucket !== null && typeof bucket.createMultipartUpload === "function";
}

/** The R2 store when it is bound; a file route without one answers 503 naming the binding. */
function blobStoreOf(env: WorkerEnv): BlobStore {
  if (hasFileStorage(env)) {
    return createR2BlobStore(env.SLURMGATE_FILES);
  }
  return unavailableBlobStoreFor("bind an R2 bucket as SLURMGATE_FILES: [[r2_buckets]] in wrangler.toml");
}

/**
 * Reads the bindings once. Throws a readable error (one line per bad variable) when the
 * configuration is wrong, e.g. LIBSQL_URL unset.
 */
export function createWorkerDeps(env: WorkerEnv): Deps {
  const url = env.LIBSQL_URL ?? env.SLURMGATE_DB_URL;
  if (typeof url !== "string" || !/^(libsql|https?):/.test(url)) {
    throw new Error("invalid LIBSQL_URL: set the secret to a libsql://, https:// or http:// database URL");
  }
  const config = parseGatewayConfig({
    ...env,
    SLURMGATE_DB_URL: url,
    SLURMGATE_DB_AUTH_TOKEN: env.LIBSQL_AUTH_TOKEN ?? env.SLURMGATE_DB_AUTH_TOKEN,
  });
  const client = createClient({
    url,
    authToken: config.SLURMGATE_DB_AUTH_TOKEN,
    // No client-side queue: with a limit, a statement of one request could be started by another
    // request's continuation, and workerd cancels I/O whose request has ended. Each request issues
    // its own few statements; concurrency is the database's job.
    concurrency: Number.POSITIVE_INFINITY,
  });
  const now = () => Date.now();
  return {
    // No write batching: over HTTP every batch is its own round trip, and a tick-wide group would
    // mix statements of different requests (see db/write-queue.ts).
    db: openDatabase(client),
    config,
    now,
    notifier: createNotifier(),
    rateLimiter: createRateLimiter(config.SLURMGATE_RATE_LIMIT_PER_SECOND, config.SLURMGATE_RATE_LIMIT_BURST, now),
    log: jsonLogger(config.SLURMGATE_LOG_LEVEL, (line) => console.log(line)),
    blobs: blobStoreOf(env),
    // Other isolates' submits only show up in the database, so waiters look again every second.
    recheckMs: 1_000,
  };
}
