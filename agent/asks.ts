/**
 * Answers the questions a lease call brought (schemas/asks.ts), beside the cycle rather than in it:
 * a preflight waiting on an estimate should not wait for a cycle's submissions, and a slow sbatch
 * must not hold the cycle. Each answer is sent once; one the gateway no longer wants (its asker
 * stopped waiting) is only logged.
 */
import { posix } from "node:path";
import { MAX_ANSWER_REASON } from "../schemas/asks.ts";
import { JobSpec } from "../schemas/job.ts";
import { answerBrowse } from "./browse.ts";
import type { AgentContext } from "./context.ts";
import type { AgentAsk, AskAnswer } from "./gateway-api.ts";
import { sbatchIdentityArgs } from "./identity/hand-over.ts";
import { buildDirectives } from "./render/directives.ts";
import { actingFor, checkAccount, checkPartition } from "./submit.ts";

/** The directives of a job that will never exist: the tag and paths only have to be well-formed. */
const ESTIMATE_JOB_ID = `job_${"0".repeat(26)}`;

function refusal(reason: string): AskAnswer {
  return { ok: false, reason: reason.slice(0, MAX_ANSWER_REASON) || "no reason given" };
}

/** Slurm's estimate for the job as its user would submit it, after the same checks a submission makes. */
async function estimate(ctx: AgentContext, ask: Extract<AgentAsk, { kind: "estimate" }>): Promise<AskAnswer> {
  const spec = JobSpec.parse(ask.spec);
  await checkPartition(ctx, spec);
  const runAs = ctx.identity ? await ctx.identity.check(ask.owner) : null;
  await checkAccount(ctx, spec, runAs);
  const acting = actingFor(ctx, ask.owner, runAs);
  if (!acting.slurm.testOnly) {
    return refusal("this agent's Slurm backend cannot estimate start times");
  }
  const jobDir = posix.join(ctx.roots.real[0] ?? "/tmp", ask.owner, ESTIMATE_JOB_ID);
  const directives = buildDirectives({
    spec,
    jobId: ESTIMATE_JOB_ID,
    attempt: 1,
    jobDir,
    workdir: jobDir,
    dependsOnSlurmIds: [],
    allowedSbatchArgs: ctx.config.SLURMGATE_ALLOWED_SBATCH_ARGS,
  });
  const options = directives.map((line) => line.replace(/^#SBATCH /, ""));
  const result = await acting.slurm.testOnly([...options, ...sbatchIdentityArgs(acting.sudo ? null : runAs)]);
  return result.ok ? { ok: true, value: result.value } : refusal(result.message);
}

async function answerOne(ctx: AgentContext, ask: AgentAsk): Promise<void> {
  const answer = await (ask.kind === "estimate" ? estimate(ctx, ask) : answerBrowse(ctx, ask)).catch((err: Error) =>
    refusal(err.message),
  );
  const sent = await ctx.api.answer(ask.id, ctx.agentId, answer);
  if (!sent.ok) {
    ctx.log("warn", "an answer was not taken", { ask: ask.id, kind: ask.kind, reason: sent.message });
  }
}

/** Starts answering each ask; returns at once. */
export function answerAsks(ctx: AgentContext, asks: readonly AgentAsk[]): void {
  for (const ask of asks) {
    void answerOne(ctx, ask).catch((err: Error) =>
      ctx.log("warn", "answering failed", { ask: ask.id, error: err.message }),
    );
  }
}
