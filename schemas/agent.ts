/**
 * The agent's side of the wire: leases it takes, reports it sends, the inventory it publishes.
 */
import { z } from "@hono/zod-openapi";
import { AgentAsk } from "./asks.ts";
import { CacheEntry, MAX_INVENTORY_CACHES } from "./cache.ts";
import { AgentIdentity, IDENTITY_REJECT_CODES } from "./identity.ts";
import { JobId, JobSpec, JobState, JobTask, MAX_REPORTED_TASKS, SERVICE_NAME } from "./job.ts";
import { SHA256_HEX } from "./files.ts";
import { ABSOLUTE_PATH, SLURM_NAME } from "./patterns.ts";
import { SBATCH_OPTION } from "./sbatch.ts";

/**
 * Most held jobs one lease call may list. An agent tracking more (a 10,000-element sweep and a few
 * jobs besides) renews the rest in calls with `max: 0` before its claiming call.
 */
export const MAX_HOLDING_PER_LEASE = 10_000;

export const LeaseRequest = z
  .strictObject({
    max: z.number().int().min(0).max(100).default(10).openapi({
      description:
        "Most jobs to lease in this call. 0: only renew `holding`; nothing is claimed, no cancel order or ask is handed out.",
    }),
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
    holding: z
      .array(JobId)
      .max(MAX_HOLDING_PER_LEASE)
      .default([])
      .openapi({
        description: `Jobs this agent tracks; their leases are renewed and cancel requests for them are returned. At most ${MAX_HOLDING_PER_LEASE.toLocaleString("en")} per call: an agent holding more renews the rest in calls with \`max: 0\`.`,
      }),
  })
  .openapi("LeaseRequest");
export type LeaseRequest = z.infer<typeof LeaseRequest>;

export const LeaseBatch = z
  .object({
    id: z.string().regex(/^bat_[0-9a-z]{20,40}$/),
    index: z.number().int().min(0).openapi({ description: "This element's array index ($SLURM_ARRAY_TASK_ID)." }),
    size: z.number().int().min(1).openapi({ description: "How many leases the gateway put in this batch." }),
    maxParallel: z.number().int().min(1).nullable().openapi({ description: "The array's %N throttle." }),
  })
  .openapi("LeaseBatch");
export type LeaseBatch = z.infer<typeof LeaseBatch>;

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
    batch: LeaseBatch.nullable().default(null).openapi({
      description:
        "Sweep elements claimed together: every lease of this response with the same batch id is one Slurm array (tag `slurmgate:batch:<id>`), this element at array index `index`. Null for a job submitted on its own.",
    }),
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
    asks: z.array(AgentAsk).default([]).openapi({
      description: "Questions for this agent to answer now, each by POST /v1/agent/asks/{id}/answer.",
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
  "cache_missing",
  "input_missing",
  "input_corrupt",
  ...IDENTITY_REJECT_CODES,
]);
export type RejectCode = z.infer<typeof RejectCode>;

/**
 * How a job that ran ended, when it did not complete: a stable code next to the reason's words.
 * `image_missing`, `wrapper_failed` and `service_unhealthy` come from the job wrapper's own failure file (WRAPPER_CODES).
 */
export const EndingCode = z.enum([
  "exited_nonzero",
  "killed_by_signal",
  "setup_failed",
  "image_missing",
  "wrapper_failed",
  "service_unhealthy",
  "out_of_memory",
  "time_limit",
  "node_fail",
  "preempted",
  "cancelled_by_user",
  "cancelled_in_slurm",
]);
export type EndingCode = z.infer<typeof EndingCode>;
/** The codes the job wrapper may write into its failure file (agent/render/template.ts). */
export const WRAPPER_CODES = [
  "image_missing",
  "wrapper_failed",
  "service_unhealthy",
] as const satisfies readonly EndingCode[];

/** stdout and stderr of each of the (at most 1,000) array tasks the agent follows, plus the job's own. */
export const MAX_LOG_CHUNKS_PER_REPORT = 2_002;

