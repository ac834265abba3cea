/**
 * The agent's side of the wire: leases it takes, reports it sends, the inventory it publishes.
 */
import { z } from "@hono/zod-openapi";
import { AgentIdentity, IDENTITY_REJECT_CODES } from "./identity.ts";
import { JobId, JobSpec, JobState } from "./job.ts";

export const LeaseRequest = z
  .object({
    max: z.number().int().min(1).max(100).default(10).openapi({ description: "Most jobs to lease in this call." }),
    wait: z
      .number()
      .int()
      .min(0)
      .max(25)
      .default(0)
      .openapi({ description: "Seconds to hold the call open when nothing is queued." }),
    agentId: z
      .string()
      .min(1)
      .max(128)
      .openapi({ description: "Stable id of this agent process (host:pid or a configured name)." }),
    version: z.string().max(64).optional().openapi({ description: "Agent version, shown on GET /v1/clusters." }),
    cycleMs: z
      .number()
      .min(0)
      .max(86_400_000)
      .optional()
      .openapi({ description: "How long the agent's last cycle's work took." }),
    mode: z.enum(["local", "ssh"]).optional(),
    holding: z.array(JobId).max(10_000).default([]).openapi({
      description: "Jobs this agent tracks; their leases are renewed and cancel requests for them are returned.",
    }),
  })
  .openapi("LeaseRequest");
export type LeaseRequest = z.infer<typeof LeaseRequest>;

export const Lease = z
  .object({
    jobId: JobId,
    epoch: z
      .number()
      .int()
      .openapi({ description: "Fencing token: every report must carry it; a newer lease makes older epochs stale." }),
    attempt: z.number().int(),
    owner: z
      .string()
      .openapi({ description: "The submitting user; the job directory is <shared root>/<owner>/<job id>." }),
    expiresAt: z.string(),
    spec: JobSpec,
    slurmJobId: z.string().nullable().openapi({
      description: "Set when an earlier holder already submitted this attempt: reconcile, do not resubmit.",
    }),
    dependsOnSlurmIds: z.array(z.object({ slurmJobId: z.string(), condition: z.string() })).default([]),
  })
  .openapi("Lease");
export type Lease = z.infer<typeof Lease>;

export const CancelOrder = z
  .object({ jobId: JobId, epoch: z.number().int(), slurmJobId: z.string().nullable() })
  .openapi("CancelOrder");

export const LeaseResponse = z
  .object({
    leases: z.array(Lease),
    cancels: z.array(CancelOrder),
    lost: z.array(JobId).openapi({
      description: "Jobs in `holding` this agent no longer holds (lease taken over or job ended): stop tracking them.",
    }),
    leaseSeconds: z.number().int(),
    serverTime: z.string(),
  })
  .openapi("LeaseResponse");
export type LeaseResponse = z.infer<typeof LeaseResponse>;

export const RejectCode = z.enum([
  "policy_rejected",
  "invalid_spec",
  "path_outside_roots",
  "secret_missing",
  "slurm_invalid_partition",
  "slurm_invalid_account",
  "slurm_invalid_qos",
  "slurm_qos_limit",
  "slurm_assoc_limit",
  "slurm_gres_unavailable",
  "slurm_time_limit",
  "slurm_memory_limit",
  "slurm_node_config",
  "slurm_dependency",
  "slurm_rejected",
  "job_vanished",
  ...IDENTITY_REJECT_CODES,
]);
export type RejectCode = z.infer<typeof RejectCode>;

export const LogAppend = z.object({
  stream: z.enum(["stdout", "stderr"]),
  offset: z.number().int().min(0),
  data: z.string().max(1_400_000).openapi({ description: "base64 of the bytes starting at offset." }),
});

export const Report = z
  .object({
    jobId: JobId,
    epoch: z.number().int(),
    state: JobState.optional(),
    slurmJobId: z
      .string()
      .regex(/^\d+(_\d+)?$/)
      .optional(),
    exitCode: z.number().int().optional(),
    signal: z.number().int().optional(),
    reason: z.string().max(4_096).optional(),
    code: RejectCode.optional(),
    script: z
      .string()
      .max(1_100_000)
      .optional()
      .openapi({ description: "The exact rendered batch script, for audit." }),
    logs: z.array(LogAppend).max(4).default([]),
    result: z.unknown().optional(),
    requeue: z
      .object({ reason: z.string().max(1_024), retryAfterSeconds: z.number().int().min(1).max(3_600) })
      .optional()
      .openapi({ description: "Back-pressure (controller full, QOS submit limit): give the job back to the queue." }),
  })
  .openapi("Report");
export type Report = z.infer<typeof Report>;

export const ReportBatch = z
  .object({ agentId: z.string().max(128).optional(), reports: z.array(Report).min(1).max(500) })
  .openapi("ReportBatch");

export const ReportOutcome = z
  .object({
    jobId: z.string(),
    status: z.enum(["applied", "duplicate", "stale", "illegal", "not_found"]),
    detail: z.string().optional(),
    cancelRequested: z.boolean().optional(),
  })
  .openapi("ReportOutcome");
export const ReportResponse = z.object({ outcomes: z.array(ReportOutcome) }).openapi("ReportResponse");

export const GresCount = z.object({ type: z.string(), count: z.number().int() });

export const PartitionInfo = z
  .object({
    name: z.string(),
    default: z.boolean(),
    state: z.string(),
    nodes: z.number().int(),
    maxTimeSeconds: z.number().int().nullable().openapi({ description: "null = unlimited" }),
    maxCpusPerNode: z.number().int(),
    maxMemMBPerNode: z.number().int(),
    maxNodes: z.number().int().nullable(),
    gpus: z.array(GresCount).openapi({ description: "GPU types and the largest count on one node." }),
  })
  .openapi("PartitionInfo");
export type PartitionInfo = z.infer<typeof PartitionInfo>;

export const Inventory = z
  .object({
    slurmVersion: z.string(),
    apptainerVersion: z.string().nullable(),
    accounting: z.boolean(),
    partitions: z.array(PartitionInfo),
    agentVersion: z.string(),
    agentId: z.string(),
    hostname: z.string().optional(),
    mode: z.enum(["local", "ssh"]).default("local"),
    cycleMs: z.number().optional(),
    tracked: z.number().int().optional(),
    identity: AgentIdentity.optional().openapi({
      description: "Whose jobs this agent runs; absent = `self`. A personal agent's user comes from its token.",
    }),
  })
  .openapi("Inventory");
export type Inventory = z.infer<typeof Inventory>;
