/**
 * Maps raw `jobs` / `job_events` rows to the API's Job and JobEvent.
 */
import type { Row } from "@libsql/client";
import type { Job, JobEvent, JobSpec, JobState } from "../../schemas/index.ts";

export const iso = (ms: number) => new Date(ms).toISOString();

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

export function rowToJob(row: Row): Job {
  return {
    id: String(row.id),
    owner: String(row.owner),
    name: String(row.name),
    state: String(row.state) as JobState,
    reason: str(row.reason),
    code: str(row.code),
    cluster: String(row.cluster),
    partition: str(row.partition),
    attempt: Number(row.attempt),
    slurmJobId: str(row.slurm_job_id),
    exitCode: num(row.exit_code),
    signal: num(row.signal),
    cancelRequested: Boolean(Number(row.cancel_requested)),
    labels: JSON.parse(String(row.labels)) as Record<string, string>,
    spec: JSON.parse(String(row.spec)) as JobSpec,
    result: row.result === null || row.result === undefined ? null : JSON.parse(String(row.result)),
    lastSeq: Number(row.last_seq),
    createdAt: iso(Number(row.created_at)),
    updatedAt: iso(Number(row.updated_at)),
  };
}

export function rowToEvent(row: Row): JobEvent {
  return {
    seq: Number(row.seq),
    at: iso(Number(row.at)),
    actor: String(row.actor),
    type: String(row.type) as JobEvent["type"],
    ...(row.state ? { state: String(row.state) as JobState } : {}),
    ...(row.detail ? { detail: String(row.detail) } : {}),
  };
}

/** Columns the API needs; leaves out the rendered script and lease internals. */
export const JOB_COLUMNS =
  "id, owner, name, state, reason, code, cluster, partition, attempt, slurm_job_id, exit_code, signal, cancel_requested, labels, spec, result, last_seq, created_at, updated_at";
