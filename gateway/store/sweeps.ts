/**
 * Sweeps: the `sweeps` row, and its elements, which are ordinary `jobs` rows with `sweep_id` and
 * `sweep_index`. Every read here seeks a partial index on `sweep_id` (schema.ts, migration 0008),
 * so its cost follows the sweep's size, never the history's.
 */
import type { InStatement, Row } from "@libsql/client";
import type { Job } from "../../schemas/index.ts";
import type { Database } from "../db/client.ts";
import { LIVE_STATES_SQL } from "../db/state-sql.ts";
import { JOB_COLUMNS, rowToJob, stateOf } from "./job-row.ts";

export type StoredSweep = {
  id: string;
  owner: string;
  name: string;
  maxParallel: number | null;
  total: number;
  specHash: string | null;
  createdAt: number;
  updatedAt: number;
};

const SWEEP_COLUMNS = "id, owner, name, max_parallel, total, spec_hash, created_at, updated_at";

function rowToSweep(row: Row): StoredSweep {
  return {
    id: String(row.id),
    owner: String(row.owner),
    name: String(row.name),
    maxParallel: row.max_parallel === null ? null : Number(row.max_parallel),
    total: Number(row.total),
    specHash: row.spec_hash === null ? null : String(row.spec_hash),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** The sweep's row, written in the same transaction as its elements (store/jobs.ts insertJobs). */
export function sweepInsert(sweep: StoredSweep & { idempotencyKey: string | null }): InStatement {
  return {
    sql: `INSERT INTO sweeps (id, owner, name, max_parallel, total, idempotency_key, spec_hash, created_at, updated_at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    args: [
      sweep.id,
      sweep.owner,
      sweep.name,
      sweep.maxParallel,
      sweep.total,
      sweep.idempotencyKey,
      sweep.specHash,
      sweep.createdAt,
      sweep.updatedAt,
    ],
  };
}

export async function getSweep(db: Database, id: string): Promise<StoredSweep | undefined> {
  const rs = await db.client.execute({ sql: `SELECT ${SWEEP_COLUMNS} FROM sweeps WHERE id = ?`, args: [id] });
  const row = rs.rows[0];
  return row ? rowToSweep(row) : undefined;
}

export async function findSweepByIdempotencyKey(
  db: Database,
  owner: string,
  key: string,
): Promise<StoredSweep | undefined> {
  const rs = await db.client.execute({
    sql: `SELECT ${SWEEP_COLUMNS} FROM sweeps WHERE owner = ? AND idempotency_key = ?`,
    args: [owner, key],
  });
  const row = rs.rows[0];
  return row ? rowToSweep(row) : undefined;
}

/** Newest first; the cursor is the last id of the previous page (no OFFSET). */
export async function listSweeps(
  db: Database,
  filter: { owner?: string; cursor?: string; limit: number },
): Promise<{ items: StoredSweep[]; nextCursor: string | null }> {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (filter.owner !== undefined) {
    where.push("owner = ?");
    args.push(filter.owner);
  }
  if (filter.cursor) {
    where.push("id < ?");
    args.push(filter.cursor);
  }
  const rs = await db.client.execute({
    sql: `SELECT ${SWEEP_COLUMNS} FROM sweeps ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`,
    args: [...args, filter.limit + 1],
  });
  const items = rs.rows.slice(0, filter.limit).map(rowToSweep);
  const last = items.at(-1);
  return { items, nextCursor: rs.rows.length > filter.limit && last ? last.id : null };
}

/**
 * Elements per state, and the newest change of any element, off the covering index
 * jobs_sweep_state. A stored state outside JobState counts as `rejected`, as it reads everywhere.
 */
export async function sweepCounts(
  db: Database,
  id: string,
): Promise<{ counts: Record<string, number>; changedAt: number | null }> {
  const rs = await db.client.execute({
    sql: "SELECT state, count(*) AS n, max(updated_at) AS at FROM jobs WHERE sweep_id = ? GROUP BY state",
    args: [id],
  });
  const counts: Record<string, number> = {};
  let changedAt: number | null = null;
  for (const row of rs.rows) {
    const { state } = stateOf(row.state);
    counts[state] = (counts[state] ?? 0) + Number(row.n);
    changedAt = Math.max(changedAt ?? 0, Number(row.at));
  }
  return { counts, changedAt };
}

/** Every element's job id, in element order. */
export async function sweepJobIds(db: Database, id: string): Promise<string[]> {
  const rs = await db.client.execute({
    sql: "SELECT id FROM jobs WHERE sweep_id = ? ORDER BY sweep_index",
    args: [id],
  });
  return rs.rows.map((row) => String(row.id));
}

/** The elements after index `after`, in element order, read like any job (a corrupt row never throws). */
export async function listElements(db: Database, id: string, after: number, limit: number): Promise<Job[]> {
  const rs = await db.client.execute({
    sql: `SELECT ${JOB_COLUMNS} FROM jobs WHERE sweep_id = ? AND sweep_index > ? ORDER BY sweep_index LIMIT ?`,
    args: [id, after, limit],
  });
  return rs.rows.map(rowToJob);
}

/**
 * Cancels every live element in one transaction: queued ones at once, the others by a pending
 * cancel their agent receives with its next lease call (as POST /v1/jobs/{id}/cancel does for
 * one). Ended elements are left as they are. Returns the clusters and jobs it touched.
 */
export async function cancelSweepElements(
  db: Database,
  input: { id: string; actor: string; now: number; token: string },
): Promise<{ jobId: string; cluster: string }[]> {
  const { id, actor, now, token } = input;
  const [updated] = await db.write([
    {
      sql: `UPDATE jobs SET prev_state = state,
              state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
              reason = CASE WHEN state = 'queued' THEN 'cancelled before any Slurm job was submitted' ELSE reason END,
              lease_owner = CASE WHEN state = 'queued' THEN NULL ELSE lease_owner END,
              cancel_requested = 1, claim_token = ?, last_seq = last_seq + 1, updated_at = ?
            WHERE sweep_id = ? AND state IN ${LIVE_STATES_SQL} AND cancel_requested = 0
            RETURNING id, cluster`,
      args: [token, now, id],
    },
    {
      sql: `INSERT INTO job_events (job_id, seq, at, actor, type, state, detail)
            SELECT id, last_seq, ?, ?, CASE WHEN prev_state = 'queued' THEN 'state' ELSE 'cancel_requested' END,
                   CASE WHEN prev_state = 'queued' THEN 'cancelled' ELSE NULL END,
                   CASE WHEN prev_state = 'queued' THEN 'cancelled while queued (sweep cancelled)'
                        ELSE 'cancel requested while ' || prev_state || ' (sweep cancelled)' END
            FROM jobs WHERE claim_token = ?`,
      args: [now, actor, token],
    },
  ]);
  return (updated?.rows ?? []).map((row) => ({ jobId: String(row.id), cluster: String(row.cluster) }));
}
