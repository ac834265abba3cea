/**
 * Job outputs handlers: the agent's upload, the owner's list and download (gateway/files/job-outputs.ts).
 */
import type { RouteHandler } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv, Deps } from "../deps.ts";
import { listOutputs, openOutput, storeOutput } from "../files/job-outputs.ts";
import { requireRole } from "../middleware/auth.ts";
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
    return c.json({ items: await listOutputs(deps, c.get("principal"), id) }, 200);
  };

  const serve = async (c: Context<AppEnv>, id: string, path: string) => {
    const file = await openOutput(deps, c.get("principal"), id, path, c.req.header("range"));
    return c.body(file.body, file.status, file.headers);
  };

  const download: RouteHandler<typeof routes.downloadJobFile> = async (c) => {
    const { id, path } = c.req.valid("param");
    return (await serve(c, id, path)) as never;
  };

  const router = createRouter()
    .openapi(routes.agentUploadOutput, upload)
    .openapi(routes.listJobFiles, list)
    .openapi(routes.downloadJobFile, download);
  // The same download with the path's '/' left as they are (curl, a browser): the documented
  // `{path}` is one segment, `%2F`-encoded by generated clients.
  router.get("/v1/jobs/:id/files/:path{.+/.+}", requireRole("user"), (c) =>
    serve(c, c.req.param("id"), c.req.param("path")),
  );
  return router;
}
