/**
 * Jobs as users see them: create, read, list, cancel.
 */
import type { InStatement, InValue, Row } from "@libsql/client";
import type { Job, JobEvent, JobSpec, JobState } from "../../schemas/index.ts";
import { isTerminal } from "../../schemas/index.ts";
import type { Database } from "../db/client.ts";
import { LIVE_STATES_SQL } from "../db/state-sql.ts";
import { JOB_COLUMNS, iso, rowToEvent, rowToJob } from "./job-row.ts";
import { guardedTransition } from "./transition.ts";

export type NewJob = {
  id: string;
  owner: string;
  spec: JobSpec;
  cluster: string;
  partition: string | null;
  reason: string | null;
  idempotencyKey: string | null;
  specHash: string | null;
  now: number;
  /** A sweep element: its sweep, position and grouping key (services/sweep-group.ts). */
  sweep?: { id: string; index: number; group: string | null };
};

/** The job exactly as `insertJobs` stores it: its defaults are written once, here. */
function queuedJob(job: NewJob): Job {
  return {
    id: job.id,
    owner: job.owner,
    name: job.spec.name,
    state: "queued",
    reason: job.reason,
    code: null,
    cluster: job.cluster,
    partition: job.partition,
    attempt: 1,
    slurmJobId: null,
    exitCode: null,
    signal: null,
    cancelRequested: false,
    labels: job.spec.labels ?? {},
    spec: job.spec,
    result: null,
    sweep: job.sweep ? { id: job.sweep.id, index: job.sweep.index } : null,
    lastSeq: 1,
    createdAt: iso(job.now),
    updatedAt: iso(job.now),
  };
}

const JOB_INSERT = {
  head: `INSERT INTO jobs (id, owner, name, state, reason, cluster, partition, attempt, epoch, run_after, cancel_requested,
              spec, labels, idempotency_key, spec_hash, sweep_id, sweep_index, batch_group, last_seq, created_at, updated_at)
            VALUES `,
  row: "(?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
};
const EVENT_INSERT = {
  head: "INSERT INTO job_events (job_id, seq, at, actor, type, state, detail) VALUES ",
  row: "(?, ?, ?, ?, 'state', ?, ?)",
};
const LABEL_INSERT = { head: "INSERT INTO job_labels (job_id, owner, key, value) VALUES ", row: "(?, ?, ?, ?)" };

/**
 * Multi-row INSERTs of at most `per` rows each. SQLite binds at most 32,766 values per statement;
 * 200 rows × 18 values stays well under it, and measured on this machine 10,000 sweep elements
 * go in within one transaction in well under a second (bench: gateway, sweep).
 */
function insertsOf(shape: { head: string; row: string }, rows: InValue[][], per: number): InStatement[] {
  const out: InStatement[] = [];
  for (let i = 0; i < rows.length; i += per) {
    const chunk = rows.slice(i, i + per);
    out.push({ sql: shape.head + Array(chunk.length).fill(shape.row).join(", "), args: chunk.flat() });
  }
  return out;
}

/** The first event and the label rows of every element of a new sweep, exactly as for one job. */
function sweepSideRows(sweepId: string): InStatement[] {
  return [
    {
      sql: `INSERT INTO job_events (job_id, seq, at, actor, type, state, detail)
            SELECT id, last_seq, created_at, 'user:' || owner, 'state', state, coalesce(reason, 'routed to ' || cluster)
            FROM jobs WHERE sweep_id = ?`,
      args: [sweepId],
    },
    {
      sql: `INSERT INTO job_labels (job_id, owner, key, value)
            SELECT j.id, j.owner, kv.key, kv.value FROM jobs j, json_each(j.labels) kv WHERE j.sweep_id = ?`,
      args: [sweepId],
    },
  ];
}

/**
 * Stores queued jobs (one, or a sweep's elements), their labels and first events in one
 * transaction, with `extra` statements (the sweep's own row) first; returns them as users see them.
 */
