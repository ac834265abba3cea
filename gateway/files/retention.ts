/**
 * Retention: an upload older than SLURMGATE_FILES_RETENTION_SECONDS that no live job names is
 * forgotten (its quota returns), and a blob no upload, no live job input and no job output
 * (job_files) refers to any more is deleted, row first, then bytes. Run periodically by the Node
 * gateway (node.ts) and by the Worker's cron (worker.ts); a test calls it with an injected clock.
 */
import { LIVE_STATES } from "../../schemas/job.ts";
import type { Deps } from "../deps.ts";

const LIVE = `(${LIVE_STATES.map((s) => `'${s}'`).join(", ")})`;

/** A blob is in use while a live job names it as an input. */
const USED_BY_LIVE_JOB = (column: string) =>
  `EXISTS (SELECT 1 FROM job_inputs i JOIN jobs j ON j.id = i.job_id WHERE i.sha256 = ${column} AND j.state IN ${LIVE})`;

export const RETENTION_EVERY_MS = 10 * 60_000;

/**
 * One pass; answers what it removed. `maxBlobs` bounds the blobs it deletes (each costs two
 * round trips; a Worker's cron has a subrequest budget).
 */
export async function collectFiles(deps: Deps, maxBlobs = 1000): Promise<{ uploads: number; blobs: number }> {
  const cutoff = deps.now() - deps.config.SLURMGATE_FILES_RETENTION_SECONDS * 1000;
  const [forgotten] = await deps.db.write([
    {
      sql: `DELETE FROM uploads WHERE created_at < ? AND NOT ${USED_BY_LIVE_JOB("uploads.sha256")}`,
      args: [cutoff],
    },
  ]);
  // Young blobs stay: an upload's bytes land before its rows are written.
  const orphans = await deps.db.client.execute({
    sql: `SELECT sha256 FROM blobs b WHERE b.created_at < ?
            AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.sha256 = b.sha256)
            AND NOT EXISTS (SELECT 1 FROM job_files f WHERE f.sha256 = b.sha256)
            AND NOT ${USED_BY_LIVE_JOB("b.sha256")}
          LIMIT ?`,
    args: [cutoff, maxBlobs],
  });
  let removed = 0;
  for (const row of orphans.rows) {
    const sha256 = String(row.sha256);
    // Checked again in the delete itself: an upload of the same bytes since the select keeps it.
    const [gone] = await deps.db.write([
      {
        sql: `DELETE FROM blobs WHERE sha256 = ?
                AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.sha256 = blobs.sha256)
                AND NOT EXISTS (SELECT 1 FROM job_files f WHERE f.sha256 = blobs.sha256)
                AND NOT ${USED_BY_LIVE_JOB("blobs.sha256")}`,
        args: [sha256],
      },
    ]);
    if (gone!.rowsAffected > 0) {
      await deps.blobs.delete(sha256);
      removed++;
    }
  }
  return { uploads: forgotten!.rowsAffected, blobs: removed };
}
