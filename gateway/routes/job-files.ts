/**
 * Job outputs handlers: the agent's upload, the owner's list and download (gateway/files/job-outputs.ts).
 */
import type { RouteHandler } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv, Deps } from "../deps.ts";
import { listOutputs, openOutput, storeOutput } from "../files/job-outputs.ts";
import { requireRole } from "../middleware/auth.ts";
import { validationProblem } from "../problem.ts";
import { createRouter } from "./common.ts";
import * as routes from "./job-files.routes.ts";

/** The agent's upload path: streamed, capped by the output limits rather than the JSON body limit. */
export const OUTPUT_UPLOAD_PATH = /^\/v1\/agent\/jobs\/[^/]+\/outputs$/;

export function jobFilesRouter(deps: Deps) {
  const upload: RouteHandler<typeof routes.agentUploadOutput> = async (c) => {
    const { id } = c.req.valid("param");
    return c.json(await storeOutput(deps, c.get("principal"), id, c.req.valid("query"), c.req.raw.body), 200);
  };

  const list: RouteHandler<typeof routes.listJobFiles> = async (c) => {
    const { id } = c.req.valid("param");
    return c.json(await listOutputs(deps, c.get("principal"), id, c.req.valid("query")), 200);
  };

  const serve = async (c: Context<AppEnv>, id: string, path: string, query: { attempt?: number }) => {
    const file = await openOutput(deps, c.get("principal"), id, path, c.req.header("range"), query);
    return c.body(file.body, file.status, file.headers);
  };

  const download: RouteHandler<typeof routes.downloadJobFile> = async (c) => {
    const { id, path } = c.req.valid("param");
    return (await serve(c, id, path, c.req.valid("query"))) as never;
  };

  const router = createRouter()
    .openapi(routes.agentUploadOutput, upload)
    .openapi(routes.listJobFiles, list)
    .openapi(routes.downloadJobFile, download);
  // The same download with the path's '/' left as they are (curl, a browser): the documented
  // `{path}` is one segment, `%2F`-encoded by generated clients.
  router.get("/v1/jobs/:id/files/:path{.+/.+}", requireRole("user"), (c) => {
    const query = routes.JobFilesQuery.safeParse(c.req.query());
    if (!query.success) {
      throw validationProblem(query.error, "query", routes.JobFilesQuery);
    }
    return serve(c, c.req.param("id"), c.req.param("path"), query.data);
  });
  return router;
}
