/**
 * The user API's contracts: submit, list, get, events, cancel, logs, tasks, script.
 */
import { requireRole } from "../middleware/auth.ts";
import { createRoute, z } from "@hono/zod-openapi";
import {
  Job,
  JobEvents,
  JobPage,
  JobSpec,
  JobState,
  JobTasks,
  LogChunk,
  LogStream,
  SERVICE_NAME,
  Preflight,
  Problem,
} from "../../schemas/index.ts";
import { IdParam, bearer, problems } from "./common.ts";

/** Makes a submission safe to retry: the same key and body answer the same job (or sweep). */
export const IdempotencyKey = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces")
  .optional()
  .openapi({ description: "Makes retries safe: the same key and body return the same job." });

export const submitJob = createRoute({
  method: "post",
  path: "/v1/jobs",
  operationId: "submitJob",
  tags: ["jobs"],
  summary: "Submit a job intent",
  description:
    "Validates, routes to a cluster by partition / GPU type / limits, and queues the job. With an `Idempotency-Key`, a retry with the same body returns the same job (200); the same key with a different body is a 409.",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    headers: z.object({ "idempotency-key": IdempotencyKey }),
    body: { content: { "application/json": { schema: JobSpec } }, required: true },
  },
  responses: {
    201: { description: "Queued", content: { "application/json": { schema: Job } } },
    200: {
      description: "Replay of an earlier submission with the same Idempotency-Key",
      content: { "application/json": { schema: Job } },
    },
    ...problems(400, 401, 403, 409, 413, 422, 429),
  },
});

export const preflightJob = createRoute({
  method: "post",
  path: "/v1/jobs/preflight",
  operationId: "preflightJob",
  tags: ["jobs"],
  summary: "Where a job would run, and why (nothing is stored)",
  description:
    "Validates the spec like a submission, then answers where it would be routed and, for every cluster you may use, whether it fits, with the partition's free GPUs and idle nodes as its agent last saw them, and Slurm's own estimate of the start time on each cluster that fits (asked of its agent now; clusters that fit are ranked by it). A job no cluster can run is a 200 with `cluster: null` and each cluster's reason. A separate operation because a 200 from `POST /v1/jobs` already means a replay.",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    query: z.object({
      estimate: z.enum(["true", "false"]).default("true").openapi({
        description:
          "Ask each cluster that fits for Slurm's start estimate (sbatch --test-only through its agent, up to SLURMGATE_ESTIMATE_SECONDS).",
      }),
    }),
    body: { content: { "application/json": { schema: JobSpec } }, required: true },
  },
  responses: {
    200: {
      description: "The routing decision with its reasons",
      content: { "application/json": { schema: Preflight } },
    },
    ...problems(400, 401, 403, 413, 422, 429),
  },
});

export const listJobs = createRoute({
  method: "get",
  path: "/v1/jobs",
  operationId: "listJobs",
  tags: ["jobs"],
  summary: "List your jobs, newest first",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    query: z.strictObject({
      state: JobState.optional(),
      cluster: z.string().max(64).optional(),
      label: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}=.{0,128}$/, "key=value")
        .optional()
        .openapi({ description: "Filter by one label, as key=value." }),
      cursor: z.string().max(64).optional().openapi({ description: "nextCursor from the previous page." }),
      limit: z.coerce.number().int().min(1).max(500).default(50),
    }),
  },
  responses: {
    200: { description: "A page of jobs", content: { "application/json": { schema: JobPage } } },
    ...problems(401, 403, 422, 429),
  },
});

export const getJob = createRoute({
  method: "get",
  path: "/v1/jobs/{id}",
  operationId: "getJob",
  tags: ["jobs"],
  summary: "A job with its event history",
  description: "Sends an ETag; poll with If-None-Match to get a cheap 304 while nothing changed.",
  security: bearer,
  middleware: requireRole("user"),
  request: { params: IdParam },
  responses: {
    200: { description: "The job", content: { "application/json": { schema: Job } } },
    304: { description: "Not modified since the ETag you sent" },
    ...problems(401, 404, 429),
  },
});

/** Last-Event-ID as EventSource sends it on reconnect: the position of the last message it got. */
export const LastEventIdHeader = z.object({
  "last-event-id": z
    .string()
    .regex(/^\d{1,15}$/, "the id of the last event received (digits)")
    .optional()
    .openapi({ description: "Sent by EventSource when it reconnects: resume after this event." }),
});