export const LogAppend = z.strictObject({
  stream: z.enum(["stdout", "stderr"]),
  offset: z.number().int().min(0),
  data: z.string().max(1_400_000).openapi({ description: "base64 of the bytes starting at offset." }),
  attempt: z.number().int().min(1).max(1_000).optional().openapi({
    description:
      "The attempt whose file these bytes are from (default: the job's current attempt). Bytes of an attempt that has ended are kept even after the job moved on to the next one.",
  }),
  task: z
    .number()
    .int()
    .min(0)
    .max(4_000_000)
    .optional()
    .openapi({ description: "The array task whose stdout.<task>/stderr.<task> these bytes are from." }),
  service: z.string().regex(SERVICE_NAME).optional().openapi({
    description: "The service (JobSpec.services) whose service-<name>.out/.err these bytes are from.",
  }),
});

/** Longest rendered script a report may carry, whole or as head plus body (characters). */
export const MAX_SCRIPT_CHARS = 1_100_000;
/**
 * Most script bodies one report request may carry: the wrapper's fixed body of the template version
 * that rendered the scripts, and of an older one for reports kept across an agent upgrade.
 */
export const MAX_SCRIPT_BODIES = 4;

export const Report = z
  .strictObject({
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
    code: z
      .union([RejectCode, EndingCode])
      .optional()
      .openapi({ description: "A refusal's code (rejected), or how a job that ran ended when it did not complete." }),
    script: z.string().max(MAX_SCRIPT_CHARS).optional().openapi({
      description:
        "The exact rendered batch script, for audit; with `scriptBody`, only its head (the script is `script` followed by that body).",
    }),
    scriptBody: z.string().regex(SHA256_HEX, "lowercase sha256 hex").optional().openapi({
      description:
        "The sha256 (lowercase hex) of the text that follows `script` in the rendered script: a body the request carries in `scriptBodies`, so a wrapper body shared by many jobs travels and is stored once.",
    }),
    logs: z
      .array(LogAppend)
      .max(MAX_LOG_CHUNKS_PER_REPORT)
      .default([])
      .openapi({ description: "Two streams, or two per array task (the agent ships up to 1,000 tasks' logs)." }),
    result: z.unknown().optional(),
    tasks: z.array(JobTask).max(MAX_REPORTED_TASKS).optional().openapi({
      description: "An array job's tasks, each with its own state, exit code and reason (the whole list each time).",
    }),
    requeue: z
      .strictObject({ reason: z.string().max(1_024), retryAfterSeconds: z.number().int().min(1).max(3_600) })
      .optional()
      .openapi({ description: "Back-pressure (controller full, QOS submit limit): give the job back to the queue." }),
  })
  .openapi("Report");
export type Report = z.infer<typeof Report>;

export const ReportBatch = z
  .strictObject({
    agentId: z.string().max(128).optional(),
    reports: z.array(Report).min(1).max(500),
    scriptBodies: z
      .record(
        z.string().regex(SHA256_HEX, "a body's key is its sha256 (lowercase hex)"),
        z.string().max(MAX_SCRIPT_CHARS),
      )
      .optional()
      .openapi({
        description: `The script bodies the reports name in \`scriptBody\`, each under its sha256 (lowercase hex); at most ${MAX_SCRIPT_BODIES}. The gateway checks each hash.`,
      }),
  })
  .superRefine((batch, ctx) => {
    const bodies = batch.scriptBodies ?? {};
    if (Object.keys(bodies).length > MAX_SCRIPT_BODIES) {
      ctx.addIssue({ code: "custom", path: ["scriptBodies"], message: `at most ${MAX_SCRIPT_BODIES} bodies` });
    }
    batch.reports.forEach((report, i) => {
      if (report.scriptBody === undefined) {
        return;
      }
      const path = ["reports", i, "scriptBody"];
      if (report.script === undefined) {
        ctx.addIssue({ code: "custom", path, message: "a scriptBody needs the script's head in `script`" });
      } else if (!Object.hasOwn(bodies, report.scriptBody)) {
        ctx.addIssue({ code: "custom", path, message: "names a body this request's scriptBodies does not carry" });
      }
    });
  })
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

