/**
 * What a user submits (JobSpec), what the API returns (Job), and the states between.
 */
import { z } from "@hono/zod-openapi";
import { allowedArgvRefs, argvRefProblem } from "./argv-refs.ts";
import { CacheRefs } from "./cache.ts";
import { JobInputs } from "./files.ts";
import { Outputs } from "./outputs.ts";
import {
  ABSOLUTE_PATH,
  ARRAY_INDEXES,
  CLUSTER_NAME,
  DURATION,
  ENV_NAME,
  IMAGE_REF,
  JOB_NAME,
  LABEL_KEY,
  MEMORY,
  RELATIVE_PATH,
  RESERVED_ENV,
  SLURM_NAME,
  quotedText,
} from "./patterns.ts";
import { ExtraSbatchArg } from "./sbatch.ts";
import { withOtherIssues } from "./strict.ts";

export const LIVE_STATES = ["queued", "leased", "submitted", "pending", "running"] as const;
export const TERMINAL_STATES = [
  "completed",
  "failed",
  "cancelled",
  "timeout",
  "out_of_memory",
  "node_fail",
  "preempted",
  "rejected",
  "lost",
] as const;

export const JobState = z.enum([...LIVE_STATES, ...TERMINAL_STATES]).openapi("JobState", {
  description:
    "queued → leased → submitted → pending → running → one terminal state. `lost` means the job vanished from squeue, sacct and its exit file: never reported as completed without evidence.",
});
export type JobState = z.infer<typeof JobState>;
export type LiveState = (typeof LIVE_STATES)[number];
export type TerminalState = (typeof TERMINAL_STATES)[number];

export function isTerminal(state: JobState): state is TerminalState {
  return (TERMINAL_STATES as readonly string[]).includes(state);
}

const slurmName = (what: string) => z.string().regex(SLURM_NAME, `${what}: letters, digits, '.', '_' or '-' (max 64)`);

const envMap = z
  .record(z.string().regex(ENV_NAME, "environment names are [A-Za-z_][A-Za-z0-9_]*"), quotedText(32_768))
  .refine((env) => Object.keys(env).length <= 256, { message: "at most 256 variables", ...withOtherIssues })
  .superRefine((env, ctx) => {
    for (const name of Object.keys(env)) {
      if (RESERVED_ENV.test(name)) {
        ctx.addIssue({ code: "custom", path: [name], message: `${name} is reserved and cannot be set` });
      }
    }
  }, withOtherIssues);

export const GpuRequest = z
  .strictObject({
    count: z.number().int().min(1).max(64),
    type: slurmName("GPU type").optional().openapi({ example: "a100" }),
  })
  .openapi("GpuRequest");

export const Resources = z
  .strictObject({
    nodes: z.number().int().min(1).max(10_000).optional(),
    ntasksPerNode: z.number().int().min(1).max(1_024).optional(),
    cpusPerTask: z.number().int().min(1).max(1_024).optional(),
    memPerNode: z.string().regex(MEMORY, "memory like 4G, 512M or 2048").optional(),
    memPerCpu: z.string().regex(MEMORY, "memory like 4G, 512M or 2048").optional(),
    gpus: GpuRequest.optional(),
    time: z
      .string()
      .regex(DURATION, "a Slurm time (MM, HH:MM:SS, D-HH:MM) or a compact one (90m, 1h30m)")
      .optional()
      .openapi({ example: "1h" }),
  })
  .refine((r) => !(r.memPerNode && r.memPerCpu), {
    message: "give memPerNode or memPerCpu, not both",
    path: ["memPerCpu"],
    ...withOtherIssues,
  })
  .openapi("Resources");
export type Resources = z.infer<typeof Resources>;

export const Bind = z
  .strictObject({
    src: z.string().regex(ABSOLUTE_PATH, "an absolute path inside the cluster's shared roots"),
    dst: z.string().regex(ABSOLUTE_PATH, "an absolute path inside the container").optional(),
    readonly: z.boolean().default(false),
  })
  .openapi("Bind");

