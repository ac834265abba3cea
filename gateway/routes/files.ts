/**
 * Files: upload (streamed, content-addressed), compose parts into a large file, look up and forget
 * your own uploads; agents download the inputs of jobs they hold.
 */
import { type RouteHandler, createRoute, z } from "@hono/zod-openapi";
import { ComposeRequest, FileRef, FileUploaded, Problem, refHex } from "../../schemas/index.ts";
import type { Deps } from "../deps.ts";
import { agentMayRead, composeFile, forgetUpload, ownUpload, parseExpected, uploadFile } from "../files/uploads.ts";
import { requireRole } from "../middleware/auth.ts";
import { ApiProblem } from "../problem.ts";
import { effectiveAgentId } from "../store/agent-scope.ts";
import { bearer, createRouter, problems } from "./common.ts";

const UPLOAD_MEDIA_TYPE = "application/octet-stream";

const RefParam = z.object({
  ref: z
    .string()
    .max(100)
    .openapi({ param: { name: "ref", in: "path" }, example: `sha256:${"0".repeat(64)}` }),
});

const quota413 = {
  description:
    "The file is over the per-file limit (`field`: body), or your uploads would exceed your quota (`field`: quota.bytes or quota.files)",
  content: { "application/problem+json": { schema: Problem } },
};

export const uploadRoute = createRoute({
  method: "post",
  path: "/v1/files",
  operationId: "uploadFile",
  tags: ["files"],
  summary: "Upload a file (streamed; the same bytes are stored once)",
  description:
    "Send the bytes as application/octet-stream. Answers the file's reference, `sha256:<hex>`, to name in a job's `inputs`. With `X-Content-SHA256` (or `?sha256=`) the bytes must hash to it. Over the per-file limit is a 413 before the body is read when Content-Length says so, else as soon as the limit is passed; over your quota (bytes or files held) is a 413 naming `quota.bytes` or `quota.files`: a quota does not refill by waiting, so it is not a 429. Large files: upload parts, then compose.",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    query: z.object({ sha256: z.string().max(80).optional() }),
    headers: z.object({ "x-content-sha256": z.string().max(80).optional() }),
    body: {
      content: { [UPLOAD_MEDIA_TYPE]: { schema: z.string().openapi({ format: "binary" }) } },
      required: true,
    },
  },
  responses: {
    201: { description: "Stored", content: { "application/json": { schema: FileUploaded } } },
    413: quota413,
    415: {
      description: "The body was not sent as application/octet-stream",
      content: { "application/problem+json": { schema: Problem } },
    },
    ...problems(400, 401, 403, 422, 429),
  },
});

export const composeRoute = createRoute({
  method: "post",
  path: "/v1/files/compose",
  operationId: "composeFile",
  tags: ["files"],
  summary: "Join uploaded parts into one file",
  description:
    "The parts (your uploads, in order) are concatenated and must hash to `sha256`. The parts are then no longer yours (their quota returns); the whole is. To resume an interrupted upload, HEAD each part's reference: a 200 means it is already here.",
  security: bearer,
  middleware: requireRole("user"),
  request: { body: { content: { "application/json": { schema: ComposeRequest } }, required: true } },
  responses: {
    201: { description: "Stored", content: { "application/json": { schema: FileUploaded } } },
    413: quota413,
    ...problems(400, 401, 403, 422, 429),
  },
});

export const getFileRoute = createRoute({
  method: "get",
  path: "/v1/files/{ref}",
  operationId: "getFile",
  tags: ["files"],
  summary: "One of your uploads (HEAD: whether it is here)",
  security: bearer,
  middleware: requireRole("user"),
  request: { params: RefParam },
  responses: {
    200: { description: "You uploaded it", content: { "application/json": { schema: FileUploaded } } },
    ...problems(401, 403, 404, 429),
  },
});

export const deleteFileRoute = createRoute({
  method: "delete",
  path: "/v1/files/{ref}",
  operationId: "deleteFile",
  tags: ["files"],
  summary: "Give up one of your uploads (its quota returns)",
  description:
    "Jobs already submitted with it keep it until they end; the bytes are removed once nothing references them.",
  security: bearer,
  middleware: requireRole("user"),
  request: { params: RefParam },
  responses: { 204: { description: "Forgotten" }, ...problems(401, 403, 404, 429) },
});

