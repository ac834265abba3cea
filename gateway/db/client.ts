/**
 * One libSQL client per process (or isolate), wrapped for drizzle and for the raw hot-path SQL.
 */
import type { Client, InStatement, ResultSet } from "@libsql/client";
import { drizzle, type LibSQLDatabase } from "drizzle-orm/libsql";
import { type Caches, createCaches } from "./caches.ts";
import * as schema from "./schema.ts";
import { createWriteQueue, type WriteQueue } from "./write-queue.ts";

export type Database = {
  client: Client;
  orm: LibSQLDatabase<typeof schema>;
  /** Runs statements atomically, grouped with other writes of the same tick when batching is on. */
  write: (statements: InStatement[]) => Promise<ResultSet[]>;
  writes: WriteQueue | undefined;
  /** What this process remembers of the database; store writes clear what they change (caches.ts). */
  caches: Caches;
};

/**
 * @param options.batchWrites group the writes of one event-loop tick into one transaction. Pays off
 *   on an embedded file (one fsync instead of N); over HTTP each request is already its own round trip.
 */
export function openDatabase(client: Client, options: { batchWrites?: boolean } = {}): Database {
  const writes = options.batchWrites ? createWriteQueue(client) : undefined;
  return {
    client,
    orm: drizzle(client, { schema }),
    write: writes ? (statements) => writes.run(statements) : (statements) => client.batch(statements, "write"),
    writes,
    caches: createCaches(),
  };
}
