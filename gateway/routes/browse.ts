/**
 * Browse handlers: thin, the use case is services/browse.ts.
 */
import type { RouteHandler } from "@hono/zod-openapi";
import type { DirListing, FileSlice } from "../../schemas/index.ts";
import type { Deps } from "../deps.ts";
import { browseJob } from "../services/browse.ts";
import * as routes from "./browse.routes.ts";
import { createRouter } from "./common.ts";

export function browseRouter(deps: Deps) {
  const dir: RouteHandler<typeof routes.jobDir> = async (c) => {
    const { id } = c.req.valid("param");
    const { path, attempt } = c.req.valid("query");
    const listing = await browseJob(deps, c.get("principal"), id, path, { op: "dir" }, c.req.raw.signal, attempt);
    return c.json(listing as DirListing, 200);
  };
  const read =
    (op: "head" | "tail"): RouteHandler<typeof routes.jobHead> =>
    async (c) => {
      const { id } = c.req.valid("param");
      const { path, bytes, attempt } = c.req.valid("query");
      const slice = await browseJob(deps, c.get("principal"), id, path, { op, bytes }, c.req.raw.signal, attempt);
      return c.json(slice as FileSlice, 200);
    };
  return createRouter()
    .openapi(routes.jobDir, dir)
    .openapi(routes.jobHead, read("head"))
    .openapi(routes.jobTail, read("tail"));
}
