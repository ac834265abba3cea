/**
 * Leases: how agents take work. Claiming is ONE UPDATE … RETURNING statement (plus the event rows
 * in the same batch), so two agents can never hold the same job, on an embedded file or over HTTP,
 * without interactive transactions (which D1 and libSQL-over-HTTP make costly or impossible).
 *
 * `epoch` is the fencing token: each claim bumps it, and every report must carry the epoch it was
 * given. A job whose lease expired after it reached Slurm is re-leased only to the same cluster,
 * with its Slurm job id, so the new holder reconciles instead of submitting again.
 */
import type { InStatement, Row } from "@libsql/client";
import { newId } from "../ids.ts";
import type { Database } from "../db/client.ts";
import { DEFAULT_MAX_ARRAY_SIZE } from "../../schemas/index.ts";
import { HELD_STATES_SQL } from "../db/state-sql.ts";
import { type AgentScope, scopeCondition } from "./agent-scope.ts";
import { getCluster } from "./clusters.ts";
import { INVALID_SPEC, iso, parseStoredSpec, type StoredSpec } from "./job-row.ts";
import { guardedTransition } from "./transition.ts";

// Written exactly as the WHERE of the partial indexes jobs_held_expiry and jobs_cancel_orders.
const HELD_STATES = HELD_STATES_SQL;

export type ClaimedBatch = { id: string; index: number; size: number; maxParallel: number | null };

export type ClaimedRow = {
  jobId: string;
  epoch: number;
  attempt: number;
  owner: string;
  /** Parsed once, here: a row whose spec fails today's schema says why (the lease call then rejects it). */
  spec: StoredSpec;
  slurmJobId: string | null;
  lastSeq: number;
  expiresAt: string;
  /** The Slurm array this element is submitted in (or was, for a lease taken over); null for a plain job. */
  batch: ClaimedBatch | null;
};

/** A claimed row with what batching needs; internal to this file. */
type Raw = ClaimedRow & {
  fresh: boolean;
  sweepId: string | null;
  sweepIndex: number;
  group: string | null;
  stored: { id: string; index: number; size: number } | null;
};

const RETURNING =
  "RETURNING id, epoch, attempt, owner, spec, slurm_job_id, last_seq, prev_state, sweep_id, sweep_index, batch_group, batch_id, batch_index, batch_size";

// A queued element of a capped sweep waits while any element of its sweep is held: so a capped
// sweep is in Slurm one array at a time, and the array's %N is the real cap (jobs_sweep_state).
// The check runs per queued element the claim walks past: with 9,000 elements of a capped sweep
// waiting, a lease call with nothing to claim took ~45 ms on this (loaded) 2-core machine.
const NOT_CAPPED_AND_BUSY = `(sweep_id IS NULL OR NOT EXISTS (SELECT 1 FROM sweeps s WHERE s.id = jobs.sweep_id
  AND s.max_parallel IS NOT NULL AND EXISTS (SELECT 1 FROM jobs h WHERE h.sweep_id = s.id AND h.state IN ${HELD_STATES})))`;

function toRaw(row: Row, expiresAt: string): Raw {
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  const batchId = row.batch_id === null || row.batch_id === undefined ? null : String(row.batch_id);
  return {
    jobId: String(row.id),
    epoch: Number(row.epoch),
    attempt: Number(row.attempt),
    owner: String(row.owner),
    spec: parseStoredSpec(row.spec),
    slurmJobId: row.slurm_job_id === null ? null : String(row.slurm_job_id),
    lastSeq: Number(row.last_seq),
    expiresAt,
    batch: null,
    fresh: row.prev_state === "queued",
    sweepId: row.sweep_id === null ? null : String(row.sweep_id),
    sweepIndex: num(row.sweep_index) ?? 0,
    group: row.batch_group === null ? null : String(row.batch_group),
    stored: batchId ? { id: batchId, index: num(row.batch_index) ?? 0, size: num(row.batch_size) ?? 1 } : null,
  };
}

