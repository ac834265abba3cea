/**
 * Questions the gateway puts to a cluster's agent on demand, answered on the agent's outbound
 * channel: the agent accepts no connection, so an ask waits in the database until the agent's next
 * lease call (held open, so it is woken at once) carries it out, and the answer comes back by POST.
 *
 * `estimate` asks Slurm where and when a job would start (`sbatch --test-only`), as the job's user.
 * `list_dir` and `read_file` browse a job's directory (schemas/browse.ts), confined to it by the agent.
 */
import { z } from "@hono/zod-openapi";
import { BrowseBytes, BrowsePath, BrowseRefusal, DirListing, FileSlice } from "./browse.ts";
import { JobId, JobSpec } from "./job.ts";

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

/** Which job directory: the agent derives it from these (never from a path the gateway sends). */
const JobDirFields = {
  owner: z.string().openapi({ description: "The job's owner: the directory is theirs, read as their account." }),
  jobId: JobId,
  attempt: z.number().int().min(1).max(1_000).openapi({ description: "Whose attempt's directory." }),
  path: BrowsePath,
};

export const ListDirAsk = z.object({ id: AskId, kind: z.literal("list_dir"), ...JobDirFields }).openapi("ListDirAsk");

export const ReadFileAsk = z
  .object({
    id: AskId,
    kind: z.literal("read_file"),
    ...JobDirFields,
    from: z.enum(["head", "tail"]),
    bytes: BrowseBytes,
  })
  .openapi("ReadFileAsk");

export const AgentAsk = z.discriminatedUnion("kind", [EstimateAsk, ListDirAsk, ReadFileAsk]).openapi("AgentAsk");
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
export const ANSWER_VALUE = {
  estimate: Estimate,
  list_dir: z.union([DirListing, BrowseRefusal]),
  read_file: z.union([FileSlice, BrowseRefusal]),
} as const satisfies Record<AskKind, z.ZodType>;

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
