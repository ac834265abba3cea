/**
 * A cycle's leases, exactly once: each is sorted by what the journal knows (agent/lease-sort.ts);
 * unsure ones are looked up by tag (one squeue and one sacct for all); adopted ones are reported;
 * fresh ones are submitted through SLURMGATE_SUBMIT_CONCURRENCY lanes, their reports going out
 * through the outbox while the next sbatch runs.
 */
import { posix } from "node:path";
import type { AgentContext } from "./context.ts";
import type { CycleStats } from "./cycle.ts";
import { createOutbox } from "./cycle-outbox.ts";
import { flushEndedAttempts } from "./cycle-track.ts";
import { Lane, inLane } from "./executor/lane.ts";
import type { Lease, Report } from "./gateway-api.ts";
import { leaseOf, reported, submissionReported } from "./job-life.ts";
import { afterLookup, sortLease } from "./lease-sort.ts";
import type { Pacer } from "./pacer.ts";
import { jobDirName } from "./paths.ts";
import type { Reporter } from "./reporter.ts";
import { requeueReport } from "./requeue-wait.ts";
import { type SubmitResult, adoptLease, lookupByTag, prepareLease, sbatchReady } from "./submit.ts";
import { type Submission, planSubmissions, submitBatch } from "./submit-batch.ts";

function jobDirOf(ctx: AgentContext, lease: Lease) {
  return posix.join(ctx.roots.real[0]!, lease.owner, jobDirName(lease.jobId, lease.attempt));
}

export async function handleLeases(
  ctx: AgentContext,
  reporter: Reporter,
  pacer: Pacer,
  leases: Lease[],
  stats: CycleStats,
) {
  await flushEndedAttempts(ctx, reporter, leases);
  const { adopt, fresh } = await sortLeases(ctx, leases, stats);
  if (adopt.length && (await reporter.send(adopt))) {
    for (const r of adopt) {
      const job = ctx.state.get(r.jobId);
      if (job) {
        ctx.state.put(submissionReported(job));
      }
    }
  }
  await submitFresh(ctx, reporter, pacer, fresh, stats);
}

/**
 * Which leases to adopt (their reports) and which to submit; an unsure lease whose lookup was
 * incomplete is in neither: it stays leased, to be looked up again next cycle.
 */
async function sortLeases(ctx: AgentContext, leases: Lease[], stats: CycleStats) {
  const adopt: Report[] = [];
  const fresh: Lease[] = [];
  const unsure: Lease[] = [];
  for (const lease of leases) {
    const verdict = sortLease(lease, ctx.state.get(lease.jobId));
    if (verdict.kind === "known") {
      adoptLease(ctx, lease, verdict.slurmJobId, verdict.jobDir ?? jobDirOf(ctx, lease));
      ctx.state.put(reported(ctx.state.get(lease.jobId)!, "submitted"));
    } else if (verdict.kind === "adopt") {
      adopt.push(adoptLease(ctx, lease, verdict.slurmJobId, verdict.jobDir));
    } else if (verdict.kind === "unsure") {
      unsure.push(lease);
    } else {
      fresh.push(lease);
    }
  }
  if (unsure.length === 0) {
    return { adopt, fresh };
  }
  const lookup = await lookupByTag(
    ctx,
    unsure.map((l) => ({
      jobId: l.jobId,
      attempt: l.attempt,
      since: ctx.state.get(l.jobId)?.submittedAt ?? ctx.now() - 86_400_000,
      batch: l.batch,
    })),
  );
  for (const lease of unsure) {
    const verdict = afterLookup(lookup.found.get(lease.jobId), lookup.complete);
    if (verdict.kind === "adopt") {
      const held = ctx.state.get(lease.jobId);
      const jobDir = held?.attempt === lease.attempt ? held.jobDir : jobDirOf(ctx, lease);
      adopt.push(adoptLease(ctx, lease, verdict.slurmJobId, jobDir));
    } else if (verdict.kind === "fresh") {
      fresh.push(lease);
    } else {
      ctx.log("warn", "cannot tell whether an earlier attempt was queued; will retry", { jobId: lease.jobId });
      stats.errors.push(`lookup incomplete for ${lease.jobId}`);
    }
  }
  return { adopt, fresh };
}