/** The lease-taking part of an UPDATE, the same for the first claim and a group's extension. */
const TAKE = `prev_state = state,
              state = CASE WHEN state = 'queued' THEN 'leased' ELSE state END,
              epoch = epoch + 1, lease_owner = ?, lease_expires_at = ?, claim_token = ?,
              last_seq = last_seq + 1, updated_at = ?,
              reason = CASE WHEN state = 'queued' THEN NULL ELSE reason END`;

function claimEvents(now: number, actor: string, token: string): InStatement {
  return {
    sql: `INSERT INTO job_events (job_id, seq, at, actor, type, state, detail)
          SELECT id, last_seq, ?, ?, CASE WHEN prev_state = 'queued' THEN 'state' ELSE 'note' END,
                 CASE WHEN prev_state = 'queued' THEN 'leased' ELSE NULL END,
                 CASE WHEN prev_state = 'queued' THEN 'leased (epoch ' || epoch || ')'
                      ELSE 'previous lease expired; taken over (epoch ' || epoch || ')' END
          FROM jobs WHERE claim_token = ?`,
    args: [now, actor, token],
  };
}

export type ClaimInput = {
  cluster: string;
  agentId: string;
  max: number;
  now: number;
  leaseMs: number;
  scope?: AgentScope;
};

/**
 * Claims up to `max` jobs (queued ones in queue order, and held ones whose lease expired). A
 * freshly claimed sweep element with a group key brings every queued element of its group along,
 * beyond `max`, in arrays of at most the cluster's MaxArraySize (see claimBatches).
 */
export async function claimJobs(db: Database, input: ClaimInput): Promise<ClaimedRow[]> {
  const token = newId("claim");
  const { now } = input;
  const expires = now + input.leaseMs;
  // Whose jobs this agent may run is part of the one statement: another user's row is never touched.
  const owner = scopeCondition(input.scope ?? { kind: "any" });
  const [claimed] = await db.write([
    {
      sql: `UPDATE jobs SET ${TAKE}
            WHERE id IN (
              SELECT id FROM (SELECT id FROM jobs WHERE cluster = ? AND state = 'queued' AND run_after <= ?${owner.sql}
                              AND ${NOT_CAPPED_AND_BUSY}
                              ORDER BY id LIMIT ?)
              UNION ALL
              SELECT id FROM (SELECT id FROM jobs WHERE cluster = ? AND lease_expires_at < ? AND state IN ${HELD_STATES}${owner.sql}
                              ORDER BY id LIMIT ?)
              LIMIT ?)
            ${RETURNING}`,
      args: [
        input.agentId,
        expires,
        token,
        now,
        input.cluster,
        now,
        ...owner.args,
        input.max,
        input.cluster,
        now,
        ...owner.args,
        input.max,
        input.max,
      ],
    },
    claimEvents(now, `agent:${input.cluster}/${input.agentId}`, token),
  ]);
  const rows = (claimed?.rows ?? []).map((row: Row) => toRaw(row, iso(expires)));
  if (!rows.some((r) => r.sweepId !== null)) {
    return rows.map(strip);
  }
  return (await claimBatches(db, input, rows)).map(strip);
}

function strip(raw: Raw): ClaimedRow {
  const { fresh: _f, sweepId: _s, sweepIndex: _i, group: _g, stored: _b, ...row } = raw;
  return row;
}

const CAPPED = "waiting for the sweep's array in Slurm to end (the sweep has maxParallel: one array at a time)";

async function maxParallelOf(db: Database, sweepIds: string[]): Promise<Map<string, number | null>> {
  const rs = await db.client.execute({
    sql: "SELECT id, max_parallel FROM sweeps WHERE id IN (SELECT value FROM json_each(?))",
    args: [JSON.stringify(sweepIds)],
  });
  return new Map(rs.rows.map((r) => [String(r.id), r.max_parallel === null ? null : Number(r.max_parallel)]));
}

/**
 * The rows of a capped sweep this claim may keep: those of the group of its first element (or, if
 * that one has no group, up to maxParallel plain elements). The rest go back to the queue at once,
 * so two arrays of one capped sweep are never in Slurm together.
 */
