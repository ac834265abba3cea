/**
 * The event feed: every job event in commit order. A position is the event row's rowid, which
 * grows with each insert because SQLite (and libSQL) commit one writer at a time. Reading after a
 * position seeks the rowid and reads only newer rows, so a feed that keeps up costs what happened
 * since it last read, however long the history.
 */
import type { FeedEvent } from "../../schemas/index.ts";
import type { Database } from "../db/client.ts";
import { rowToEvent } from "./job-row.ts";

/** The newest position, or 0 when nothing happened yet: where a feed without a cursor starts. */
export async function latestFeedCursor(db: Database): Promise<number> {
  const rs = await db.client.execute("SELECT max(rowid) AS cursor FROM job_events");
  return Number(rs.rows[0]?.cursor ?? 0);
}

/** Events after `after`, oldest first; only `owner`'s jobs unless owner is undefined (an admin). */
export async function feedAfter(
  db: Database,
  query: { owner: string | undefined; after: number; limit: number },
): Promise<FeedEvent[]> {
  const byOwner = query.owner !== undefined;
  const rs = await db.client.execute({
    sql: `SELECT e.rowid AS cursor, e.job_id, e.seq, e.at, e.actor, e.type, e.state, e.detail
          FROM job_events e ${byOwner ? "JOIN jobs j ON j.id = e.job_id" : ""}
          WHERE e.rowid > ? ${byOwner ? "AND j.owner = ?" : ""}
          ORDER BY e.rowid LIMIT ?`,
    args: byOwner ? [query.after, query.owner!, query.limit] : [query.after, query.limit],
  });
  return rs.rows.map((row) => ({ ...rowToEvent(row), jobId: String(row.job_id), cursor: String(row.cursor) }));
}