export const jobEvents = createRoute({
  method: "get",
  path: "/v1/jobs/{id}/events",
  operationId: "jobEvents",
  tags: ["jobs"],
  summary: "Follow a job's events (long-poll, or server-sent events)",
  description:
    "Returns the events after `after` at once if there are any; otherwise holds the request up to `wait` seconds and returns as soon as one happens. Loop with `after = lastSeq` to follow a job. With `Accept: text/event-stream` the answer is a stream instead: one message per event (`id` = its sequence number, `event` = its type, `data` = the event as JSON with `jobId`), comment lines as heartbeats, and a final `end` message carrying the job once it has finished. A reconnect with `Last-Event-ID` (or `after`) resumes after that event: nothing lost, nothing repeated.",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    params: IdParam,
    headers: LastEventIdHeader,
    query: z.strictObject({
      after: z.coerce.number().int().min(0).default(0),
      wait: z.coerce.number().int().min(0).max(25).default(0),
    }),
  },
  responses: {
    200: {
      description: "The job and the events after `after`, or with Accept: text/event-stream a stream of them",
      content: {
        "application/json": { schema: JobEvents },
        "text/event-stream": { schema: z.string().openapi({ description: "Server-sent events" }) },
      },
    },
    ...problems(401, 404, 422, 429),
  },
});

export const cancelJob = createRoute({
  method: "post",
  path: "/v1/jobs/{id}/cancel",
  operationId: "cancelJob",
  tags: ["jobs"],
  summary: "Cancel a job (idempotent)",
  description:
    "A queued job is cancelled at once; a live one is marked cancel-requested and its agent runs scancel. Cancelling a finished job changes nothing.",
  security: bearer,
  middleware: requireRole("user"),
  request: { params: IdParam },
  responses: {
    202: {
      description: "Cancel requested or done; the job as it is now",
      content: { "application/json": { schema: Job } },
    },
    ...problems(401, 404, 429),
  },
});

export const jobLogs = createRoute({
  method: "get",
  path: "/v1/jobs/{id}/logs",
  operationId: "jobLogs",
  tags: ["jobs"],
  summary: "Read a job's stdout or stderr from a byte offset",
  description:
    "Each attempt (`attempt`, default the latest) and each array task (`task`) has its own log. With `wait`, holds the request until new bytes arrive or that attempt ends.",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    params: IdParam,
    query: z.strictObject({
      stream: LogStream.default("stdout"),
      attempt: z.coerce.number().int().min(1).max(1_000).optional().openapi({
        description: "Which attempt's log (1 is the first run; default: the latest).",
      }),
      task: z.coerce.number().int().min(0).max(4_000_000).optional().openapi({
        description: "An array job's task: its own stdout.<task>/stderr.<task>.",
      }),
      service: z.string().regex(SERVICE_NAME).optional().openapi({
        description: "A service of the job (JobSpec.services): its own service-<name>.out (stdout) or .err (stderr).",
      }),
      offset: z.coerce.number().int().min(0).default(0),
      limit: z.coerce.number().int().min(1).max(1_048_576).default(262_144),
      wait: z.coerce.number().int().min(0).max(25).default(0),
    }),
  },
  responses: {
    200: { description: "Bytes from offset", content: { "application/json": { schema: LogChunk } } },
    ...problems(401, 404, 422, 429),
  },
});

export const jobTasks = createRoute({
  method: "get",
  path: "/v1/jobs/{id}/tasks",
  operationId: "jobTasks",
  tags: ["jobs"],
  summary: "An array job's tasks: state, exit code and reason of each",
  description:
    "As the cluster's agent last reported them, with counts per state. Empty for a plain job and for an array whose tasks have not been seen in Slurm yet.",
  security: bearer,
  middleware: requireRole("user"),
  request: { params: IdParam },
  responses: {
    200: { description: "The tasks", content: { "application/json": { schema: JobTasks } } },
    ...problems(401, 404, 429),
  },
});

export const jobScript = createRoute({
  method: "get",
  path: "/v1/jobs/{id}/script",
  operationId: "jobScript",
  tags: ["jobs"],
  summary: "The batch script the agent rendered and submitted for the job",
  description:
    "The exact text the agent wrote to `job.sbatch` and gave to sbatch (for the latest attempt it reported), for audit. 404 until the agent has reported the job submitted.",
  security: bearer,
  middleware: requireRole("user"),
  request: { params: IdParam },
  responses: {
    200: {
      description: "The rendered batch script",
      content: { "text/plain": { schema: z.string().openapi({ description: "The script, UTF-8" }) } },
    },
    ...problems(401, 404, 429),
    500: {
      description: "The stored script is incomplete (its shared body is missing from the database)",
      content: { "application/problem+json": { schema: Problem } },
    },
  },
});
