/**
 * Sweeps: many jobs in one request. Every element is a job of its own (its own id, state, exit
 * code, logs, result, retries, cancel); the gateway groups elements that can share one Slurm array
 * and the agent submits each group as one sbatch (`Lease.batch`).
 */
import { z } from "@hono/zod-openapi";
import { JobId, JobSpec, JobState } from "./job.ts";
import { ENV_NAME, JOB_NAME } from "./patterns.ts";

/** Most elements in one sweep (after a grid is expanded). */
export const MAX_SWEEP_ELEMENTS = 10_000;
/** Slurm's default MaxArraySize: what the gateway assumes until the cluster's agent reports its own. */
export const DEFAULT_MAX_ARRAY_SIZE = 1_001;

/**
 * The spec fields in which the elements of one Slurm array may differ; everything else must be
 * equal (the gateway's grouping key), and the agent reads these per array index from a data file.
 */
export const PER_ELEMENT_FIELDS = ["name", "env", "command", "labels"] as const;

/**
 * One point of a sweep: fields that replace the base's. `env` and `labels` are merged key by key
 * over the base's; `command` replaces the base's argv; `name` defaults to `<base name>-<index>`.
 */
export const SweepPoint = z
  .strictObject({
    name: z.string().regex(JOB_NAME, "letters, digits, '.', '_', '-' (at most 64)").optional(),
    env: z.record(z.string().regex(ENV_NAME, "env names are [A-Za-z_][A-Za-z0-9_]*"), z.string()).optional(),
    command: z.array(z.string()).min(1).optional(),
    labels: z.record(z.string(), z.string()).optional(),
  })
  .openapi("SweepPoint");
export type SweepPoint = z.infer<typeof SweepPoint>;

/** A grid value: given to the job as text (env value, label value, `{name}` in argv). */
export const GridValue = z.union([z.string().max(1_024), z.number(), z.boolean()]);

export const SweepRequest = z
  .strictObject({
    name: z.string().regex(JOB_NAME).optional().openapi({ description: "Shown in lists; default the base's name." }),
    specs: z.array(JobSpec).min(1).max(MAX_SWEEP_ELEMENTS).optional().openapi({
      description: "The elements as whole specs. Give either `specs`, or `base` with `points` and/or `grid`.",
    }),
    base: JobSpec.optional(),
    points: z.array(SweepPoint).min(1).max(MAX_SWEEP_ELEMENTS).optional(),
    grid: z
      .record(
        z.string().regex(ENV_NAME, "grid names are [A-Za-z_][A-Za-z0-9_]*"),
        z.array(GridValue).min(1).max(MAX_SWEEP_ELEMENTS),
      )
      .optional()
      .openapi({
        description:
          "Every combination of these values is one element (crossed with `points` when both are given, points outer). Each name is set as an env variable and a label of the element, and `{name}` in the base's command argv is replaced by the value.",
        example: { LR: [0.1, 0.01], SEED: [1, 2, 3] },
      }),
    maxParallel: z.number().int().min(1).max(100_000).optional().openapi({
      description:
        "Most elements running at once, enforced by Slurm (the array's %N throttle); elements of a capped sweep are in Slurm one array at a time.",
    }),
  })
  .openapi("SweepRequest");
export type SweepRequest = z.infer<typeof SweepRequest>;
export type SweepRequestInput = z.input<typeof SweepRequest>;

export const SweepId = z
  .string()
  .regex(/^swp_[0-9a-z]{20,40}$/)
  .openapi({ example: "swp_01jd7x2k9m4q8r6t5v3w1y0z" });

/**
 * A sweep's state, folded from its elements': `active` while any is live; then `completed` only
 * when every element completed, `failed` when any ended in another way than completed or
 * cancelled, else `cancelled`.
 */
export const SweepState = z.enum(["active", "completed", "failed", "cancelled"]).openapi("SweepState");
export type SweepState = z.infer<typeof SweepState>;

export const SweepElement = z
  .object({
    index: z.number().int().openapi({ description: "Position in the request (after grid expansion)." }),
    jobId: JobId,
    name: z.string(),
    state: JobState,
    reason: z.string().nullable(),
    code: z.string().nullable(),
    attempt: z.number().int(),
    slurmJobId: z.string().nullable().openapi({ example: "4242_17" }),
    exitCode: z.number().int().nullable(),
    labels: z.record(z.string(), z.string()),
  })
  .openapi("SweepElement");
export type SweepElement = z.infer<typeof SweepElement>;

export const Sweep = z
  .object({
    id: SweepId,
    owner: z.string(),
    name: z.string(),
    state: SweepState,
    total: z.number().int(),
    counts: z
      .record(z.string(), z.number().int())
      .openapi({ description: "Elements per job state.", example: { completed: 20, running: 3, failed: 1 } }),
    done: z.number().int().openapi({ description: "Elements in a terminal state." }),
    maxParallel: z.number().int().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Sweep");
export type Sweep = z.infer<typeof Sweep>;

export const SweepPage = z
  .object({ items: z.array(Sweep), nextCursor: z.string().nullable() })
  .openapi("SweepPage", { description: "A page of your sweeps, newest first." });
export type SweepPage = z.infer<typeof SweepPage>;

export const SweepCreated = Sweep.extend({
  jobIds: z.array(JobId).openapi({ description: "Every element's job id, in element order." }),
}).openapi("SweepCreated");
export type SweepCreated = z.infer<typeof SweepCreated>;

export const SweepDetail = Sweep.extend({
  elements: z.array(SweepElement).openapi({ description: "A page of elements in element order." }),
  nextCursor: z.string().nullable(),
}).openapi("SweepDetail");
export type SweepDetail = z.infer<typeof SweepDetail>;

/** One line of `GET /v1/sweeps/{id}/results` (application/x-ndjson), in element order. */
export const SweepResultLine = z
  .object({
    index: z.number().int(),
    jobId: JobId,
    state: JobState,
    exitCode: z.number().int().nullable(),
    code: z.string().nullable().openapi({ description: "Why the element did not complete, as the job's stable code." }),
    reason: z.string().nullable().openapi({ description: "The job's reason: how it ended, in words." }),
    result: z.unknown().nullable(),
  })
  .openapi("SweepResultLine");
export type SweepResultLine = z.infer<typeof SweepResultLine>;
