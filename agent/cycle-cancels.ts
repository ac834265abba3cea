/**
 * A cycle's cancel orders: a job with a Slurm id is scancelled (one call for all); one never
 * submitted is reported cancelled and forgotten; one whose sbatch outcome is unknown waits for the
 * submit path to resolve it by tag, and is cancelled the cycle after.
 */
import { isTerminal } from "../schemas/job.ts";
import { type CancelTarget, cancelJobs } from "./cancel.ts";
import type { AgentContext } from "./context.ts";
import type { Report } from "./gateway-api.ts";
import { cancelAsked } from "./job-life.ts";

export async function handleCancels(
  ctx: AgentContext,
  orders: { jobId: string; epoch: number; slurmJobId: string | null }[],
  leasedNow: Set<string>,
) {
  const reports: Report[] = [];
  const toKill: CancelTarget[] = [];
  for (const order of orders) {
    const job = ctx.state.get(order.jobId);
    const slurmJobId = job?.slurmJobId ?? order.slurmJobId;
    if (slurmJobId) {
      toKill.push({ slurmJobId, owner: job?.owner });
      if (job && !job.cancelRequested) {
        ctx.state.put(cancelAsked(job));
      }
      continue;
    }
    if (job?.phase === "submitting") {
      // sbatch's outcome is unknown: the submit path resolves it by tag, then the next cycle cancels.
      continue;
    }
    leasedNow.delete(order.jobId);
    reports.push({
      jobId: order.jobId,
      epoch: order.epoch,
      state: "cancelled",
      reason: "cancelled before it was submitted to Slurm",
      logs: [],
    });
    ctx.state.remove(order.jobId);
  }
  if (toKill.length) {
    const result = await cancelJobs(ctx, toKill);
    if (!result.ok) {
      ctx.log("warn", "scancel reported errors", { message: result.message });
    }
  }
  return { reports, killed: toKill.length };
}

/** Jobs the gateway says this agent no longer holds (another agent has them, or they ended): forgotten. */
export function forgetLost(ctx: AgentContext, lost: string[]): void {
  for (const id of lost) {
    const job = ctx.state.get(id);
    if (job && !(job.reported && isTerminal(job.reported))) {
      ctx.log("warn", "lease lost: another agent holds this job now, or it ended", { jobId: id });
      ctx.state.remove(id);
    }
  }
}