export const Container = z
  .strictObject({
    image: z.string().regex(IMAGE_REF, "an absolute .sif path or a docker:// / oras:// URI").optional(),
    images: z
      .strictObject({
        x86_64: z.string().regex(IMAGE_REF).optional(),
        aarch64: z.string().regex(IMAGE_REF).optional(),
      })
      .optional()
      .openapi({ description: "Per-architecture images; the job picks by `uname -m` at run time." }),
    binds: z.array(Bind).max(32).default([]),
    gpu: z
      .boolean()
      .optional()
      .openapi({ description: "Pass GPUs in (--nv). Defaults to true when the job asks for GPUs." }),
    env: envMap.optional(),
    mountHome: z.boolean().default(true),
  })
  .refine((c) => Boolean(c.image) !== Boolean(c.images), {
    message: "give exactly one of image or images",
    path: ["image"],
    ...withOtherIssues,
  })
  .openapi("Container");

/** Most services one job may start beside its payload. */
export const MAX_SERVICES = 4;
export const SERVICE_NAME = /^[a-z][a-z0-9-]{0,30}$/;
/** An HTTP health path: a request target without spaces, quotes or control characters. */
const HEALTH_PATH = /^\/[A-Za-z0-9._~!$&()*+,;=:@%/?-]{0,255}$/;

export const ServiceHealth = z
  .union([
    z.strictObject({ http: z.string().regex(HEALTH_PATH, "an HTTP path like /health") }),
    z.strictObject({ tcp: z.literal(true) }),
  ])
  .openapi("ServiceHealth", {
    description: "Healthy when GET <path> answers 2xx/3xx (http) or the port accepts a connection (tcp).",
  });

export const Service = z
  .strictObject({
    name: z.string().regex(SERVICE_NAME, "lowercase letters, digits and '-', starting with a letter (max 31)"),
    command: z.array(quotedText(16_384)).min(1).max(1_024).optional().openapi({
      description: "The service as an argv array (never parsed by a shell); inside the container when one is given.",
    }),
    container: z
      .strictObject({
        image: z.string().regex(IMAGE_REF, "an absolute .sif path or a docker:// / oras:// URI"),
        command: z.array(quotedText(16_384)).min(1).max(1_024).optional(),
      })
      .optional()
      .openapi({ description: "Run the service in its own Apptainer container (its runscript when no command)." }),
    port: z.number().int().min(1_024).max(65_535).optional().openapi({
      description: "Omitted: the wrapper picks a free port from a per-job range. The service reads it from $PORT.",
    }),
    env: envMap.default({}),
    secrets: z
      .array(z.string().regex(ENV_NAME, "secret names are [A-Za-z_][A-Za-z0-9_]*"))
      .max(64)
      .default([])
      .openapi({ description: "Secrets for this service only; the payload does not see them." }),
    binds: z.array(Bind).max(32).default([]),
    health: ServiceHealth,
    timeoutSeconds: z.number().int().min(1).max(3_600),
    gpus: z.number().int().min(1).max(64).optional().openapi({
      description:
        "How many of the job's GPUs (resources.gpus) this service takes: it sees only those in CUDA_VISIBLE_DEVICES, and the payload sees the rest.",
    }),
  })
  .refine((s) => (s.command === undefined) !== (s.container === undefined), {
    message: "give exactly one of command or container",
    path: ["command"],
    ...withOtherIssues,
  })
  .refine((s) => s.container !== undefined || !Array.isArray(s.binds) || s.binds.length === 0, {
    message: "binds need a container",
    path: ["binds"],
    ...withOtherIssues,
  })
  .openapi("Service");
export type Service = z.infer<typeof Service>;

/**
 * How the payload runs on every node of a multi-node job. Typed options only: the agent renders the
 * head-node discovery, the per-job port and the `srun` line (agent/render/launcher.ts).
 */
