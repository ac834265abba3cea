/**
 * Job logs as byte chunks keyed by (job, stream, offset). Appends are idempotent: a chunk re-sent
 * at the same offset is ignored, and only the chunk that starts where the stored bytes end is kept,
 * so the stored stream is always one contiguous prefix of the job's file.
 *
 * Each attempt of a job, and each task of an array, is a stream of its own: `job_logs.stream` holds
 * the key made by {@link logKey} (no migration; attempt 1's rows, stored before attempts were
 * keyed, are the plain `stdout`/`stderr` keys and stay valid).
 */
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";

export type LogStreamName = "stdout" | "stderr";
export type LogSource = { stream: LogStreamName; attempt: number; task?: number | null; service?: string | null };

/**
 * The stored key of one log: `stdout` (attempt 1), `stdout@2` (attempt 2), `stdout.7` (task 7 of
 * attempt 1), `stdout@2.7`. Neither part can be confused with the other: attempts follow `@`, tasks `.`.
 * @example logKey({ stream: "stderr", attempt: 2, task: 3 }) === "stderr@2.3"
 */
export function logKey(source: LogSource): string {
  const attempt = source.attempt > 1 ? `@${source.attempt}` : "";
  const task = source.task === undefined || source.task === null ? "" : `.${source.task}`;
  // A service's log (JobSpec.services) is its own stream: `service:<name>:stdout`; a name has no ':', '@' or '.'.
  const service = source.service ? `service:${source.service}:` : "";
  return `${service}${source.stream}${attempt}${task}`;
}

/**
 * True when `task` is one of the tasks of a Slurm array index expression (`0-99:2`, `1,3,5-7`;
 * already pattern-checked by the JobSpec schema), without expanding it.
 * @example isArrayTask("0-6:3,9", 6) === true
 */
export function isArrayTask(expression: string, task: number): boolean {
  return expression.split(",").some((part) => {
    const [range = "", stepText] = part.split(":");
    const [fromText = "", toText] = range.split("-");
    const from = Number(fromText);
    const to = toText === undefined ? from : Number(toText);
    const step = stepText === undefined ? 1 : Math.max(1, Number(stepText));
    return task >= from && task <= to && (task - from) % step === 0;
  });
}

export function base64ToBytes(data: string): Uint8Array {
  const binary = atob(data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    bytes[i] = binary.charCodeAt(i);
  }
  return bytes;
}

/** An insert that only lands when `offset` equals the current end of the stream. */
export function appendLogStatement(jobId: string, source: LogSource, offset: number, bytes: Uint8Array): InStatement {
  const stream = logKey(source);
  return {
    sql: `INSERT OR IGNORE INTO job_logs (job_id, stream, offset, data)
          SELECT ?, ?, ?, ? WHERE ? = (SELECT coalesce(max(offset + length(data)), 0) FROM job_logs WHERE job_id = ? AND stream = ?)`,
    args: [jobId, stream, offset, bytes, offset, jobId, stream],
  };
}

async function logEnd(db: Database, jobId: string, stream: string): Promise<number> {
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
  source: LogSource,
  offset: number,
  limit: number,
): Promise<{ bytes: Uint8Array; end: number }> {
  const stream = logKey(source);
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