async function submitFresh(ctx: AgentContext, reporter: Reporter, pacer: Pacer, fresh: Lease[], stats: CycleStats) {
  const outbox = createOutbox(ctx, reporter);
  // Sweep elements of one batch go as one array. Unsure ones that the lookup did not find go so
  // too: each element is in at most one array of its batch tag, so a later lookup still finds it.
  const queue = planSubmissions(ctx, fresh);
  const concurrency = Math.min(ctx.config.SLURMGATE_SUBMIT_CONCURRENCY, queue.length);
  let unreachable: string | undefined;
  let full: string | undefined;
  // The next leases' directories and files are made while sbatch runs for the ones before them
  // (as many ahead as there are sbatch slots); sbatch itself stays at SLURMGATE_SUBMIT_CONCURRENCY.
  // An array prepares its members itself, in submitBatch.
  const ahead: { submission: Submission; ready?: ReturnType<typeof prepareLease> }[] = [];
  const fill = () => {
    while (ahead.length < concurrency && queue.length && !unreachable && !full) {
      const submission = queue.shift()!;
      if (submission.kind === "single") {
        const ready = prepareLease(ctx, submission.lease);
        ready.catch(() => {}); // awaited in order below; never an unhandled rejection meanwhile
        ahead.push({ submission, ready });
      } else {
        ahead.push({ submission });
      }
    }
  };
  const settle = async (members: Lease[], results: Promise<SubmitResult[]>) => {
    for (const [i, result] of (await results).entries()) {
      if (result.kind === "retry") {
        stats.errors.push(`sbatch for ${members[i]?.jobId}: ${result.message}`);
        unreachable = result.message;
        continue;
      }
      if (result.kind === "submitted") {
        stats.submitted++;
        pacer.submittedNow(ctx.now());
      }
      full ??= result.kind === "requeue" ? result.full : undefined;
      outbox.push(result.report);
    }
  };
  // Each worker is a lane (agent/executor/lane.ts): one sbatch at a time, and the next one, its
  // "submitting" record written, queued behind it so that it starts the moment the one before ends.
  const worker = async () => {
    const lane = new Lane();
    let inFlight: { members: Lease[]; results: Promise<SubmitResult[]>; withdraw(): void } | undefined;
    const settleInFlight = async () => {
      const last = inFlight;
      inFlight = undefined;
      if (last) {
        await settle(last.members, last.results);
      }
    };
    for (fill(); ahead.length; fill()) {
      const { submission, ready: preparing } = ahead.shift()!;
      fill();
      const ready = await preparing;
      if (submission.kind === "single" && ready?.kind === "ready" && !unreachable && !full) {
        await pacer.beforeSubmit();
        if (!unreachable && !full) {
          const next = inLane(lane, async () => [await sbatchReady(ctx, ready)]);
          await next.handedOver;
          const queued = { members: [submission.lease], results: next.result, withdraw: next.cancel };
          await settleInFlight();
          inFlight = queued;
          if (unreachable) {
            queued.withdraw(); // not started yet: never will; started: its outcome is read as usual
          }
          continue;
        }
      }
      await settleInFlight();
      if (unreachable || full) {
        queue.unshift(submission); // prepared, never submitted: given back below
        continue;
      }
      if (submission.kind === "batch") {
        await settle(
          submission.leases,
          submitBatch(ctx, submission.leases, () => pacer.beforeSubmit()),
        );
      } else {
        await settle([submission.lease], Promise.resolve([ready as SubmitResult]));
      }
    }
    await settleInFlight();
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
    if ((unreachable || full) && queue.length) {
      // The controller did not answer, or takes no job now: give the rest back rather than ask for each.
      const reason = full ?? `Slurm did not answer sbatch (${unreachable}); will retry`;
      for (const lease of queue.splice(0).flatMap(membersOf)) {
        if (full) {
          ctx.state.remove(lease.jobId); // not submitted: its tag was looked up, or it never ran
        }
        outbox.push(requeueReport(lease, reason, full ? "no-room" : "not-now", ctx.config));
      }
    }
  } finally {
    await outbox.drain();
  }
}

const membersOf = (submission: Submission): Lease[] =>
  submission.kind === "batch" ? submission.leases : [submission.lease];

/** Re-runs submissions whose sbatch outcome was unknown in an earlier cycle (or before a crash). */
export function unfinishedSubmissions(ctx: AgentContext, leasedNow: Set<string>): Lease[] {
  return ctx.state
    .all()
    .filter((j) => j.phase === "submitting" && j.lease && !leasedNow.has(j.jobId))
    .map((j) => leaseOf(j)!);
}
