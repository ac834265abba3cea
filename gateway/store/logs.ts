/**
 * Job logs as byte chunks keyed by (job, stream, offset). Appends are idempotent: a chunk re-sent
 * at the same offset is ignored, and only the chunk that starts where the stored bytes end is kept,
 * so the stored stream is always one contiguous prefix of the job's file.
 */
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";

export function base64ToBytes(data: string): Uint8Array {
  const binary = atob(data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    bytes[i] = binary.charCodeAt(i);
  }
  return bytes;
}

/** An insert that only lands when `offset` equals the current end of the stream. */
export function appendLogStatement(jobId: string, stream: string, offset: number, bytes: Uint8Array): InStatement {
  return {
    sql: `INSERT OR IGNORE INTO job_logs (job_id, stream, offset, data)
          SELECT ?, ?, ?, ? WHERE ? = (SELECT coalesce(max(offset + length(data)), 0) FROM job_logs WHERE job_id = ? AND stream = ?)`,
    args: [jobId, stream, offset, bytes, offset, jobId, stream],
  };
}

export async function logEnd(db: Database, jobId: string, stream: string): Promise<number> {
  const rs = await db.client.execute({
    sql: "SELECT coalesce(max(offset + length(data)), 0) AS end FROM job_logs WHERE job_id = ? AND stream = ?",
    args: [jobId, stream],
  });
  return Number(rs.rows[0]?.end ?? 0);
}

/** Reads up to `limit` bytes from `offset`. */
export async function readLog(
  db: Database,
  jobId: string,
  stream: string,
  offset: number,
  limit: number,
): Promise<{ bytes: Uint8Array; end: number }> {
  const rs = await db.client.execute({
    sql: `SELECT offset, data FROM job_logs WHERE job_id = ? AND stream = ? AND offset + length(data) > ? AND offset < ?
          ORDER BY offset`,
    args: [jobId, stream, offset, offset + limit],
  });
  const out = new Uint8Array(limit);
  let filled = 0;
  for (const row of rs.rows) {
    const chunkStart = Number(row.offset);
    const data = new Uint8Array(row.data as ArrayBuffer);
    const from = Math.max(0, offset - chunkStart);
    const slice = data.subarray(from, from + (limit - filled));
    out.set(slice, filled);
    filled += slice.length;
  }
  return { bytes: out.subarray(0, filled), end: await logEnd(db, jobId, stream) };
}
