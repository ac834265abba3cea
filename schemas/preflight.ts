/**
 * A job's preflight: where it would go and why, for every cluster the caller may use, without
 * storing anything (`POST /v1/jobs/preflight`, `slurmgate submit --dry-run`).
 */
import { z } from "@hono/zod-openapi";
import { GpuAvailability } from "./agent.ts";
import { JobSpec } from "./job.ts";

export const PreflightEstimate = z
  .object({
    startAt: z
      .string()
      .nullable()
      .openapi({ description: "When Slurm expects it to start (UTC); null without an estimate." }),
    partition: z.string().nullable(),
    nodes: z.string().nullable().openapi({ description: "The nodes Slurm would pick, as it prints them." }),
    reason: z.string().openapi({ description: "The estimate in words, or why there is none." }),
  })
  .openapi("PreflightEstimate");
export type PreflightEstimate = z.infer<typeof PreflightEstimate>;

export const PreflightCandidate = z
  .object({
    cluster: z.string(),
    partition: z.string().nullable().openapi({ description: "The partition it would use there, when it fits." }),
    fits: z.boolean().openapi({ description: "The cluster's partitions, limits, grants and policy admit the job." }),
    alive: z.boolean().openapi({ description: "An agent that may run your jobs there was seen recently." }),
    chosen: z.boolean().openapi({ description: "Where a submission now would be routed." }),
    reason: z.string().openapi({ description: "Why it was chosen, why not, or why it does not fit, in words." }),
    idleNodes: z.number().int().nullable(),
    gpus: z.array(GpuAvailability).openapi({ description: "GPUs free and total in that partition, per type." }),
    estimate: PreflightEstimate.nullable().openapi({
      description:
        "Slurm's own estimate of the start (`sbatch --test-only`, run by the cluster's agent as you), for a cluster that fits and has an agent alive; null when not asked.",
    }),
  })
  .openapi("PreflightCandidate");
export type PreflightCandidate = z.infer<typeof PreflightCandidate>;

export const Preflight = z
  .object({
    cluster: z.string().nullable().openapi({ description: "Where it would be routed; null when nowhere now." }),
    partition: z.string().nullable(),
    spec: z.union([JobSpec, z.null()]).openapi({ description: "The spec as it would be stored (profile applied)." }),
    refusal: z.string().nullable().openapi({ description: "What a submission now would be answered, when refused." }),
    candidates: z.array(PreflightCandidate).openapi({
      description:
        "Every cluster you may use, best first: the chosen one, others that fit (earliest estimated start first), then those that do not.",
    }),
  })
  .openapi("Preflight");
export type Preflight = z.infer<typeof Preflight>;
