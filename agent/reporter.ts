/**
 * Sends reports to the gateway and acts on the outcomes: a `stale` or `not_found` outcome means
 * another agent holds the job now (or it is gone), so this agent forgets it at once and never
 * reports on it again (fencing, seen from the agent's side).
 */
import type { AgentContext } from "./context.ts";
import type { Report } from "./gateway-api.ts";
import { cancelAsked } from "./job-life.ts";

export type Reporter = {
  /** Sends now; returns false when the gateway could not be reached (the caller retries later). */
  send(reports: Report[]): Promise<boolean>;
};

export function createReporter(ctx: AgentContext): Reporter {
  return {
    async send(reports) {
      if (reports.length === 0) {
        return true;
      }
      for (let i = 0; i < reports.length; i += 200) {
        const batch = reports.slice(i, i + 200);
        const result = await ctx.api.report(ctx.agentId, batch);
        if (!result.ok) {
          ctx.log("warn", "report failed", { status: result.status, message: result.message, jobs: batch.length });
          return false;
        }
        for (const outcome of result.value) {
          if (outcome.status === "stale" || outcome.status === "not_found") {
            ctx.log("warn", "lease lost: dropping job", {
              jobId: outcome.jobId,
              outcome: outcome.status,
              detail: outcome.detail,
            });
            ctx.state.remove(outcome.jobId);
          } else if (outcome.status === "illegal") {
            ctx.log("warn", "gateway refused a transition", { jobId: outcome.jobId, detail: outcome.detail });
          }
          const job = ctx.state.get(outcome.jobId);
          if (job && outcome.cancelRequested && !job.cancelRequested) {
            ctx.state.put(cancelAsked(job));
          }
        }
      }
      return true;
    },
  };
}
