/**
 * Tracking every submitted job in bulk: one squeue for all of them, one sacct for those that left
 * the queue (or scontrol when accounting is off), and the exit-code file the job wrapper writes as
 * a third source. A job absent from all three is unknown until the grace period ends, then `lost`;
 * it is never called completed without evidence.
 */
import type { JobState } from "../schemas/job.ts";
import { isTerminal } from "../schemas/job.ts";
import type { AgentContext } from "./context.ts";
import type { Report } from "./gateway-api.ts";
import type { TrackedJob } from "./state.ts";

export type Observation = { state: JobState; exitCode?: number; signal?: number; reason?: string };

type Row = {
  id: string;
  arrayJobId: string | null;
  jobState: JobState | null;
  reason?: string | null;
  exitCode?: number | null;
  signal?: number | null;
};

const TERMINAL_PRIORITY: JobState[] = [
  "out_of_memory",
  "timeout",
  "node_fail",
  "preempted",
  "failed",
  "cancelled",
  "completed",
];

/** One job's rows (one row, or one per array task) folded into one observation. */
export function foldRows(rows: Row[]): Observation | undefined {
  const known = rows.filter((r) => r.jobState !== null);
  if (known.length === 0) {
    return undefined;
  }
  const live = known.filter((r) => !isTerminal(r.jobState!));
  if (live.length) {
    const running = live.find((r) => r.jobState === "running");
    const pick = running ?? live[0]!;
    return { state: pick.jobState!, reason: pick.reason ?? undefined };
  }
  for (const state of TERMINAL_PRIORITY) {
    const row = known.find((r) => r.jobState === state);
    if (row) {
      return {
        state,
        exitCode: row.exitCode ?? undefined,
        signal: row.signal ?? undefined,
        reason:
          known.length > 1
            ? `${known.filter((r) => r.jobState === "completed").length}/${known.length} array tasks completed`
            : undefined,
      };
    }
  }
  return undefined;
}

function rowsFor(job: TrackedJob, rows: Row[]): Row[] {
  const id = job.slurmJobId;
  return rows.filter((r) => r.id === id || r.arrayJobId === id || r.id.startsWith(`${id}_`));
}

async function readExitFile(ctx: AgentContext, job: TrackedJob): Promise<Observation | undefined> {
  const data = await ctx.executor.readFile(`${job.jobDir}/exitcode`, { length: 64 });
  const code = data ? Number.parseInt(data.toString("utf8").trim(), 10) : Number.NaN;
  if (Number.isNaN(code)) {
    return undefined;
  }
  return { state: code === 0 ? "completed" : "failed", exitCode: code, reason: "from the job's exit-code file" };
}

/** Observes every submitted job; returns jobId → observation (absent = no evidence this cycle). */
export async function observe(ctx: AgentContext, jobs: TrackedJob[]): Promise<Map<string, Observation>> {
  const seen = new Map<string, Observation>();
  if (jobs.length === 0) {
    return seen;
  }
  const queue = await ctx.slurm.squeue();
  const queueRows: Row[] = (queue ?? []).map((r) => ({
    id: r.slurmJobId,
    arrayJobId: r.arrayJobId,
    jobState: r.jobState,
    reason: r.reason,
  }));
  const needHistory: TrackedJob[] = [];
  for (const job of jobs) {
    const folded = foldRows(rowsFor(job, queueRows));
    if (folded && !isTerminal(folded.state)) {
      seen.set(job.jobId, folded);
    } else {
      if (folded) {
        seen.set(job.jobId, folded);
      }
      needHistory.push(job);
    }
  }
  if (needHistory.length > 0) {
    const history = await historyRows(ctx, needHistory);
    for (const job of needHistory) {
      const folded = history ? foldRows(rowsFor(job, history)) : undefined;
      if (folded && (isTerminal(folded.state) || !seen.has(job.jobId))) {
        seen.set(job.jobId, folded);
      }
      const current = seen.get(job.jobId);
      if (!job.isArray && (!current || (isTerminal(current.state) && current.exitCode === undefined))) {
        const fromFile = await readExitFile(ctx, job);
        if (fromFile) {
          seen.set(job.jobId, current ? { ...current, exitCode: fromFile.exitCode } : fromFile);
        }
      }
    }
  }
  if (queue === null) {
    // squeue failed: nothing may be concluded from absence this cycle.
    for (const job of jobs) {
      if (!seen.has(job.jobId)) {
        seen.set(job.jobId, { state: job.reported ?? "submitted", reason: "squeue failed; state unchanged" });
      }
    }
  }
  return seen;
}