export const Launcher = z
  .discriminatedUnion("kind", [
    z.strictObject({ kind: z.literal("srun") }).openapi({
      description: "`srun <payload>`: the job's tasks on all its nodes, each told the head node.",
    }),
    z.strictObject({
      kind: z.literal("torchrun"),
      nprocPerNode: z.number().int().min(1).max(1_024).optional().openapi({
        description: "Processes per node (`--nproc_per_node`); torchrun's own default (1) when omitted.",
      }),
      maxRestarts: z.number().int().min(0).max(100).optional().openapi({
        description: "Restarts of the worker group after a failure (`--max_restarts`).",
      }),
    }),
    z.strictObject({
      kind: z.literal("ray"),
      numCpus: z.number().int().min(0).max(4_096).optional().openapi({ description: "`--num-cpus` per node." }),
      numGpus: z.number().int().min(0).max(64).optional().openapi({ description: "`--num-gpus` per node." }),
    }),
  ])
  .openapi("Launcher", {
    description:
      "Runs the payload on every node through srun, with the head node exported as SLURMGATE_HEAD_NODE/SLURMGATE_HEAD_ADDRESS (MASTER_ADDR/MASTER_PORT too) and a port from the job's own range: `torchrun --nnodes … --node_rank $SLURM_NODEID --rdzv_backend=c10d …` or `ray symmetric-run --address … --min-nodes … -- <payload>`.",
  });
export type Launcher = z.infer<typeof Launcher>;

/**
 * The one rule for services' GPUs: together they may take at most the job's own `resources.gpus.count`
 * (the payload gets the rest). The schema, the gateway's routing (after a profile filled in
 * `resources`) and the agent's renderer all ask this; null when the spec keeps to it.
 * `afterProfile: false` lets a job whose profile may supply the GPUs through (routing checks it later).
 * Copes with fields of the wrong type (it runs beside other issues, see strict.ts).
 * @example serviceGpuIssue({ resources: { gpus: { count: 1 } }, services: [{ gpus: 2 }] }, true)
 * // => { path: ["services", 0, "gpus"], message: "services take 2 GPUs but the job asks for 1 (resources.gpus.count); the payload gets the rest" }
 */
export function serviceGpuIssue(
  spec: { profile?: unknown; resources?: unknown; services?: unknown },
  afterProfile: boolean,
): { path: (string | number)[]; message: string } | null {
  const services = Array.isArray(spec.services) ? (spec.services as { gpus?: unknown }[]) : [];
  const gpus = (spec.resources as { gpus?: { count?: unknown } } | undefined)?.gpus;
  const count = typeof gpus?.count === "number" ? gpus.count : undefined;
  let taken = 0;
  for (const [i, svc] of services.entries()) {
    const want = typeof svc?.gpus === "number" ? svc.gpus : 0;
    if (want <= 0) {
      continue;
    }
    taken += want;
    const path = ["services", i, "gpus"];
    if (count === undefined) {
      if (gpus === undefined && spec.profile !== undefined && !afterProfile) {
        return null;
      }
      return { path, message: "the job asks for no GPUs (resources.gpus), so a service cannot take any" };
    }
    if (taken > count) {
      return {
        path,
        message: `services take ${taken} GPUs but the job asks for ${count} (resources.gpus.count); the payload gets the rest`,
      };
    }
  }
  return null;
}

export const DependencyCondition = z.enum(["afterok", "afterany", "afternotok", "after"]);
export const Dependency = z
  .strictObject({ job: z.string().regex(/^job_[0-9a-z]{20,40}$/), condition: DependencyCondition.default("afterok") })
  .openapi("Dependency");

export const Retries = z
  .strictObject({
    max: z.number().int().min(0).max(20).default(0),
    onTimeout: z.boolean().default(false),
    onPreemption: z.boolean().default(true),
    onNodeFail: z.boolean().default(true),
    backoffSeconds: z.number().int().min(0).max(3_600).default(10).openapi({
      description:
        "Wait before retry n: backoffSeconds × 2^(n−1), at most an hour, so a failing node or a preempting partition is not hit again at once. 0 retries at once.",
    }),
  })
  .openapi("Retries");

/**
 * Ask Slurm to signal the job's batch shell `secondsBeforeLimit` before its time limit (`--signal=B:…`);
 * the wrapper passes the signal on to the payload, which can then write a checkpoint.
 */
