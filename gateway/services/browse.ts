/**
 * Browsing a job's directory on demand: the path is checked lexically by the route (schemas/browse.ts),
 * the job must be the caller's and have reached Slurm, and the cluster's agent is asked on the asks
 * channel; it confines the path again on its side and reads as the job's account.
 */
import type { BrowseRefusal, DirListing, FileSlice, Job } from "../../schemas/index.ts";
import { clusterLiveness } from "../agent-liveness.ts";
import type { Deps, Principal } from "../deps.ts";
import { ApiProblem } from "../problem.ts";
import { listAgents } from "../store/agents.ts";
import { type Asked, askAgent } from "./asks.ts";
import { visibleJob } from "./jobs.ts";

export type BrowseRequest = { op: "dir" } | { op: "head" | "tail"; bytes: number };

/** The job whose directory may be browsed: the caller's (404 otherwise), already given to Slurm. */
async function browsableJob(deps: Deps, principal: Principal, id: string): Promise<Job> {
  const job = await visibleJob(deps, principal, id);
  // The agent creates the directory right before sbatch; until Slurm has the job there may be none.
  if (job.slurmJobId === null) {
    throw new ApiProblem(
      "conflict",
      `job ${id} has not been submitted to Slurm yet (state ${job.state}), so it has no directory to browse`,
    );
  }
  const now = deps.now();
  const own = (await listAgents(deps.db)).filter((a) => a.cluster === job.cluster);
  if (!clusterLiveness(own, now, deps.config.SLURMGATE_AGENT_LIVENESS_SECONDS * 1000).alive) {
    throw new ApiProblem("unavailable", `no agent of cluster ${job.cluster} is connected to read the job's directory`);
  }
  return job;
}

function unwrap<T extends object>(job: Job, path: string, asked: Asked<"list_dir" | "read_file">): T {
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
  return { ...value, path };
}

/**
 * Lists a directory of the job's directory, or reads the first or last bytes of one of its files.
 * @example await browseJob(deps, alice, "job_01…", "results", { op: "head", bytes: 4096 })
 */
export async function browseJob(
  deps: Deps,
  principal: Principal,
  id: string,
  path: string,
  request: BrowseRequest,
  signal?: AbortSignal,
): Promise<DirListing | FileSlice> {
  const job = await browsableJob(deps, principal, id);
  const seconds = deps.config.SLURMGATE_BROWSE_SECONDS;
  const where = { owner: job.owner, jobId: job.id, attempt: job.attempt, path };
  if (request.op === "dir") {
    const asked = await askAgent(deps, job.cluster, { kind: "list_dir", ...where }, seconds, signal);
    return unwrap<DirListing>(job, path, asked);
  }
  const question = { kind: "read_file" as const, ...where, from: request.op, bytes: request.bytes };
  return unwrap<FileSlice>(job, path, await askAgent(deps, job.cluster, question, seconds, signal));
}