async function historyRows(ctx: AgentContext, jobs: TrackedJob[]): Promise<Row[] | null> {
  const ids = jobs.map((j) => j.slurmJobId!);
  if (ctx.accounting) {
    const since = new Date(Math.min(...jobs.map((j) => j.submittedAt)) - 3_600_000);
    const acct = await ctx.slurm.sacct({ since, ids });
    if (acct.ok) {
      return acct.rows.map((r) => ({
        id: r.slurmJobId,
        arrayJobId: null,
        jobState: r.jobState,
        exitCode: r.exitCode,
        signal: r.signal,
      }));
    }
    ctx.log("warn", "sacct failed; falling back to scontrol", { message: acct.message });
  }
  const all = await ctx.slurm.scontrolAll();
  return all
    ? all.map((r) => ({
        id: r.slurmJobId,
        arrayJobId: null,
        jobState: r.jobState,
        exitCode: r.exitCode,
        signal: r.signal,
        reason: r.reason,
      }))
    : null;
}

/**
 * Slurm keeps a job whose dependency can never be satisfied pending forever (unless the site sets
 * kill_invalid_depend). Such a job is refused for the user, with Slurm's reason, and removed.
 */
export function neverRuns(seen: Map<string, Observation>): Map<string, Observation> {
  const doomed = new Map<string, Observation>();
  for (const [jobId, obs] of seen) {
    if (obs.state === "pending" && obs.reason === "DependencyNeverSatisfied") {
      doomed.set(jobId, {
        state: "rejected",
        reason: "Slurm: DependencyNeverSatisfied (a job it depends on ended the wrong way)",
      });
    }
  }
  return doomed;
}

/**
 * Turns observations into reports and the local-state updates to apply once they are accepted.
 */
export function transitions(ctx: AgentContext, jobs: TrackedJob[], seen: Map<string, Observation>) {
  const now = ctx.now();
  const reports: Report[] = [];
  const updates: TrackedJob[] = [];
  for (const job of jobs) {
    const obs = seen.get(job.jobId);
    if (!obs) {
      const missingSince = job.missingSince ?? now;
      if (now - missingSince >= ctx.config.SLURMGATE_LOST_GRACE_SECONDS * 1000) {
        reports.push({
          jobId: job.jobId,
          epoch: job.epoch,
          state: "lost",
          code: "job_vanished",
          reason: `Slurm job ${job.slurmJobId} is in neither squeue, sacct nor its exit file since ${new Date(missingSince).toISOString()}`,
          logs: [],
        });
        updates.push({ ...job, missingSince, reported: "lost" });
        ctx.log("error", "job lost", { jobId: job.jobId, slurmJobId: job.slurmJobId });
      } else if (job.missingSince === null) {
        updates.push({ ...job, missingSince });
      }
      continue;
    }
    if (obs.state === job.reported && job.missingSince === null) {
      continue;
    }
    const base = { ...job, missingSince: null, reported: obs.state };
    if (obs.state === job.reported) {
      updates.push(base);
      continue;
    }
    reports.push({
      jobId: job.jobId,
      epoch: job.epoch,
      state: obs.state,
      ...(obs.state === "rejected" ? { code: "slurm_dependency" as const } : {}),
      slurmJobId: job.slurmJobId ?? undefined,
      exitCode: obs.exitCode,
      signal: obs.signal,
      reason: obs.reason,
      logs: [],
    });
    updates.push(base);
  }
  return { reports, updates };
}
