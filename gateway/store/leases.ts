/**
 * Leases: how agents take work. Claiming is ONE UPDATE … RETURNING statement (plus the event rows
 * in the same batch), so two agents can never hold the same job, on an embedded file or over HTTP,
 * without interactive transactions (which D1 and libSQL-over-HTTP make costly or impossible).
 *
 * `epoch` is the fencing token: each claim bumps it, and every report must carry the epoch it was
 * given. A job whose lease expired after it reached Slurm is re-leased only to the same cluster,
 * with its Slurm job id, so the new holder reconciles instead of submitting again.
 */
import type { Row } from "@libsql/client";
import { newId } from "../ids.ts";
import type { Database } from "../db/client.ts";
import { HELD_STATES_SQL } from "../db/state-sql.ts";
import { scopeCondition } from "./agent-scope.ts";
import { claimBatches } from "./batches.ts";
import { type ClaimInput, type ClaimedRow, RETURNING, TAKE, claimEvents, strip, toRaw } from "./claim-rows.ts";
import { INVALID_SPEC, iso } from "./job-row.ts";
import { guardedTransition } from "./transition.ts";

export type { ClaimedBatch, ClaimedRow, ClaimInput } from "./claim-rows.ts";

// Written exactly as the WHERE of the partial indexes jobs_held_expiry and jobs_cancel_orders.
const HELD_STATES = HELD_STATES_SQL;

// A queued element of a capped sweep waits while any element of its sweep is held: so a capped
// sweep is in Slurm one array at a time, and the array's %N is the real cap (jobs_sweep_state).
// The check runs per queued element the claim walks past: with 9,000 elements of a capped sweep
// waiting, a lease call with nothing to claim took ~45 ms on this (loaded) 2-core machine.
const NOT_CAPPED_AND_BUSY = `(sweep_id IS NULL OR NOT EXISTS (SELECT 1 FROM sweeps s WHERE s.id = jobs.sweep_id
  AND s.max_parallel IS NOT NULL AND EXISTS (SELECT 1 FROM jobs h WHERE h.sweep_id = s.id AND h.state IN ${HELD_STATES})))`;

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
