/**
 * scancel for the jobs the agent holds, whoever they run as: one call, or for a site agent run
 * with sudo one call per account (a user can cancel only their own jobs; the service account none).
 */
import type { AgentContext } from "./context.ts";

export type CancelTarget = { slurmJobId: string; owner: string | undefined };

export async function cancelJobs(
  ctx: AgentContext,
  targets: CancelTarget[],
): Promise<{ ok: boolean; message: string }> {
  if (!ctx.sudo) {
    const result = await ctx.slurm.scancel(targets.map((t) => t.slurmJobId));
    return result.ok ? { ok: true, message: "" } : { ok: false, message: result.message };
  }
  const byOwner = new Map<string, string[]>();
  const problems: string[] = [];
  for (const target of targets) {
    if (target.owner === undefined) {
      // Known only from the gateway's order, not from this agent's state: whose it is is unknown here.
      problems.push(`${target.slurmJobId}: not in this agent's state, so not cancelled as its owner`);
      continue;
    }
    byOwner.set(target.owner, [...(byOwner.get(target.owner) ?? []), target.slurmJobId]);
  }
  for (const [owner, ids] of byOwner) {
    const as = ctx.sudo.as(owner);
    const result = as
      ? await as.slurm.scancel(ids)
      : { ok: false as const, message: `${owner} is not in the user mapping` };
    if (!result.ok) {
      problems.push(result.message);
    }
  }
  return { ok: problems.length === 0, message: problems.join("; ") };
}
