/**
 * The contracts of browsing a job's directory: list a directory, read a file's first or last bytes.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { AttemptQuery, BrowseBytes, BrowsePath, DirListing, FileSlice } from "../../schemas/index.ts";
import { requireRole } from "../middleware/auth.ts";
import { IdParam, bearer, problems } from "./common.ts";

const ASKED =
  "`attempt` picks whose directory (1 is the first run; default: the current attempt once it has reached Slurm, else the one before it, so a job back in the queue for a retry shows its last run); 404 for an attempt the job has not had. The gateway asks the cluster's agent, which is parked in its lease call and answers at once; it resolves the path inside the job directory one component at a time, follows no symlink, and reads as the job's account. 409 while the attempt has not reached Slurm; 503 when no agent of the cluster is connected; 504 when it does not answer within SLURMGATE_BROWSE_SECONDS.";

const path = BrowsePath.default("");
const attempt = AttemptQuery.optional().openapi({ description: "Whose attempt's directory (default: see above)." });

export const jobDir = createRoute({
  method: "get",
  path: "/v1/jobs/{id}/dir",
  operationId: "jobDir",
  tags: ["jobs"],
  summary: "List a directory of the job's directory",
  description: `Name, type (file, dir, symlink, other; symlinks are listed, never followed), size and mtime of each entry. ${ASKED}`,
  security: bearer,
  middleware: requireRole("user"),
  request: { params: IdParam, query: z.strictObject({ path, attempt }) },
  responses: {
    200: { description: "The listing", content: { "application/json": { schema: DirListing } } },
    ...problems(401, 404, 409, 422, 429, 503, 504),
  },
});

function readRoute(from: "head" | "tail") {
  return createRoute({
    method: "get",
    path: `/v1/jobs/{id}/${from}`,
    operationId: from === "head" ? "jobHead" : "jobTail",
    tags: ["jobs"],
    summary: `Read the ${from === "head" ? "first" : "last"} bytes of a file in the job's directory`,
    description: `Up to \`bytes\` bytes, base64 in \`data\`, with the file's size. ${ASKED}`,
    security: bearer,
    middleware: requireRole("user"),
    request: { params: IdParam, query: z.strictObject({ path, bytes: BrowseBytes, attempt }) },
    responses: {
      200: { description: "The bytes", content: { "application/json": { schema: FileSlice } } },
      ...problems(401, 404, 409, 422, 429, 503, 504),
    },
  });
}

export const jobHead = readRoute("head");
export const jobTail = readRoute("tail");