export async function insertJobs(db: Database, inputs: NewJob[], extra: InStatement[] = []): Promise<Job[]> {
  const jobs = inputs.map(queuedJob);
  const jobRows: InValue[][] = [];
  const eventRows: InValue[][] = [];
  const labelRows: InValue[][] = [];
  for (const [i, job] of jobs.entries()) {
    const input = inputs[i]!;
    jobRows.push([
      job.id,
      job.owner,
      job.name,
      job.state,
      job.reason,
      job.cluster,
      job.partition,
      job.attempt,
      Number(job.cancelRequested),
      JSON.stringify(input.spec),
      JSON.stringify(job.labels),
      input.idempotencyKey,
      input.specHash,
      input.sweep?.id ?? null,
      input.sweep?.index ?? null,
      input.sweep?.group ?? null,
      job.lastSeq,
      input.now,
      input.now,
    ]);
    eventRows.push([
      job.id,
      job.lastSeq,
      input.now,
      `user:${job.owner}`,
      job.state,
      job.reason ?? `routed to ${job.cluster}`,
    ]);
    for (const [key, value] of Object.entries(job.labels)) {
      labelRows.push([job.id, job.owner, key, value]);
    }
  }
  const sweepId = inputs[0]?.sweep?.id;
  const inputRows = jobInputRows(
    jobs.filter((_, i) => inputs[i]!.spec.inputs?.length).map((job) => job.id),
    sweepId !== undefined && inputs.every((input) => input.sweep?.id === sweepId) ? sweepId : undefined,
  );
  if (sweepId !== undefined && inputs.every((input) => input.sweep?.id === sweepId)) {
    // A sweep's elements: the events and labels are read back from the rows just written, inside
    // SQLite, instead of binding another 10,000 events and labels from here (bench: gateway, sweep).
    await db.write([...extra, ...insertsOf(JOB_INSERT, jobRows, 200), ...sweepSideRows(sweepId), ...inputRows]);
    return jobs;
  }
  // One job: single-row INSERTs, one per label, so a burst of submits with the same label keys
  // still merges into one multi-row INSERT per statement in the write queue.
  const one = jobs.length === 1;
  await db.write([
    ...extra,
    ...insertsOf(JOB_INSERT, jobRows, 200),
    ...insertsOf(EVENT_INSERT, eventRows, 1_000),
    ...insertsOf(LABEL_INSERT, labelRows, one ? 1 : 2_000),
    ...inputRows,
  ]);
  return jobs;
}

/** A job's inputs as rows (the agent's download check, retention), read back from the specs just written. */
function jobInputRows(ids: string[], sweepId: string | undefined): InStatement[] {
  if (ids.length === 0) {
    return [];
  }
  const [where, args] =
    sweepId !== undefined ? ["j.sweep_id = ?", [sweepId]] : [`j.id IN (${ids.map(() => "?").join(",")})`, ids];
  return [
    {
      sql: `INSERT INTO job_inputs (job_id, path, sha256)
            SELECT j.id, json_extract(i.value, '$.path'), substr(json_extract(i.value, '$.file'), 8)
            FROM jobs j, json_each(j.spec, '$.inputs') i WHERE ${where}`,
      args,
    },
  ];
}

/** Stores one queued job; see insertJobs. */
export async function insertJob(db: Database, input: NewJob): Promise<Job> {
  const [job] = await insertJobs(db, [input]);
  return job!;
}

export async function findByIdempotencyKey(
  db: Database,
  owner: string,
  key: string,
): Promise<{ job: Job; specHash: string | null } | undefined> {
  const rs = await db.client.execute({
    sql: `SELECT ${JOB_COLUMNS}, spec_hash FROM jobs WHERE owner = ? AND idempotency_key = ?`,
    args: [owner, key],
  });
  const row = rs.rows[0];
  return row ? { job: rowToJob(row), specHash: row.spec_hash === null ? null : String(row.spec_hash) } : undefined;
}

export async function getJobRow(db: Database, id: string): Promise<Row | undefined> {
  const rs = await db.client.execute({ sql: `SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`, args: [id] });
  return rs.rows[0];
}

export async function getJob(db: Database, id: string): Promise<Job | undefined> {
  const row = await getJobRow(db, id);
  return row ? rowToJob(row) : undefined;
}

export async function listEvents(db: Database, id: string, afterSeq = 0, limit = 1_000): Promise<JobEvent[]> {
  const rs = await db.client.execute({
    sql: "SELECT seq, at, actor, type, state, detail FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
    args: [id, afterSeq, limit],
  });
  return rs.rows.map(rowToEvent);
}

export type JobFilter = {
  owner?: string;
  state?: JobState;
  cluster?: string;
  label?: { key: string; value: string };
  cursor?: string;
  limit: number;
};