function overCap(rows: Raw[], caps: Map<string, number | null>): Raw[] {
  const extra: Raw[] = [];
  const bySweep = new Map<string, Raw[]>();
  for (const row of rows) {
    if (row.fresh && row.sweepId !== null && caps.get(row.sweepId) != null) {
      bySweep.set(row.sweepId, [...(bySweep.get(row.sweepId) ?? []), row]);
    }
  }
  for (const [sweepId, members] of bySweep) {
    members.sort((a, b) => a.sweepIndex - b.sweepIndex);
    const lead = members[0]!;
    const cap = caps.get(sweepId) ?? 1;
    let plain = 0;
    for (const row of members) {
      const keep = lead.group !== null ? row.group === lead.group : row.group === null && plain++ < cap;
      if (!keep) {
        extra.push(row);
      }
    }
  }
  return extra;
}

/** Puts claimed rows back in the queue (guarded: a row that changed meanwhile is left alone). */
async function release(db: Database, rows: Raw[], reason: string, now: number): Promise<void> {
  if (rows.length > 0) {
    await db.write(
      rows.flatMap((row) =>
        guardedTransition(
          row.jobId,
          row.lastSeq,
          { state: "queued", reason, lease_owner: null, lease_expires_at: null, batch_id: null },
          { actor: "gateway", type: "state", state: "queued", detail: reason },
          now,
        ),
      ),
    );
  }
}

/**
 * Every queued element of each claimed group, in element order, taken with the same lease; up to
 * `maxArraySize` per group (what is left stays queued for the next claim).
 */
async function extendGroups(db: Database, input: ClaimInput, groups: Map<string, Raw[]>, maxArraySize: number) {
  const token = newId("claim");
  const expires = input.now + input.leaseMs;
  const owner = scopeCondition(input.scope ?? { kind: "any" });
  const statements: InStatement[] = [];
  for (const members of groups.values()) {
    const lead = members[0]!;
    const room = maxArraySize - members.length;
    if (room > 0) {
      statements.push({
        sql: `UPDATE jobs SET ${TAKE}
              WHERE id IN (SELECT id FROM jobs WHERE sweep_id = ? AND batch_group = ? AND state = 'queued'
                           AND run_after <= ?${owner.sql} ORDER BY sweep_index LIMIT ?)
              ${RETURNING}`,
        args: [input.agentId, expires, token, input.now, lead.sweepId, lead.group, input.now, ...owner.args, room],
      });
    }
  }
  if (statements.length === 0) {
    return;
  }
  const results = await db.write([
    ...statements,
    claimEvents(input.now, `agent:${input.cluster}/${input.agentId}`, token),
  ]);
  for (const result of results.slice(0, statements.length)) {
    for (const row of result.rows) {
      const raw = toRaw(row, iso(expires));
      groups.get(`${raw.sweepId}\n${raw.group}`)?.push(raw);
    }
  }
}

/**
 * A taken-over lease of an array brings every other expired lease of the same array along (beyond
 * `max`, like a fresh array), so the new holder reconciles the whole array with one lookup of its tag.
 */
async function takeOverBatches(db: Database, input: ClaimInput, rows: Raw[]): Promise<Raw[]> {
  const taken = new Set(rows.map((r) => r.jobId));
  const batchIds = [...new Set(rows.flatMap((r) => (!r.fresh && r.stored ? [r.stored.id] : [])))];
  if (batchIds.length === 0) {
    return [];
  }
  const token = newId("claim");
  const expires = input.now + input.leaseMs;
  const owner = scopeCondition(input.scope ?? { kind: "any" });
  const statements: InStatement[] = batchIds.map((batchId) => ({
    sql: `UPDATE jobs SET ${TAKE}
          WHERE id IN (SELECT id FROM jobs WHERE batch_id = ? AND state IN ${HELD_STATES} AND cluster = ?
                       AND lease_expires_at < ?${owner.sql})
          ${RETURNING}`,
    args: [input.agentId, expires, token, input.now, batchId, input.cluster, input.now, ...owner.args],
  }));
  const results = await db.write([
    ...statements,
    claimEvents(input.now, `agent:${input.cluster}/${input.agentId}`, token),
  ]);
  return results
    .slice(0, statements.length)
    .flatMap((result) => result.rows.map((row) => toRaw(row, iso(expires))))
    .filter((raw) => !taken.has(raw.jobId))
    .sort((a, b) => a.sweepIndex - b.sweepIndex);
}

