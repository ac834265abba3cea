/**
 * Dependencies between slurmgate jobs become Slurm `--dependency` ids at lease time. A dependency
 * that has not reached Slurm yet sends the dependent back to the queue for a few seconds; one whose
 * outcome already settles the condition is dropped (satisfied) or ends the dependent (never
 * satisfiable) — Slurm forgets finished jobs after MinJobAge, so it cannot be asked later.
 */
import { type JobSpec, JobState, isTerminal } from "../../schemas/index.ts";
import type { Database } from "../db/client.ts";
import { type JobChanges, guardedTransition } from "./transition.ts";

export type DependencyResolution =
  | { status: "ready"; slurmIds: { slurmJobId: string; condition: string }[] }
  | { status: "waiting" | "rejected"; reason: string };

type DepRow = { state: JobState; slurmJobId: string | null };

function settled(condition: string, dep: DepRow): "satisfied" | "never" | "open" {
  if (condition === "after") {
    return dep.state === "running" || isTerminal(dep.state) ? "satisfied" : "open";
  }
  if (!isTerminal(dep.state)) {
    return "open";
  }
  const ok = dep.state === "completed";
  if (condition === "afterany") {
    return "satisfied";
  }
  if (condition === "afterok") {
    return ok ? "satisfied" : "never";
  }
  return ok ? "never" : "satisfied";
}

export async function resolveDependencies(
  db: Database,
  jobId: string,
  spec: JobSpec,
  now: number,
): Promise<DependencyResolution> {
  const result = await evaluate(db, spec);
  if (result.status === "ready") {
    return result;
  }
  const rs = await db.client.execute({ sql: "SELECT last_seq FROM jobs WHERE id = ?", args: [jobId] });
  const seq = Number(rs.rows[0]?.last_seq ?? 0);
  const changes: JobChanges =
    result.status === "waiting"
      ? { state: "queued", run_after: now + 5_000, reason: result.reason, lease_owner: null, lease_expires_at: null }
      : {
          state: "rejected",
          code: "slurm_dependency",
          reason: result.reason,
          lease_owner: null,
          lease_expires_at: null,
        };
  await db.write(
    guardedTransition(
      jobId,
      seq,
      changes,
      { actor: "gateway", type: "state", state: String(changes.state), detail: result.reason },
      now,
    ),
  );
  return result;
}

async function evaluate(db: Database, spec: JobSpec): Promise<DependencyResolution> {
  const slurmIds: { slurmJobId: string; condition: string }[] = [];
  for (const dep of spec.dependsOn) {
    const rs = await db.client.execute({ sql: "SELECT state, slurm_job_id FROM jobs WHERE id = ?", args: [dep.job] });
    const row = rs.rows[0];
    if (!row) {
      return { status: "rejected", reason: `dependency ${dep.job} does not exist` };
    }
    const state = JobState.safeParse(row.state);
    if (!state.success) {
      return { status: "rejected", reason: `dependency ${dep.job} has an unreadable stored state` };
    }
    const depRow: DepRow = {
      state: state.data,
      slurmJobId: row.slurm_job_id === null ? null : String(row.slurm_job_id),
    };
    const verdict = settled(dep.condition, depRow);
    if (verdict === "never") {
      return {
        status: "rejected",
        reason: `dependency ${dep.job} ended ${depRow.state}, so ${dep.condition} can never hold`,
      };
    }
    if (verdict === "satisfied") {
      continue;
    }
    if (!depRow.slurmJobId) {
      return { status: "waiting", reason: `waiting for dependency ${dep.job} to reach Slurm` };
    }
    slurmIds.push({ slurmJobId: depRow.slurmJobId, condition: dep.condition });
  }
  return { status: "ready", slurmIds };
}