export const Checkpoint = z
  .strictObject({
    signal: z.enum(["USR1", "USR2"]).default("USR1"),
    secondsBeforeLimit: z.number().int().min(1).max(65_535).openapi({
      description:
        "Seconds before the time limit (Slurm may send it up to a minute earlier than asked: it checks once a minute).",
    }),
  })
  .openapi("Checkpoint", {
    description:
      "Opt-in signal before the time limit, for a payload that checkpoints into SLURMGATE_CHECKPOINT_DIR and resumes on the next attempt.",
  });

const MAX_RETRY_DELAY_MS = 3_600_000;

/**
 * How long a job waits in the queue before attempt `nextAttempt` (2 for the first retry).
 * @example retryDelayMs({ backoffSeconds: 10 }, 3) === 20_000
 */
export function retryDelayMs(retries: { backoffSeconds?: number }, nextAttempt: number): number {
  const base = (retries.backoffSeconds ?? 10) * 1_000;
  return Math.min(MAX_RETRY_DELAY_MS, base * 2 ** Math.max(0, nextAttempt - 2));
}

/**
 * Strict, like every request body: an unknown key is refused, not dropped. The gateway's lease and
 * the agent re-parse stored specs with this same schema, and the `Job` response embeds it; that is
 * safe for rows stored before bodies were strict, because the schema then stripped unknown keys, so
 * no stored spec has one.
 */