/**
 * Sweep elements: freshly claimed ones with a group key become arrays (a fresh `bat_…` id, indexes
 * 0..k-1 in element order, k ≤ the cluster's MaxArraySize), stored on their rows so a lease taken
 * over later carries the same batch. A taken-over lease answers its stored batch; a plain job none.
 */
async function claimBatches(db: Database, input: ClaimInput, claimed: Raw[]): Promise<Raw[]> {
  const sweepIds = [...new Set(claimed.flatMap((r) => (r.sweepId === null ? [] : [r.sweepId])))];
  const caps = await maxParallelOf(db, sweepIds);
  const extra = overCap(claimed, caps);
  await release(db, extra, CAPPED, input.now);
  const rows = claimed.filter((r) => !extra.includes(r));
  rows.push(...(await takeOverBatches(db, input, rows)));
  const groups = new Map<string, Raw[]>();
  for (const row of rows) {
    if (row.fresh && row.group !== null && row.spec.ok) {
      const key = `${row.sweepId}\n${row.group}`;
      groups.set(key, [...(groups.get(key) ?? []), row]);
    } else if (!row.fresh && row.stored && row.sweepId !== null) {
      row.batch = { ...row.stored, maxParallel: caps.get(row.sweepId) ?? null };
    }
  }
  if (groups.size === 0) {
    return rows;
  }
  const inventory = (await getCluster(db, input.cluster))?.inventory;
  const maxArraySize = inventory?.maxArraySize ?? DEFAULT_MAX_ARRAY_SIZE;
  await extendGroups(db, input, groups, maxArraySize);
  const assign: InStatement[] = [];
  const batched: Raw[] = [];
  const waiting: Raw[] = [];
  for (const members of groups.values()) {
    // Only valid specs join an array: a corrupt element is rejected on its own by the lease call.
    const sorted = members.filter((m) => m.spec.ok).sort((a, b) => a.sweepIndex - b.sweepIndex);
    const maxParallel = caps.get(sorted[0]?.sweepId ?? "") ?? null;
    // A capped sweep gets one array now; what does not fit waits for it to end.
    const valid = maxParallel === null ? sorted : sorted.slice(0, maxArraySize);
    waiting.push(...sorted.slice(valid.length));
    for (let start = 0; start < valid.length; start += maxArraySize) {
      const chunk = valid.slice(start, start + maxArraySize);
      const id = newId("bat", input.now);
      chunk.forEach((row, index) => {
        row.batch = { id, index, size: chunk.length, maxParallel };
      });
      assign.push({
        sql: `UPDATE jobs SET batch_id = ?, batch_size = ?, batch_index = b.key
              FROM json_each(?) AS b WHERE jobs.id = b.value`,
        args: [id, chunk.length, JSON.stringify(chunk.map((r) => r.jobId))],
      });
      batched.push(...chunk);
    }
    batched.push(...members.filter((m) => !m.spec.ok));
  }
  await db.write(assign);
  await release(db, waiting, CAPPED, input.now);
  const inGroups = new Set([...batched, ...waiting]);
  return [...rows.filter((r) => !inGroups.has(r)), ...batched];
}

/**
 * Ends a claimed job whose stored spec fails the schema: `rejected` with code `invalid_spec` and the
 * reason, with its event, released from the lease, so it is never offered again and never stalls the
 * rest of the batch. Guarded on the claim's last_seq: a job that changed meanwhile is left alone.
 */
