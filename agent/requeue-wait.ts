/**
 * How long a job the agent gives back to the gateway's queue waits before it is offered again: the
 * one rule for every give-back (a single job, a sweep batch, the rest of a cycle's leases). The
 * gateway only applies the number it is sent (schemas/agent.ts bounds it), so the rule lives here.
 */
import type { Lease, Report } from "./gateway-api.ts";

/** Why a job goes back unsubmitted. */
export type RequeueCause =
  /**
   * No room now: Slurm refused it (a full controller, MaxJobCount; a submit limit, MaxSubmitJobs), or
   * its sweep's maxParallel is taken by the sweep's elements already in Slurm.
   */
  | "no-room"
  /** Something could not be checked or asked now (sinfo, sacctmgr, an input's source, sbatch unanswered). */
  | "not-now";

/**
 * The default wait for "no-room" (SLURMGATE_NO_ROOM_WAIT_SECONDS). Room frees only as jobs end, in
 * minutes: asking sooner adds refused RPCs to a controller that is already at its limit, and shows
 * the user nothing new. A site whose jobs turn over in seconds may shorten it.
 */
export const NO_ROOM_WAIT_SECONDS = 60;
/** A missed answer is usually a blip (a restarting controller, a dropped link): look again soon. */
const NOT_NOW_WAIT_SECONDS = 30;

/** The part of the agent's configuration the rule reads. */
export type RequeueWaitConfig = { SLURMGATE_NO_ROOM_WAIT_SECONDS: number };

/** Seconds a job given back for `cause` waits before the gateway offers it again. */
export function requeueAfterSeconds(cause: RequeueCause, config: RequeueWaitConfig): number {
  return cause === "no-room" ? config.SLURMGATE_NO_ROOM_WAIT_SECONDS : NOT_NOW_WAIT_SECONDS;
}

/** Gives the job back to the gateway's queue for now: nothing was submitted. */
export function requeueReport(
  lease: Pick<Lease, "jobId" | "epoch">,
  reason: string,
  cause: RequeueCause,
  config: RequeueWaitConfig,
): Report {
  return {
    jobId: lease.jobId,
    epoch: lease.epoch,
    logs: [],
    requeue: { reason: reason.slice(0, 1_024), retryAfterSeconds: requeueAfterSeconds(cause, config) },
  };
}
