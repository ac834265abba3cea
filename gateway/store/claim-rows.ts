/**
 * What a claim returns, and the SQL pieces the first claim (leases.ts) and the array claims
 * (batches.ts) share: the lease-taking SET, the RETURNING list, the claim's event rows.
 */
import type { InStatement, Row } from "@libsql/client";
import type { AgentScope } from "./agent-scope.ts";
import { parseStoredSpec, type StoredSpec } from "./job-row.ts";

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

/** A claimed row with what batching needs (store only; services see ClaimedRow). */
export type Raw = ClaimedRow & {
  fresh: boolean;
  sweepId: string | null;
  sweepIndex: number;
  group: string | null;
  stored: { id: string; index: number; size: number } | null;
};

export const RETURNING =
  "RETURNING id, epoch, attempt, owner, spec, slurm_job_id, last_seq, prev_state, sweep_id, sweep_index, batch_group, batch_id, batch_index, batch_size";

export function toRaw(row: Row, expiresAt: string): Raw {
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
export const TAKE = `prev_state = state,
              state = CASE WHEN state = 'queued' THEN 'leased' ELSE state END,
              epoch = epoch + 1, lease_owner = ?, lease_expires_at = ?, claim_token = ?,
              last_seq = last_seq + 1, updated_at = ?,
              reason = CASE WHEN state = 'queued' THEN NULL ELSE reason END`;

export function claimEvents(now: number, actor: string, token: string): InStatement {
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

/** The row as services see it. */
export function strip(raw: Raw): ClaimedRow {
  const { fresh: _f, sweepId: _s, sweepIndex: _i, group: _g, stored: _b, ...row } = raw;
  return row;
}
