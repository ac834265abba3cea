/**
 * Job outputs: the agent streams each output file in after the job ends; the owner (or an admin)
 * lists and downloads them.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { AttemptQuery, JobFile, JobFileList, Problem } from "../../schemas/index.ts";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../deps.ts";
import { requireRole } from "../middleware/auth.ts";
import { ApiProblem } from "../problem.ts";
import { IdParam, bearer, problems } from "./common.ts";

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits");

/** The list's and the download's query: which attempt's files (unknown parameters are refused). */
export const JobFilesQuery = z.strictObject({
  attempt: AttemptQuery.optional().openapi({
    description: "Which attempt's files (1 is the first run; default: the newest attempt that brought files back).",
  }),
});

export const listJobFiles = createRoute({
  method: "get",
  path: "/v1/jobs/{id}/files",
  operationId: "listJobFiles",
  tags: ["jobs"],
  summary: "The job's outputs brought back from its directory",
  description:
    "Files the agent uploaded as an attempt ended (JobSpec.outputs), by path: the newest attempt that brought files back, or the one `attempt` names; `attempts` lists every attempt that did. A match that could not be brought back (a symlink, too large) is named in the job's `reason` instead.",
  security: bearer,
  middleware: requireRole("user"),
  request: { params: IdParam, query: JobFilesQuery },
  responses: {
    200: { description: "The files, by path", content: { "application/json": { schema: JobFileList } } },
    ...problems(401, 404, 422, 429),
  },
});

export const downloadJobFile = createRoute({
  method: "get",
  path: "/v1/jobs/{id}/files/{path}",
  operationId: "downloadJobFile",
  tags: ["jobs"],
  summary: "Download one output file (Range supported)",
  description:
    "The bytes of one output, as an attachment, with `ETag` its sha256. `Range: bytes=a-b` answers 206, an unsatisfiable range 416. The path may be sent with `/` or `%2F` between its segments. `attempt` picks an earlier attempt's file (default: the newest attempt that brought files back; `X-Slurmgate-Attempt` says which). Stored content that no longer matches its sha256 is refused (500), never served.",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    params: IdParam.extend({
      path: z
        .string()
        .min(1)
        .max(1_024)
        .openapi({ param: { name: "path", in: "path" }, example: "results/metrics.json" }),
    }),
    query: JobFilesQuery,
    headers: z.object({ range: z.string().optional() }),
  },
  responses: {
    200: {
      description: "The whole file",
      content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } },
    },
    206: {
      description: "The requested range",
      content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } },
    },
    ...problems(401, 404, 422, 429),
    416: {
      description: "The range lies outside the file",
      content: { "application/problem+json": { schema: Problem } },
    },
    500: {
      description: "The stored content no longer matches its sha256",
      content: { "application/problem+json": { schema: Problem } },
    },
  },
});

const OUTPUT_MEDIA_TYPE = "application/octet-stream";

/** Before the body validators: a refusal that names the media type this route takes, not JSON. */
const octetStreamOnly: MiddlewareHandler<AppEnv> = async (c, next) => {
  const type = c.req.header("content-type")?.split(";")[0]?.trim().toLowerCase() ?? "";
  if (type !== OUTPUT_MEDIA_TYPE) {
    throw new ApiProblem(
      "unsupported_media_type",
      `${type ? `Content-Type '${type.slice(0, 100)}' is not accepted` : "a body without a Content-Type is not accepted"}; send Content-Type: ${OUTPUT_MEDIA_TYPE}`,
      { field: "header.content-type", headers: { "accept-put": OUTPUT_MEDIA_TYPE } },
    );
  }
  await next();
};

export const agentUploadOutput = createRoute({
  method: "put",
  path: "/v1/agent/jobs/{id}/outputs",
  operationId: "agentUploadOutput",
  tags: ["agent"],
  summary: "Stream one output file of a leased job",
  description:
    "The body is the file's `size` bytes, then (when `sha256` is not in the query) their sha256 as 64 lowercase hex digits: the agent hashes the file while it sends it and reads it once. The gateway hashes what arrives into its blob store and lists the file only once every byte arrived and its hash is the one the agent named (422 otherwise, nothing listed); the same job, path and bytes again is harmless.",
  security: bearer,
  middleware: [requireRole("agent"), octetStreamOnly] as const,
  request: {
    params: IdParam,
    query: z.strictObject({
      epoch: z.coerce.number().int().min(0),
      path: z.string().min(1).max(1_024),
      sha256: Sha256.optional().openapi({
        description: "The sha256 named up front; absent, it follows the bytes at the end of the body",
      }),
      size: z.coerce.number().int().min(0),
    }),
    body: {
      content: { [OUTPUT_MEDIA_TYPE]: { schema: z.string().openapi({ format: "binary" }) } },
      required: true,
    },
  },
  responses: {
    200: { description: "Stored and listed", content: { "application/json": { schema: JobFile } } },
    ...problems(400, 401, 403, 404, 409, 413, 422, 429),
  },
});
