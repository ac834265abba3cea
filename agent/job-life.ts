/**
 * A tracked job's life on the agent, as pure named transitions: every change to a TrackedJob's
 * phase, reported state, lease/epoch, cancel flag, missing-since and log offsets goes through one of
 * these, each returning a new record (the caller writes it to the journal). A transition that would
 * break exactly-once (a second Slurm id for one attempt, a terminal state changed, an older lease
 * replacing a newer one) throws {@link RefusedTransition} rather than record something untrue.
 *
 *   (none) ──beganSubmitting──▶ submitting ──submitted(id)──▶ submitted ──reported(state)…──▶ terminal
 *   (none) ──adopted(id)────────────────────────────────────▶ submitted   (found by its tag)
 */
import { type JobState, isTerminal } from "../schemas/job.ts";
import type { Lease } from "./gateway-api.ts";
import type { TrackedJob } from "./state.ts";

export class RefusedTransition extends Error {
  constructor(transition: string, job: TrackedJob, why: string) {
    super(`${transition} refused for ${job.jobId} (attempt ${job.attempt}): ${why}`);
  }
}

/** A lease about to be handed to sbatch: on disk as "submitting" BEFORE sbatch runs. */
export function beganSubmitting(lease: Lease, jobDir: string, now: number): TrackedJob {
  return {
    jobId: lease.jobId,
    epoch: lease.epoch,
    attempt: lease.attempt,
    owner: lease.owner,
    jobDir,
    phase: "submitting",
    slurmJobId: null,
    submittedAt: now,
    reported: null,
    missingSince: null,
    logOffsets: { stdout: 0, stderr: 0 },
    cancelRequested: false,
    // Adopted leases are tracked before any re-validation: a malformed spec must not throw here.
    isArray: Boolean(lease.spec?.array),
    arrayIndexes: lease.spec?.array?.indexes ?? null,
    timeLimit: lease.spec?.resources?.time ?? null,
    ...(lease.spec?.outputs?.length ? { outputs: lease.spec.outputs } : {}),
    lease,
  };
}

/** sbatch (or the tag lookup) gave this attempt its Slurm job id. One attempt never gets two. */
export function submitted(job: TrackedJob, slurmJobId: string): TrackedJob {
  if (!slurmJobId) {
    throw new RefusedTransition("submitted", job, "no Slurm job id");
  }
  if (job.slurmJobId !== null && job.slurmJobId !== slurmJobId) {
    throw new RefusedTransition("submitted", job, `already Slurm job ${job.slurmJobId}, not ${slurmJobId}`);
  }
  return { ...job, phase: "submitted", slurmJobId };
}

/**
 * A lease whose Slurm job exists already (found by its tag, known to the gateway, or recorded
 * here): tracked under this lease. A record of an earlier attempt has that attempt's directory and
 * log offsets, so only a record of this very attempt is kept; an older epoch never replaces a newer one.
 */
export function adopted(
  previous: TrackedJob | undefined,
  lease: Lease,
  jobDir: string,
  now: number,
  slurmJobId: string,
): TrackedJob {
  const same = previous?.attempt === lease.attempt ? previous : undefined;
  if (same && lease.epoch < same.epoch) {
    throw new RefusedTransition("adopted", same, `epoch ${lease.epoch} is older than ${same.epoch}`);
  }
  const base = same ?? beganSubmitting(lease, jobDir, now);
  return { ...base, epoch: lease.epoch, phase: "submitted", slurmJobId, reported: null, lease };
}

/** The gateway took this state from us (or already had it): remember it, to report only changes. */
export function reported(job: TrackedJob, state: JobState): TrackedJob {
  if (job.reported && isTerminal(job.reported) && job.reported !== state) {
    throw new RefusedTransition("reported", job, `${job.reported} is final, not ${state}`);
  }
  if (state === "queued" || state === "leased") {
    throw new RefusedTransition("reported", job, `an agent never reports ${state}`);
  }
  return { ...job, reported: state };
}

/** The gateway accepted the submission report: the lease need not be kept for a restart any more. */
export function submissionReported(job: TrackedJob): TrackedJob {
  return { ...job, reported: "submitted", lease: undefined };
}

/** A cancel order (or the gateway's answer to a report) asked for this job to be cancelled. */
export function cancelAsked(job: TrackedJob): TrackedJob {
  return job.cancelRequested ? job : { ...job, cancelRequested: true };
}

/** Seen in squeue, sacct or its exit file, in `state`: no longer missing. */
export function observed(job: TrackedJob, state: JobState, reason: string | null): TrackedJob {
  return { ...reported(job, state), missingSince: null, reportedReason: reason };
}

/** Missing from squeue, sacct and its exit file: since when, kept from the first time. */
export function vanished(job: TrackedJob, now: number): TrackedJob {
  if (job.slurmJobId === null) {
    throw new RefusedTransition("vanished", job, "never had a Slurm job to miss");
  }
  return job.missingSince === null ? { ...job, missingSince: now } : job;
}

/** Missing past the grace period: reported lost. */
export function lost(job: TrackedJob, now: number): TrackedJob {
  return reported(vanished(job, now), "lost");
}

/** Bytes of its logs shipped so far. */
export function logsShipped(
  job: TrackedJob,
  offsets: TrackedJob["logOffsets"],
  taskOffsets: TrackedJob["taskLogOffsets"],
): TrackedJob {
  return { ...job, logOffsets: offsets, taskLogOffsets: taskOffsets };
}

/** The lease to finish a "submitting" record with after a restart, under the record's (newest) epoch. */
export function leaseOf(job: TrackedJob): Lease | undefined {
  return job.lease ? { ...job.lease, epoch: job.epoch } : undefined;
}
