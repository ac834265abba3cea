/**
 * Browsing a job's directory on demand: the path is checked lexically by the route (schemas/browse.ts),
 * the job must be the caller's and the attempt browsed must have reached Slurm, and the cluster's
 * agent is asked on the asks channel; it confines the path again on its side, finds that attempt's
 * directory (agent/paths.ts jobDirName) and reads as the job's account.
 */
import type { BrowseRefusal, DirListing, FileSlice, Job } from "../../schemas/index.ts";
import { clusterLiveness } from "../agent-liveness.ts";
import type { Deps, Principal } from "../deps.ts";
import { ApiProblem } from "../problem.ts";
import { listAgents } from "../store/agents.ts";
import { type Asked, askAgent } from "./asks.ts";
import { visibleJob } from "./jobs.ts";

export type BrowseRequest = { op: "dir" } | { op: "head" | "tail"; bytes: number };

/**
 * Which attempt's directory to read: the one asked for, else the current attempt once it reached
 * Slurm, else the one before it (a job back in the queue for a retry: its last run is what one
 * wants to look at). Every earlier attempt reached Slurm: a new attempt is made only after a Slurm
 * ending (timeout, preemption, node failure; store/reports.ts retryPlan).
 */
function browsedAttempt(job: Job, asked: number | undefined): number {
  if (asked !== undefined && asked > job.attempt) {
    throw new ApiProblem("not_found", `job ${job.id} has no attempt ${asked}: it has had ${job.attempt} so far`, {
      field: "query.attempt",
    });
  }
  const current = job.slurmJobId !== null;
  const attempt = asked ?? (current ? job.attempt : job.attempt - 1);
  // The agent creates the directory right before sbatch; until Slurm has the attempt there may be none.
  if (attempt < 1 || (attempt === job.attempt && !current)) {
    const which = job.attempt > 1 ? `attempt ${job.attempt} of job ${job.id}` : `job ${job.id}`;
    throw new ApiProblem(
      "conflict",
      `${which} has not been submitted to Slurm yet (state ${job.state}), so it has no directory to browse`,
    );
  }
  return attempt;
}

/** The job whose directory may be browsed (the caller's, 404 otherwise) and the attempt to read. */
async function browsableJob(
  deps: Deps,
  principal: Principal,
  id: string,
  asked: number | undefined,
): Promise<{ job: Job; attempt: number }> {
  const job = await visibleJob(deps, principal, id);
  const attempt = browsedAttempt(job, asked);
  const now = deps.now();
  const own = (await listAgents(deps.db)).filter((a) => a.cluster === job.cluster);
  if (!clusterLiveness(own, now, deps.config.SLURMGATE_AGENT_LIVENESS_SECONDS * 1000).alive) {
    throw new ApiProblem("unavailable", `no agent of cluster ${job.cluster} is connected to read the job's directory`);
  }
  return { job, attempt };
}

function unwrap<T extends object>(job: Job, path: string, attempt: number, asked: Asked<"list_dir" | "read_file">): T {
  if (!asked.ok) {
    if (asked.timedOut) {
      throw new ApiProblem("agent_timeout", `the agent of ${job.cluster} did not answer: ${asked.reason}`);
    }
    throw new ApiProblem("conflict", `the agent of ${job.cluster} could not browse job ${job.id}: ${asked.reason}`);
  }
  const value = asked.value as T | BrowseRefusal;
  if ("refused" in value) {
    if (value.refused === "path") {
      throw new ApiProblem("validation_failed", `query.path: ${value.reason}`, { field: "query.path" });
    }
    throw new ApiProblem("conflict", `the agent of ${job.cluster} cannot browse job directories: ${value.reason}`);
  }
  return { ...value, path, attempt };
}

/**
 * Lists a directory of the job's directory, or reads the first or last bytes of one of its files,
 * in the directory of `attempt` (default: see browsedAttempt).
 * @example await browseJob(deps, alice, "job_01…", "results", { op: "head", bytes: 4096 })
 */
export async function browseJob(
  deps: Deps,
  principal: Principal,
  id: string,
  path: string,
  request: BrowseRequest,
  signal?: AbortSignal,
  attempt?: number,
): Promise<DirListing | FileSlice> {
  const browsed = await browsableJob(deps, principal, id, attempt);
  const { job } = browsed;
  const seconds = deps.config.SLURMGATE_BROWSE_SECONDS;
  const where = { owner: job.owner, jobId: job.id, attempt: browsed.attempt, path };
  if (request.op === "dir") {
    const asked = await askAgent(deps, job.cluster, { kind: "list_dir", ...where }, seconds, signal);
    return unwrap<DirListing>(job, path, browsed.attempt, asked);
  }
  const question = { kind: "read_file" as const, ...where, from: request.op, bytes: request.bytes };
  return unwrap<FileSlice>(job, path, browsed.attempt, await askAgent(deps, job.cluster, question, seconds, signal));
}