export async function rejectInvalidClaim(
  db: Database,
  claim: ClaimedRow,
  input: { reason: string; now: number },
): Promise<boolean> {
  // A job already in Slurm cannot be tracked without its spec: say so instead of hiding it.
  const reason = claim.slurmJobId
    ? `${input.reason}; Slurm job ${claim.slurmJobId} is no longer tracked by slurmgate`
    : input.reason;
  const [update] = await db.write(
    guardedTransition(
      claim.jobId,
      claim.lastSeq,
      { state: "rejected", code: INVALID_SPEC, reason, lease_owner: null, lease_expires_at: null },
      { actor: "gateway", type: "state", state: "rejected", detail: reason },
      input.now,
    ),
  );
  return update?.rowsAffected === 1;
}

/**
 * Extends the leases an agent still holds; returns the ids it no longer holds (taken over, ended,
 * or never its own) so the agent stops tracking them.
 */
export async function renewLeases(
  db: Database,
  input: { cluster: string; agentId: string; holding: string[]; now: number; leaseMs: number },
): Promise<string[]> {
  if (input.holding.length === 0) {
    return [];
  }
  const held = new Set<string>();
  for (let i = 0; i < input.holding.length; i += 500) {
    const chunk = input.holding.slice(i, i + 500);
    const marks = chunk.map(() => "?").join(",");
    const rs = await db.client.execute({
      sql: `UPDATE jobs SET lease_expires_at = ? WHERE cluster = ? AND lease_owner = ? AND state IN ${HELD_STATES}
            AND id IN (${marks}) RETURNING id`,
      args: [input.now + input.leaseMs, input.cluster, input.agentId, ...chunk],
    });
    for (const row of rs.rows) {
      held.add(String(row.id));
    }
  }
  return input.holding.filter((id) => !held.has(id));
}

export type CancelOrderRow = { jobId: string; epoch: number; slurmJobId: string | null };

/**
 * Runs once per check of a lease call (once for a call that does not wait). It reads jobs_cancel_orders, a partial index holding only
 * held jobs with a pending cancel: on (cluster, state) it read every held row of the cluster, and a
 * lease with nothing to do took 15.7 → 40.8 → 145 ms at 10k → 100k → 1M jobs; now 1.8 → 1.6 → 1.7
 * (bench/RESULTS.md, history).
 */
export async function cancelOrders(db: Database, cluster: string, agentId: string): Promise<CancelOrderRow[]> {
  const rs = await db.client.execute({
    sql: `SELECT id, epoch, slurm_job_id FROM jobs WHERE cluster = ? AND lease_owner = ? AND cancel_requested = 1
          AND state IN ${HELD_STATES} LIMIT 1000`,
    args: [cluster, agentId],
  });
  return rs.rows.map((row) => ({
    jobId: String(row.id),
    epoch: Number(row.epoch),
    slurmJobId: row.slurm_job_id === null ? null : String(row.slurm_job_id),
  }));
}

/**
 * Housekeeping: a `leased` job whose holder vanished before submitting goes back to `queued` for the
 * same cluster, so users see the truth. (Claims would take it over anyway; this keeps the state honest.)
 * Cancel-requested jobs that never reached Slurm end as cancelled. Not an element of an array: its
 * holder may have run sbatch for the whole array and died before reporting, so only a takeover (which
 * carries the batch, and brings the whole array) lets the next holder find it by its tag.
 */
export async function expireLeases(db: Database, now: number): Promise<number> {
  const token = newId("sweep");
  const [swept] = await db.write([
    {
      sql: `UPDATE jobs SET prev_state = state,
              state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END,
              lease_owner = NULL, lease_expires_at = NULL, claim_token = ?, last_seq = last_seq + 1, updated_at = ?,
              reason = CASE WHEN cancel_requested = 1 THEN 'cancelled before any Slurm job was submitted'
                            ELSE 'the agent holding it went quiet before submitting; waiting for an agent' END
            WHERE state = 'leased' AND slurm_job_id IS NULL AND lease_expires_at < ? AND batch_id IS NULL`,
      args: [token, now, now],
    },
    {
      sql: `INSERT INTO job_events (job_id, seq, at, actor, type, state, detail)
            SELECT id, last_seq, ?, 'gateway', 'state', state, reason FROM jobs WHERE claim_token = ?`,
      args: [now, token],
    },
  ]);
  return swept?.rowsAffected ?? 0;
}
