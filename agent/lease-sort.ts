/**
 * The exactly-once sorting of leases (DESIGN: the tag, the journal, adopt/unsure/fresh) as pure
 * functions: what to do with a lease given what the journal says, and, for an unsure one, given
 * what the tag lookup in squeue/sacct found.
 */
import type { Lease } from "./gateway-api.ts";
import type { TrackedJob } from "./state.ts";

export type LeaseVerdict =
  /** The gateway already has this attempt's Slurm id: track it; the gateway needs no report. */
  | { kind: "known"; slurmJobId: string; jobDir: string | null }
  /** The journal has this attempt's Slurm id: track it and report it (again). */
  | { kind: "adopt"; slurmJobId: string; jobDir: string }
  /** sbatch may have run for it (a re-lease, or "submitting" left by a crash): look the tag up first. */
  | { kind: "unsure" }
  /** Never submitted anywhere: submit. */
  | { kind: "fresh" };

/** `journal` is the local record of this job (of any attempt); jobDir null means the lease's default. */
export function sortLease(lease: Lease, journal: TrackedJob | undefined): LeaseVerdict {
  const local = journal?.attempt === lease.attempt ? journal : undefined;
  if (lease.slurmJobId) {
    return { kind: "known", slurmJobId: lease.slurmJobId, jobDir: local?.jobDir ?? null };
  }
  if (local?.slurmJobId) {
    return { kind: "adopt", slurmJobId: local.slurmJobId, jobDir: local.jobDir };
  }
  // Epoch > 1: this attempt was leased before, maybe to an agent that ran sbatch and died.
  if (lease.epoch > 1 || local?.phase === "submitting") {
    return { kind: "unsure" };
  }
  return { kind: "fresh" };
}

export type LookupVerdict =
  | { kind: "adopt"; slurmJobId: string }
  | { kind: "fresh" }
  /** squeue or sacct did not answer: absence proves nothing, keep the lease and ask next cycle. */
  | { kind: "undecided" };

/** An unsure lease after the tag lookup: found → adopt; not found by a complete lookup → fresh. */
export function afterLookup(found: string | undefined, complete: boolean): LookupVerdict {
  if (found) {
    return { kind: "adopt", slurmJobId: found };
  }
  return complete ? { kind: "fresh" } : { kind: "undecided" };
}