/**
 * Newest first by id (ids sort by creation time). The cursor is the last id of the previous page,
 * so a deep page costs the same index seek as the first (no OFFSET). Each filter has an index that
 * yields its rows in id order (schema.ts), so a page reads about LIMIT rows at any table size; a
 * label filter walks job_labels in id order and joins each match by primary key. Measured at
 * 10k → 1M jobs: a user's `?state=running` 25 → 607 ms on (owner) alone, 0.5 → 0.3 ms now; a label
 * filter 6.7 → 264 ms reading labels JSON, 0.8 → 0.8 ms now (bench/RESULTS.md, history).
 */
export async function listJobs(db: Database, filter: JobFilter): Promise<{ items: Job[]; nextCursor: string | null }> {
  const where: string[] = [];
  const args: (string | number)[] = [];
  const label = filter.label;
  // With a label, the page is driven by job_labels (alias l): its job_id is the page order.
  const idColumn = label ? "l.job_id" : "id";
  const col = (name: string) => (label ? `j.${name}` : name);
  if (label) {
    where.push(...(filter.owner ? ["l.owner = ?"] : []), "l.key = ?", "l.value = ?");
    args.push(...(filter.owner ? [filter.owner] : []), label.key, label.value);
  } else if (filter.owner) {
    where.push("owner = ?");
    args.push(filter.owner);
  }
  if (filter.state) {
    where.push(`${col("state")} = ?`);
    args.push(filter.state);
  }
  if (filter.cluster) {
    where.push(`${col("cluster")} = ?`);
    args.push(filter.cluster);
  }
  if (filter.cursor) {
    where.push(`${idColumn} < ?`);
    args.push(filter.cursor);
  }
  const columns = label
    ? JOB_COLUMNS.split(", ")
        .map((c) => `j.${c}`)
        .join(", ")
    : JOB_COLUMNS;
  // CROSS JOIN fixes the loop order (SQLite's documented override): walk the label's rows in page
  // order; otherwise SQLite may start from a state index and sort everything that matches.
  const from = label ? "job_labels l CROSS JOIN jobs j ON j.id = l.job_id" : "jobs";
  const rs = await db.client.execute({
    sql: `SELECT ${columns} FROM ${from} ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY ${idColumn} DESC LIMIT ?`,
    args: [...args, filter.limit + 1],
  });
  const rows = rs.rows.slice(0, filter.limit);
  const items = rows.map(rowToJob);
  const last = items[items.length - 1];
  return { items, nextCursor: rs.rows.length > filter.limit && last ? last.id : null };
}

/** A user's live jobs, counted up to `atMost` (enough to compare with a cap, without counting further). */
export async function countLiveJobs(db: Database, owner: string, atMost: number): Promise<number> {
  const rs = await db.client.execute({
    sql: `SELECT count(*) AS n FROM (SELECT 1 FROM jobs WHERE owner = ?
            AND state IN ${LIVE_STATES_SQL} LIMIT ?)`,
    args: [owner, atMost],
  });
  return Number(rs.rows[0]?.n ?? 0);
}

export type CancelOutcome = "cancelled" | "requested" | "already_requested" | "terminal";

/**
 * A queued job is cancelled at once (no Slurm job exists); a live one gets cancel_requested and
 * its agent receives a cancel order with its next lease call. Terminal jobs are left as they are.
 */
export async function cancelJob(db: Database, id: string, actor: string, now: number): Promise<CancelOutcome> {
  for (let tries = 0; tries < 10; tries++) {
    const row = await getJobRow(db, id);
    if (!row) {
      throw new Error(`job ${id} vanished`);
    }
    const job = rowToJob(row);
    if (isTerminal(job.state)) {
      return "terminal";
    }
    if (job.cancelRequested) {
      return "already_requested";
    }
    const statements =
      job.state === "queued"
        ? guardedTransition(
            id,
            job.lastSeq,
            {
              state: "cancelled",
              cancel_requested: 1,
              reason: "cancelled before any Slurm job was submitted",
              lease_owner: null,
            },
            { actor, type: "state", state: "cancelled", detail: "cancelled while queued" },
            now,
          )
        : guardedTransition(
            id,
            job.lastSeq,
            { cancel_requested: 1 },
            { actor, type: "cancel_requested", detail: `cancel requested while ${job.state}` },
            now,
          );
    const [update] = await db.write(statements);
    if (update && update.rowsAffected === 1) {
      return job.state === "queued" ? "cancelled" : "requested";
    }
  }
  throw new Error(`job ${id} kept changing; cancel not applied`);
}
