/**
 * Questions the gateway puts to a cluster's agent on demand, answered on the agent's outbound
 * channel: the agent accepts no connection, so an ask waits in the database until the agent's next
 * lease call (held open, so it is woken at once) carries it out, and the answer comes back by POST.
 *
 * `estimate` asks Slurm where and when a job would start (`sbatch --test-only`), as the job's user.
 */
import { z } from "@hono/zod-openapi";
import { JobSpec } from "./job.ts";

export const AskId = z.string().regex(/^ask_[0-9a-z]{20,40}$/);

/** The longest a caller waits for an agent's answer, and the default; the gateway's config picks within. */
export const ASK_TIMEOUT_SECONDS = { default: 5, max: 25 } as const;
/** Asks handed to an agent per lease call. */
export const MAX_ASKS_PER_LEASE = 16;
/** An answer's `reason` (a refusal or Slurm's own words), after trimming. */
export const MAX_ANSWER_REASON = 500;

export const EstimateAsk = z
  .object({
    id: AskId,
    kind: z.literal("estimate"),
    owner: z.string().openapi({ description: "The user the job would run as." }),
    spec: JobSpec.openapi({ description: "The job as routing would store it for this cluster." }),
  })
  .openapi("EstimateAsk");

export const AgentAsk = z.discriminatedUnion("kind", [EstimateAsk]).openapi("AgentAsk");
export type AgentAsk = z.infer<typeof AgentAsk>;
export type AskKind = AgentAsk["kind"];

/** What `sbatch --test-only` said: when, where, on how many processors. */
export const Estimate = z
  .strictObject({
    startAt: z.string().datetime().openapi({ description: "Slurm's estimate of the start time (UTC)." }),
    partition: z.string().max(128),
    nodes: z.string().max(1_000).openapi({ description: "The nodes Slurm would pick, as it prints them." }),
    processors: z.number().int().min(0),
  })
  .openapi("Estimate");
export type Estimate = z.infer<typeof Estimate>;

/** The answer's value, per kind: the one place the gateway checks what an agent sent back. */
export const ANSWER_VALUE = { estimate: Estimate } as const satisfies Record<AskKind, z.ZodType>;

export const AskAnswer = z
  .discriminatedUnion("ok", [
    z.strictObject({ ok: z.literal(true), value: z.record(z.string(), z.unknown()) }),
    z.strictObject({
      ok: z.literal(false),
      reason: z.string().min(1).max(MAX_ANSWER_REASON).openapi({ description: "Why there is no answer." }),
    }),
  ])
  .openapi("AskAnswer");
export type AskAnswer = z.infer<typeof AskAnswer>;

export const AnswerRequest = z
  .strictObject({
    agentId: z.string().min(1).max(128).openapi({ description: "The agentId of the lease call that took the ask." }),
    answer: AskAnswer,
  })
  .openapi("AnswerRequest");
export type AnswerRequest = z.infer<typeof AnswerRequest>;
