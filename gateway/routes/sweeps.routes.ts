/**
 * The sweep API's contracts: submit, list, get (with a page of elements), results, cancel. Each
 * element is also a job: `/v1/jobs/{id}` and its sub-routes serve it one by one.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { Sweep, SweepCreated, SweepDetail, SweepPage, SweepRequest, SweepResultLine } from "../../schemas/index.ts";
import { requireRole } from "../middleware/auth.ts";
import { IdempotencyKey } from "./jobs.routes.ts";
import { IdParam, bearer, numericPageQuery, problems } from "./common.ts";

export const submitSweep = createRoute({
  method: "post",
  path: "/v1/sweeps",
  operationId: "submitSweep",
  tags: ["sweeps"],
  summary: "Submit many jobs in one request",
  description:
    "Expands `specs`, or `base` × `points` × `grid`, into elements; validates and routes each exactly like POST /v1/jobs (every refusal at once, each named by its element's path, e.g. `body.specs.3.resources.gpus`, `body.points.2.env.X`, `body.grid.LR`), and stores the sweep and every element in one transaction. Each element is a job with its own id. Elements that differ only in name, env, command and labels are submitted to Slurm as one array. With an `Idempotency-Key`, a retry with the same body returns the same sweep (200); the same key with a different body is a 409.",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    headers: z.object({ "idempotency-key": IdempotencyKey }),
    body: { content: { "application/json": { schema: SweepRequest } }, required: true },
  },
  responses: {
    201: {
      description: "Queued: the sweep and every element's job id",
      content: { "application/json": { schema: SweepCreated } },
    },
    200: {
      description: "Replay of an earlier submission with the same Idempotency-Key",
      content: { "application/json": { schema: SweepCreated } },
    },
    ...problems(400, 401, 403, 409, 413, 422, 429),
  },
});

export const listSweeps = createRoute({
  method: "get",
  path: "/v1/sweeps",
  operationId: "listSweeps",
  tags: ["sweeps"],
  summary: "List your sweeps, newest first",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    query: z.strictObject({
      cursor: z.string().max(64).optional().openapi({ description: "nextCursor from the previous page." }),
      limit: z.coerce.number().int().min(1).max(100).default(20),
    }),
  },
  responses: {
    200: { description: "A page of sweeps", content: { "application/json": { schema: SweepPage } } },
    ...problems(401, 403, 422, 429),
  },
});

export const getSweep = createRoute({
  method: "get",
  path: "/v1/sweeps/{id}",
  operationId: "getSweep",
  tags: ["sweeps"],
  summary: "A sweep: counts per state, progress, and a page of its elements in element order",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    params: IdParam,
    query: numericPageQuery(7),
  },
  responses: {
    200: { description: "The sweep", content: { "application/json": { schema: SweepDetail } } },
    ...problems(401, 404, 422, 429),
  },
});

export const sweepResults = createRoute({
  method: "get",
  path: "/v1/sweeps/{id}/results",
  operationId: "sweepResults",
  tags: ["sweeps"],
  summary: "Every element's state, exit code and result, one JSON line each, in element order",
  description: "Streamed as `application/x-ndjson`; a live element's line says so (state, `result` null).",
  security: bearer,
  middleware: requireRole("user"),
  request: { params: IdParam },
  responses: {
    200: {
      description: "One SweepResultLine per element",
      content: { "application/x-ndjson": { schema: SweepResultLine } },
    },
    ...problems(401, 404, 429),
  },
});

export const cancelSweep = createRoute({
  method: "post",
  path: "/v1/sweeps/{id}/cancel",
  operationId: "cancelSweep",
  tags: ["sweeps"],
  summary: "Cancel every live element of a sweep (idempotent)",
  description:
    "Queued elements are cancelled at once; live ones are marked cancel-requested and their agent runs scancel. Ended elements keep how they ended. To cancel one element, cancel its job.",
  security: bearer,
  middleware: requireRole("user"),
  request: { params: IdParam },
  responses: {
    202: {
      description: "Cancel requested or done; the sweep as it is now",
      content: { "application/json": { schema: Sweep } },
    },
    ...problems(401, 404, 429),
  },
});
