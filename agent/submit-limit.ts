/**
 * What a submit limit refusal (MaxSubmitJobs and its kin, see agent/slurm/sbatch.ts) leaves the
 * agent to decide: how to split a sweep's array that does not fit, and when a submission never fits.
 */
import type { RejectCode } from "../schemas/agent.ts";
import type { JobSpec } from "../schemas/job.ts";
import { arrayTaskCount } from "./array-indexes.ts";
import type { SlurmCommands } from "./slurm-commands.ts";
import { submitLimitOf } from "./slurm/sbatch.ts";

/**
 * The split rule: what to try after Slurm refused an array of `size` elements. A submit limit
 * (MaxSubmitJobs and its kin) counts every element of an array, so an array larger than the room
 * left is refused every time, however long it waits. The next try is the first half (rounded up)
 * of the same elements, down to one: when there is room for even one element, something goes in
 * this cycle, at a cost of at most log2(size) refused calls (each a cheap RPC); a part that went in
 * keeps its size for the rest, as there is no more room after it than before. Returns the next
 * part's size, or null when a smaller array cannot help: a full controller (MaxJobCount) counts an
 * array as one job, and a refusal of the spec refuses every part.
 * @example
 * nextPartSize(5, { code: "backpressure", message: "Slurm's queue is full for this user (QOSMaxSubmitJobPerUserLimit): waiting" }) // => 3
 */
export function nextPartSize(size: number, refusal: { code: string; message: string }): number | null {
  return refusal.code === "backpressure" && size > 1 && submitLimitOf(refusal.message) !== null
    ? Math.ceil(size / 2)
    : null;
}

/** Submit limits counted on this user's own jobs only (a Grp or per-account limit counts others' too). */
const PER_USER_LIMITS = /^(QOSMaxSubmitJobPerUserLimit|AssocMaxSubmitJobLimit)$/;

/**
 * A submission that cannot be split (one job, with or without its own array; a sweep's part of one
 * element) refused by a per-user submit limit while Slurm holds no job of this user at all (`held`
 * 0: squeue --states=all lists even jobs ended in the last MinJobAge seconds, so one that ended
 * since the refusal still counts) can never fit: the limit is below the tasks it asks for, and
 * nothing of the user's will leave to make room. A refusal that names the rule, since waiting
 * would be forever. Anything less certain (a job of the user held, squeue silent, a group limit, a
 * limit Slurm did not name) is waited for. Returns the refusal's code, or null.
 */
export function neverFitsCode(refusal: { code: string; message: string }, held: number | null): RejectCode | null {
  const limit = refusal.code === "backpressure" ? submitLimitOf(refusal.message) : null;
  if (limit === null || !PER_USER_LIMITS.test(limit) || held !== 0) {
    return null;
  }
  return limit.startsWith("Assoc") ? "slurm_assoc_limit" : "slurm_qos_limit";
}

/**
 * Why a submission of `tasks` array tasks (1: a plain job) never fits, from the back-pressure
 * reason it was refused with. A `%N` throttle is no way out: a submit limit counts every task of
 * an array, running or not.
 */
export function neverFitsMessage(reason: string, tasks: number): string {
  const limit = submitLimitOf(reason);
  // Slurm's own words: what waitingReason put in brackets after "waiting".
  const slurm = /: waiting \((.*)\)$/.exec(reason)?.[1];
  const why =
    tasks === 1
      ? `Slurm's ${limit} allows this user no job on this cluster (a limit of 0): it refuses a single job while holding none of theirs`
      : `the job asks for ${tasks} array tasks and Slurm's ${limit} refuses them all even with none of this user's jobs queued: the limit counts every task (a %N throttle does not change that), so only an array of fewer tasks can go in`;
  return `${why}${slurm ? ` (${slurm})` : ""}`.slice(0, 1_000);
}

/** The tasks one sbatch of this spec asks Slurm for: its array's, or 1. */
export function tasksAsked(spec: Pick<JobSpec, "array"> | undefined): number {
  return spec?.array ? arrayTaskCount(spec.array.indexes) : 1;
}

/** How many jobs Slurm holds for the submitting user (any state), or null when squeue cannot say. */
export async function heldByUser(slurm: Pick<SlurmCommands, "squeue">, refusal: { code: string; message: string }) {
  if (neverFitsCode(refusal, 0) === null) {
    return null; // no squeue when its answer could not change anything
  }
  const rows = await slurm.squeue();
  return rows.ok ? rows.value.length : null;
}