export const agentFileRoute = createRoute({
  method: "get",
  path: "/v1/agent/files/{ref}",
  operationId: "agentFile",
  tags: ["agent"],
  summary: "Download an input of a job this agent holds",
  description:
    "Only for a file named in the `inputs` of a job leased to this agent (`agentId` as in the lease). The agent verifies the hash itself.",
  security: bearer,
  middleware: requireRole("agent"),
  request: { params: RefParam, query: z.object({ agentId: z.string().min(1).max(128) }) },
  responses: {
    200: {
      description: "The bytes",
      content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } },
    },
    ...problems(401, 403, 404, 429),
  },
});

function userOf(principal: { kind: string; user?: string | null }): string {
  if (principal.kind === "agent" || !principal.user) {
    throw new ApiProblem("forbidden", "files need a user or admin token");
  }
  return principal.user;
}

export function filesRouter(deps: Deps) {
  const upload: RouteHandler<typeof uploadRoute> = async (c) => {
    const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== UPLOAD_MEDIA_TYPE) {
      throw new ApiProblem(
        "unsupported_media_type",
        `${type ? `Content-Type '${type.slice(0, 100)}' is not accepted` : "a body without a Content-Type is not accepted"}; send Content-Type: ${UPLOAD_MEDIA_TYPE}`,
        { field: "header.content-type", headers: { "accept-post": UPLOAD_MEDIA_TYPE } },
      );
    }
    const { sha256 } = c.req.valid("query");
    const header = c.req.valid("header")["x-content-sha256"];
    const expected = parseExpected(header, "header.x-content-sha256") ?? parseExpected(sha256, "query.sha256");
    const length = c.req.header("content-length");
    const declaredSize =
      length !== undefined && /^\d{1,16}$/.test(length) && !c.req.header("transfer-encoding")
        ? Number(length)
        : undefined;
    const stored = await uploadFile(deps, userOf(c.get("principal")), c.req.raw.body, { declaredSize, expected });
    c.header("location", `/v1/files/${stored.file}`);
    return c.json(stored, 201);
  };

  const compose: RouteHandler<typeof composeRoute> = async (c) => {
    const stored = await composeFile(deps, userOf(c.get("principal")), c.req.valid("json"));
    c.header("location", `/v1/files/${stored.file}`);
    return c.json(stored, 201);
  };

  const get: RouteHandler<typeof getFileRoute> = async (c) => {
    const found = await ownUpload(deps, userOf(c.get("principal")), c.req.valid("param").ref);
    c.header("cache-control", "private, no-cache");
    return c.json(found, 200);
  };

  const remove: RouteHandler<typeof deleteFileRoute> = async (c) => {
    await forgetUpload(deps, userOf(c.get("principal")), c.req.valid("param").ref);
    return c.body(null, 204);
  };

  const agentGet: RouteHandler<typeof agentFileRoute> = async (c) => {
    const principal = c.get("principal");
    if (principal.kind !== "agent") {
      throw new ApiProblem("forbidden", "this route needs an agent token");
    }
    const { ref } = c.req.valid("param");
    const notHeld = new ApiProblem("not_found", "no job this agent holds names this file as an input", {
      field: "ref",
    });
    if (!FileRef.safeParse(ref).success) {
      throw notHeld;
    }
    const leaseOwner = effectiveAgentId(principal.user, c.req.valid("query").agentId);
    if (!(await agentMayRead(deps, { cluster: principal.cluster, leaseOwner }, refHex(ref)))) {
      throw notHeld;
    }
    const blob = await deps.blobs.get(refHex(ref));
    if (!blob) {
      throw new ApiProblem("not_found", "the file's bytes are no longer stored", { field: "ref" });
    }
    return c.body(blob.body, 200, {
      "content-type": "application/octet-stream",
      "content-length": String(blob.size),
      "x-content-type-options": "nosniff",
      "cache-control": "no-store",
    }) as never;
  };

  return createRouter()
    .openapi(composeRoute, compose)
    .openapi(uploadRoute, upload)
    .openapi(getFileRoute, get)
    .openapi(deleteFileRoute, remove)
    .openapi(agentFileRoute, agentGet);
}