export const JobSpec = z
  .strictObject({
    name: z.string().regex(JOB_NAME, "letters, digits, '.', '_' or '-', starting with a letter or digit (max 64)"),
    cluster: z.string().regex(CLUSTER_NAME, "a registered cluster name").optional(),
    partition: slurmName("partition").optional(),
    account: slurmName("account").optional(),
    qos: slurmName("qos").optional(),
    profile: slurmName("profile").optional(),
    resources: Resources.default({}),
    command: z
      .array(quotedText(16_384))
      .min(1)
      .max(1_024)
      .optional()
      .openapi({
        description:
          "The payload as an argv array. Never parsed by a shell. An element may contain {SLURMGATE_RESULT}, {SLURMGATE_JOB_DIR}, {SLURMGATE_JOB_ID}, {SLURMGATE_ATTEMPT}, {SLURMGATE_CHECKPOINT_DIR}, {SLURMGATE_CACHE_<NAME>} of a declared cache or {SLURMGATE_SERVICE_<NAME>_URL/_HOST/_PORT} of a declared service; the wrapper replaces each with its value by plain string replacement (a service command may use {SLURMGATE_SERVICE_PORT} for its own port).",
        example: ["python", "train.py"],
      }),
    script: z
      .string()
      .max(1_048_576)
      .refine((s) => !s.includes("\0"), "must not contain NUL")
      .optional()
      .openapi({ description: "A bash script body, run as the user inside the job directory." }),
    workdir: z
      .string()
      .regex(RELATIVE_PATH, "a relative path under the cluster's shared root, without '.' or '..' segments")
      .optional(),
    env: envMap.default({}),
    secrets: z
      .array(z.string().regex(ENV_NAME, "secret names are [A-Za-z_][A-Za-z0-9_]*"))
      .max(64)
      .default([])
      .openapi({ description: "Names the agent resolves from its own store; values never reach the gateway." }),
    setup: z.array(quotedText(4_096)).max(64).default([]).openapi({
      description:
        "Shell lines run before the payload (module load, conda activate). Each is the user's own shell, like `script`.",
    }),
    container: Container.optional(),
    cache: CacheRefs.optional(),
    inputs: JobInputs.optional().openapi({
      description:
        "Files you uploaded (POST /v1/files), written into the job directory before sbatch and checked against their sha-256; a missing or altered one rejects the job (input_missing / input_corrupt).",
    }),
    array: z
      .strictObject({
        indexes: z.string().regex(ARRAY_INDEXES, "Slurm array indexes like 0-99, 0-99:2 or 1,3,5-7"),
        maxParallel: z.number().int().min(1).max(100_000).optional(),
      })
      .optional(),
    dependsOn: z.array(Dependency).max(64).default([]),
    retries: Retries.default({ max: 0, onTimeout: false, onPreemption: true, onNodeFail: true, backoffSeconds: 10 }),
    checkpoint: Checkpoint.optional(),
    launcher: Launcher.optional(),
    services: z
      .array(Service)
      .max(MAX_SERVICES)
      .superRefine((list, ctx) => {
        const seen = new Set<string>();
        list.forEach((svc, i) => {
          if (seen.has(svc.name)) {
            ctx.addIssue({ code: "custom", path: [i, "name"], message: `service name ${svc.name} is used twice` });
          }
          seen.add(svc.name);
          const port = svc.port;
          if (port !== undefined && list.some((o, j) => j < i && o.port === port)) {
            ctx.addIssue({ code: "custom", path: [i, "port"], message: `port ${port} is used by another service` });
          }
        });
      })
      .openapi({
        description:
          "Started before the payload, health-checked, exported as SLURMGATE_SERVICE_<NAME>_URL/_HOST/_PORT, stopped after it.",
      })
      .optional(),
    labels: z
      .record(z.string().regex(LABEL_KEY, "label keys are [A-Za-z0-9][A-Za-z0-9_./-]*"), z.string().max(128))
      .refine((l) => Object.keys(l).length <= 32, { message: "at most 32 labels", ...withOtherIssues })
      .default({}),
    outputs: Outputs.optional(),
    extraSbatchArgs: z.array(ExtraSbatchArg).max(16).default([]).openapi({
      description:
        "Only options the cluster allow-lists are accepted; options slurmgate sets itself (schemas/sbatch.ts) never are.",
    }),
  })
  .refine((s) => (s.command === undefined) !== (s.script === undefined), {
    message: "give exactly one of command (argv) or script",
    path: ["command"],
    ...withOtherIssues,
  })
  .refine((s) => !(s.array !== undefined && Array.isArray(s.services) && s.services.length > 0), {
    message: "services cannot be combined with an array job",
    path: ["services"],
    ...withOtherIssues,
  })
  .refine((s) => !(s.launcher !== undefined && s.array !== undefined), {
    message:
      "a launcher cannot be combined with an array job: each array task is one node's job, not one multi-node run",
    path: ["launcher"],
    ...withOtherIssues,
  })
  .refine((s) => !(s.launcher !== undefined && Array.isArray(s.services) && s.services.length > 0), {
    message:
      "a launcher cannot be combined with services: services run on the head node only, at 127.0.0.1 addresses the other nodes cannot reach",
    path: ["launcher"],
    ...withOtherIssues,
  })
  .superRefine((s, ctx) => {
    const issue = serviceGpuIssue(s, false);
    if (issue) {
      ctx.addIssue({ code: "custom", ...issue });
    }
  }, withOtherIssues)
  .superRefine((s, ctx) => {
    const allowed = allowedArgvRefs(s);
    const check = (argv: readonly string[] | undefined, path: (string | number)[], set: Set<string>) => {
      argv?.forEach((arg, i) => {
        const problem = argvRefProblem(arg, set);
        if (problem !== null) {
          ctx.addIssue({ code: "custom", path: [...path, i], message: problem });
        }
      });
    };
    check(s.command, ["command"], allowed.payload);
    s.services?.forEach((svc, i) => {
      check(svc.command, ["services", i, "command"], allowed.service);
      check(svc.container?.command, ["services", i, "container", "command"], allowed.service);
    });
  })
  .openapi("JobSpec");
export type JobSpec = z.infer<typeof JobSpec>;
export type JobSpecInput = z.input<typeof JobSpec>;

export const JobId = z
  .string()
  .regex(/^job_[0-9a-z]{20,40}$/)
  .openapi({ example: "job_01jd7x2k9m4q8r6t5v3w1y0z" });