export const Goodbye = z
  .strictObject({
    agentId: z.string().min(1).max(128).openapi({ description: "The agentId this agent leased with." }),
  })
  .openapi("Goodbye");

export const GoodbyeResponse = z
  .object({
    agentId: z.string(),
    stoppedAt: z
      .string()
      .nullable()
      .openapi({ description: "When the gateway recorded the stop (the first goodbye); null for an unknown agentId." }),
    clusterAlive: z
      .boolean()
      .openapi({ description: "Whether another agent of the cluster is still alive (and jobs still routed there)." }),
  })
  .openapi("GoodbyeResponse");

export const GresCount = z.strictObject({
  type: z.string().regex(SLURM_NAME, "a GRES type name"),
  count: z.number().int().min(0),
});

export const GpuAvailability = z
  .strictObject({
    type: z.string().regex(SLURM_NAME, "a GRES type name").or(z.literal("")),
    total: z.number().int().min(0),
    free: z.number().int().min(0),
  })
  .openapi("GpuAvailability");
export type GpuAvailability = z.infer<typeof GpuAvailability>;

/** What sinfo says of one partition. The agent parses it; the gateway echoes names back in 422s, so they are names. */
export const PartitionInfo = z
  .strictObject({
    name: z.string().regex(SLURM_NAME, "a Slurm partition name"),
    default: z.boolean(),
    state: z.string().regex(/^[A-Za-z_+*~#$@!%-]{1,32}$/, "a Slurm partition state such as up or drain"),
    nodes: z.number().int().min(0),
    maxTimeSeconds: z.number().int().min(0).nullable().openapi({ description: "null = unlimited" }),
    maxCpusPerNode: z.number().int().min(0),
    maxMemMBPerNode: z.number().int().min(0),
    maxNodes: z.number().int().min(0).nullable(),
    gpus: z.array(GresCount).max(64).openapi({ description: "GPU types and the largest count on one node." }),
    idleNodes: z
      .number()
      .int()
      .min(0)
      .optional()
      .openapi({ description: "Nodes with nothing running when the agent last looked (sinfo)." }),
    gpuAvailability: z
      .array(GpuAvailability)
      .max(64)
      .optional()
      .openapi({ description: "Per GPU type: how many the partition's nodes have, and how many are free now." }),
  })
  .openapi("PartitionInfo");
export type PartitionInfo = z.infer<typeof PartitionInfo>;

export const Inventory = z
  .strictObject({
    slurmVersion: z.string(),
    apptainerVersion: z.string().nullable(),
    accounting: z.boolean(),
    partitions: z.array(PartitionInfo).max(256),
    agentVersion: z.string(),
    agentId: z.string(),
    hostname: z.string().optional(),
    mode: z.enum(["local", "ssh"]).default("local"),
    cycleMs: z.number().optional(),
    tracked: z.number().int().optional(),
    sharedRoots: z.array(z.string().regex(ABSOLUTE_PATH, "an absolute path")).min(1).max(16).optional().openapi({
      description:
        "The roots the agent confines paths to (SLURMGATE_SHARED_ROOTS); the gateway refuses binds, images and workdirs outside them.",
    }),
    allowedSbatchArgs: z.array(z.string().regex(SBATCH_OPTION)).max(64).optional().openapi({
      description:
        "The agent's allow-list for extraSbatchArgs (SLURMGATE_ALLOWED_SBATCH_ARGS); the gateway offers only options on both this and the cluster config's.",
    }),
    maxArraySize: z.number().int().min(1).max(4_000_001).optional().openapi({
      description: "Slurm's MaxArraySize (scontrol show config): the gateway makes no sweep batch larger.",
    }),
    identity: AgentIdentity.optional().openapi({
      description: "Whose jobs this agent runs; absent = `self`. A personal agent's user comes from its token.",
    }),
    caches: z.array(CacheEntry).max(MAX_INVENTORY_CACHES).optional().openapi({
      description:
        "What is staged under the agent's cache root (SLURMGATE_CACHE_ROOT): jobs naming `cache` are routed only where all of theirs are.",
    }),
  })
  .openapi("Inventory");
export type Inventory = z.infer<typeof Inventory>;
