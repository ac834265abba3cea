/**
 * A cycle's tracking: every submitted job in one squeue (and sacct for those squeue no longer
 * shows), the changes reported with their logs and, at the end, results; and the last logs of an
 * attempt that a retry's lease replaces.
 */
import { isTerminal } from "../schemas/job.ts";
import { cancelJobs } from "./cancel.ts";
import type { AgentContext } from "./context.ts";
import type { Lease, Report } from "./gateway-api.ts";
import { logsShipped } from "./job-life.ts";
import { collectLogs, readResult } from "./logs.ts";
import { forgetOutputs, outputsProgress, outputsSettled, uploadsRunning } from "./output-worker.ts";
import { outputsNote } from "./outputs.ts";
import type { Pacer } from "./pacer.ts";
import type { Reporter } from "./reporter.ts";
import type { TrackedJob } from "./state.ts";
import { neverRuns, observe, transitions } from "./track.ts";
import type { CycleStats } from "./cycle.ts";

/**
 * A lease for a later attempt replaces the local record of the earlier one: first ship what is left
 * of the earlier attempt's logs (the gateway keeps an ended attempt's bytes), so a retry loses nothing.
 */
export async function flushEndedAttempts(ctx: AgentContext, reporter: Reporter, leases: Lease[]): Promise<void> {
  for (const lease of leases) {
    let job = ctx.state.get(lease.jobId);
    for (let round = 0; job && job.attempt < lease.attempt && job.slurmJobId && round < 64; round++) {
      const shipment = await collectLogs(ctx, job, ctx.config.SLURMGATE_LOG_BYTES_PER_CYCLE);
      if (shipment.chunks.length === 0) {
        break;
      }
      if (!(await reporter.send([{ jobId: job.jobId, epoch: job.epoch, logs: shipment.chunks }]))) {
        break;
      }
      job = logsShipped(job, shipment.offsets, shipment.taskOffsets);
      if (ctx.state.get(lease.jobId)) {
        ctx.state.put(job);
      }
      if (shipment.drained) {
        break;
      }
    }
  }
}

export async function track(
  ctx: AgentContext,
  reporter: Reporter,
  pacer: Pacer,
  stats: CycleStats,
  options: { waitForOutputs?: boolean } = {},
) {
  forgetOutputs(ctx, new Set(ctx.state.all().map((j) => j.jobId)));
  const jobs = ctx.state.all().filter((j) => j.phase === "submitted" && j.slurmJobId);
  stats.tracked = jobs.length;
  if (jobs.length === 0) {
    pacer.tracked(ctx.now(), false);
    return;
  }
  const live = jobs.filter((j) => !j.reported || !isTerminal(j.reported));
  const listing = ctx.now();
  const seen = await observe(ctx, live);
  pacer.listed(ctx.now() - listing);
  const doomed = neverRuns(seen);
  if (doomed.size > 0) {
    const targets = live.filter((j) => doomed.has(j.jobId)).map((j) => ({ slurmJobId: j.slurmJobId!, owner: j.owner }));
    await cancelJobs(ctx, targets);
    for (const [jobId, obs] of doomed) {
      seen.set(jobId, obs);
    }
  }
  const { reports, updates } = transitions(ctx, live, seen);
  const byJob = new Map(reports.map((r) => [r.jobId, r]));
  const next = new Map<string, TrackedJob>(jobs.map((j) => [j.jobId, j]));
  for (const u of updates) {
    next.set(u.jobId, u);
  }
  let budget = ctx.config.SLURMGATE_LOG_BYTES_PER_CYCLE;
  const drainedJobs = new Set<string>();
  for (const job of next.values()) {
    const state = byJob.get(job.jobId)?.state ?? job.reported;
    if (state !== "running" && !(state && isTerminal(state))) {
      continue;
    }
    const shipment = await collectLogs(ctx, job, budget);
    budget -= shipment.chunks.reduce((n, c) => n + Math.floor((c.data.length * 3) / 4), 0);
    let report = byJob.get(job.jobId);
    if (shipment.chunks.length) {
      report ??= { jobId: job.jobId, epoch: job.epoch, logs: [] };
      report.logs = shipment.chunks;
      byJob.set(job.jobId, report);
    }
    next.set(job.jobId, logsShipped(job, shipment.offsets, shipment.taskOffsets));
    if (state && isTerminal(state) && shipment.drained) {
      drainedJobs.add(job.jobId);
      const terminalReport = byJob.get(job.jobId);
      if (terminalReport?.state && isTerminal(terminalReport.state)) {
        terminalReport.result = await readResult(ctx, job);
      }
    }
  }
  await outputsBeforeTerminal(ctx, jobs, byJob, next, drainedJobs, stats, options.waitForOutputs ?? false);
  const batch = [...byJob.values()];
  if (!(await reporter.send(batch))) {
    stats.errors.push("reports not delivered; will resend");
    pacer.tracked(ctx.now(), true);
    return;
  }
  stats.reported += batch.length;
  // One state-file write for the whole cycle (a write per job rewrote the file N times: O(N²)).
  ctx.state.batch(() => {
    for (const job of next.values()) {
      if (!ctx.state.get(job.jobId)) {
        continue; // dropped by the reporter: the lease belongs to someone else now
      }
      if (drainedJobs.has(job.jobId)) {
        ctx.state.remove(job.jobId);
      } else {
        ctx.state.put(job);
      }
    }
  });
  // While outputs upload, tracking stays at its fastest: their job's end is reported soon after.
  pacer.tracked(ctx.now(), reports.length > 0 || uploadsRunning(ctx) > 0);
}

const MAX_REASON = 4_096;

/**
 * A job that declared outputs reports its terminal state only once they are uploaded or
 * definitively skipped (named in its reason), so nobody is told a job is done while its outputs are
 * still missing. The uploads run beside the cycle (output-worker.ts): while they do, or when the
 * gateway could not take them, the terminal state is held back (its logs still go) and the job is
 * looked at again next cycle, from its record before this transition. Other jobs' reports go now.
 * `wait` (a one-shot agent) waits for the uploads within this cycle instead.
 */
async function outputsBeforeTerminal(
  ctx: AgentContext,
  before: TrackedJob[],
  byJob: Map<string, Report>,
  next: Map<string, TrackedJob>,
  drainedJobs: Set<string>,
  stats: CycleStats,
  wait: boolean,
): Promise<void> {
  for (const report of [...byJob.values()]) {
    const job = next.get(report.jobId);
    if (!report.state || !isTerminal(report.state) || !job?.outputs?.length) {
      continue;
    }
    let progress = outputsProgress(ctx, job);
    while (wait && !progress.settled) {
      await outputsSettled(ctx);
      progress = outputsProgress(ctx, job);
    }
    const outcome = progress.settled;
    if (outcome?.done) {
      const note = outputsNote(outcome.skipped);
      if (note) {
        report.reason = (report.reason ? `${report.reason}; ${note}` : note).slice(0, MAX_REASON);
      }
      continue;
    }
    if (outcome) {
      stats.errors.push(
        `outputs of ${job.jobId} not uploaded yet (${outcome.message}); its end is reported once they are`,
      );
    }
    const old = before.find((j) => j.jobId === job.jobId);
    next.set(job.jobId, {
      ...job,
      reported: old?.reported ?? null,
      reportedReason: old?.reportedReason ?? null,
      missingSince: old?.missingSince ?? null,
    });
    drainedJobs.delete(job.jobId);
    if (report.logs.length) {
      byJob.set(job.jobId, { jobId: job.jobId, epoch: job.epoch, logs: report.logs });
    } else {
      byJob.delete(job.jobId);
    }
  }
}