export const JobEvent = z
  .object({
    seq: z.number().int().openapi({ description: "Increases by one per job, starting at 1." }),
    at: z.string().openapi({ description: "ISO 8601 time, gateway clock." }),
    actor: z.string().openapi({ example: "user:alice" }),
    type: z.enum(["state", "cancel_requested", "note"]),
    state: JobState.optional(),
    detail: z.string().optional(),
  })
  .openapi("JobEvent");
export type JobEvent = z.infer<typeof JobEvent>;

export const Job = z
  .object({
    id: JobId,
    owner: z.string(),
    name: z.string(),
    state: JobState,
    reason: z.string().nullable().openapi({ description: "Why the job waits or how it ended, in words." }),
    code: z.string().nullable().openapi({
      description:
        "Stable machine code for a refusal (slurm_invalid_partition) or for how a job that ran ended when it did not complete (setup_failed, image_missing, service_unhealthy, exited_nonzero, killed_by_signal, out_of_memory, time_limit, …).",
    }),
    cluster: z.string(),
    partition: z.string().nullable(),
    attempt: z.number().int(),
    slurmJobId: z.string().nullable(),
    exitCode: z.number().int().nullable(),
    signal: z.number().int().nullable(),
    cancelRequested: z.boolean(),
    labels: z.record(z.string(), z.string()),
    spec: z.union([JobSpec, z.null()]).openapi({
      description: "null when the stored spec no longer matches the schema (code invalid_spec while the job is live).",
    }),
    result: z.unknown().nullable().openapi({ description: "The small JSON the job wrote to $SLURMGATE_RESULT." }),
    sweep: z.object({ id: z.string(), index: z.number().int() }).nullable().openapi({
      description: "The sweep this job is an element of, and its position there; null for a job on its own.",
    }),
    lastSeq: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
    events: z.array(JobEvent).optional(),
  })
  .openapi("Job");
export type Job = z.infer<typeof Job>;

/** Most array tasks an agent reports per job and the gateway stores: Slurm's default MaxArraySize. */
export const MAX_REPORTED_TASKS = 1_001;

export const JobTask = z
  .strictObject({
    task: z.number().int().min(0).max(9_999_999).openapi({ description: "The array index ($SLURM_ARRAY_TASK_ID)." }),
    state: JobState,
    exitCode: z.number().int().nullable(),
    signal: z.number().int().nullable(),
    reason: z.string().max(512).nullable().openapi({ description: "Why the task waits or how it ended, in words." }),
  })
  .openapi("JobTask");
export type JobTask = z.infer<typeof JobTask>;

export const JobTasks = z
  .object({
    jobId: JobId,
    state: JobState,
    indexes: z.string().nullable().openapi({ description: "The array's index expression; null for a plain job." }),
    counts: z
      .record(z.string(), z.number().int())
      .openapi({ description: "Tasks per state, from the agent's last report.", example: { completed: 3, failed: 1 } }),
    items: z.array(JobTask),
  })
  .openapi("JobTasks");
export type JobTasks = z.infer<typeof JobTasks>;

export const JobPage = z
  .object({
    items: z.array(Job),
    nextCursor: z.string().nullable(),
  })
  .openapi("JobPage");

export const JobEvents = z
  .object({
    job: Job,
    events: z.array(JobEvent),
    lastSeq: z.number().int(),
  })
  .openapi("JobEvents");

export const LogStream = z.enum(["stdout", "stderr"]);
export const LogChunk = z
  .object({
    stream: LogStream,
    attempt: z.number().int().openapi({ description: "The attempt these bytes are from." }),
    attempts: z.number().int().openapi({ description: "How many attempts the job has had so far (its latest)." }),
    task: z.number().int().nullable().openapi({ description: "The array task, or null for the job's own log." }),
    offset: z.number().int().min(0),
    data: z.string().openapi({ description: "UTF-8 text of the bytes from offset." }),
    nextOffset: z.number().int(),
    complete: z.boolean().openapi({
      description:
        "True once this attempt has ended and every byte has been shipped: the job is terminal, or (for an earlier attempt) the next attempt has reached Slurm.",
    }),
  })
  .openapi("LogChunk");
