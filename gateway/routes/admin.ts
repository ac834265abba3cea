/**
 * Admin API: users, tokens, clusters, grants.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ClusterConfig, CreateToken, CreatedToken, Grant, TokenInfo, User } from "../../schemas/index.ts";
import type { Deps } from "../deps.ts";
import { requireRole } from "../middleware/auth.ts";
import { ApiProblem } from "../problem.ts";
import { issueToken, saveGrant, saveUser } from "../services/admin.ts";
import { listClusters, upsertCluster } from "../store/clusters.ts";
import { deleteGrant, listGrants } from "../store/grants.ts";
import { listTokens, revokeToken } from "../store/tokens.ts";
import { listUsers } from "../store/users.ts";
import { IdParam, bearer, createRouter, problems } from "./common.ts";

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const body = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } }, required: true });
const adminRoute = { tags: ["admin"], security: bearer, middleware: requireRole("admin") };

const putUser = createRoute({
  ...adminRoute,
  method: "post",
  path: "/v1/admin/users",
  operationId: "adminUpsertUser",
  summary: "Create or update a user; `disabled: true` refuses all their tokens and sign-ins",
  request: { body: body(User) },
  responses: { 200: json(User, "The user"), ...problems(401, 403, 422) },
});
const getUsers = createRoute({
  ...adminRoute,
  method: "get",
  path: "/v1/admin/users",
  operationId: "adminListUsers",
  summary: "List users",
  request: { query: z.strictObject({}) },
  responses: { 200: json(z.object({ items: z.array(User) }), "Users"), ...problems(401, 403) },
});
const postToken = createRoute({
  ...adminRoute,
  method: "post",
  path: "/v1/admin/tokens",
  operationId: "adminCreateToken",
  summary: "Create a token (shown once)",
  request: { body: body(CreateToken) },
  responses: { 201: json(CreatedToken, "The new token; store it now"), ...problems(401, 403, 404, 422) },
});
const getTokens = createRoute({
  ...adminRoute,
  method: "get",
  path: "/v1/admin/tokens",
  operationId: "adminListTokens",
  summary: "List tokens (never their secrets)",
  request: { query: z.strictObject({ user: z.string().max(32).optional() }) },
  responses: { 200: json(z.object({ items: z.array(TokenInfo) }), "Tokens"), ...problems(401, 403) },
});
const deleteToken = createRoute({
  ...adminRoute,
  method: "delete",
  path: "/v1/admin/tokens/{id}",
  operationId: "adminRevokeToken",
  summary: "Revoke a token",
  request: { params: IdParam },
  responses: { 204: { description: "Revoked" }, ...problems(401, 403, 404) },
});
const putCluster = createRoute({
  ...adminRoute,
  method: "post",
  path: "/v1/admin/clusters",
  operationId: "adminUpsertCluster",
  summary: "Register or update a cluster",
  request: { body: body(ClusterConfig) },
  responses: { 200: json(ClusterConfig, "The cluster"), ...problems(401, 403, 422) },
});
const getClusters = createRoute({
  ...adminRoute,
  method: "get",
  path: "/v1/admin/clusters",
  operationId: "adminListClusters",
  summary: "List registered clusters with their configuration",
  request: { query: z.strictObject({}) },
  responses: { 200: json(z.object({ items: z.array(ClusterConfig) }), "Clusters"), ...problems(401, 403) },
});
const putGrant = createRoute({
  ...adminRoute,
  method: "post",
  path: "/v1/admin/grants",
  operationId: "adminUpsertGrant",
  summary: "Grant a user a cluster and partitions",
  request: { body: body(Grant) },
  responses: { 200: json(Grant, "The grant"), ...problems(401, 403, 404, 422) },
});
const getGrants = createRoute({
  ...adminRoute,
  method: "get",
  path: "/v1/admin/grants",
  operationId: "adminListGrants",
  summary: "List grants",
  request: { query: z.strictObject({ user: z.string().max(32).optional() }) },
  responses: { 200: json(z.object({ items: z.array(Grant) }), "Grants"), ...problems(401, 403) },
});
const removeGrant = createRoute({
  ...adminRoute,
  method: "delete",
  path: "/v1/admin/grants/{user}/{cluster}",
  operationId: "adminDeleteGrant",
  summary: "Remove a grant",
  request: {
    params: z.object({
      user: z
        .string()
        .max(32)
        .openapi({ param: { name: "user", in: "path" } }),
      cluster: z
        .string()
        .max(32)
        .openapi({ param: { name: "cluster", in: "path" } }),
    }),
  },
  responses: { 204: { description: "Removed" }, ...problems(401, 403, 404) },
});

export function adminRouter(deps: Deps) {
  const app = createRouter();

  app.openapi(putUser, async (c) => c.json(await saveUser(deps, c.get("principal"), c.req.valid("json")), 200));
  app.openapi(getUsers, async (c) => c.json({ items: await listUsers(deps.db) }, 200));

  app.openapi(postToken, async (c) => c.json(await issueToken(deps, c.req.valid("json")), 201));
  app.openapi(getTokens, async (c) => c.json({ items: await listTokens(deps.db, c.req.valid("query").user) }, 200));
  app.openapi(deleteToken, async (c) => {
    if (!(await revokeToken(deps.db, c.req.valid("param").id, deps.now()))) {
      throw new ApiProblem("not_found", "no such token", { field: "path.id" });
    }
    return c.body(null, 204);
  });

  app.openapi(putCluster, async (c) => {
    const config = c.req.valid("json");
    await upsertCluster(deps.db, config, deps.now());
    return c.json(config, 200);
  });
  app.openapi(getClusters, async (c) => {
    const clusters = await listClusters(deps.db);
    return c.json({ items: [...clusters.values()].map((r) => r.config) }, 200);
  });

  app.openapi(putGrant, async (c) => c.json(await saveGrant(deps, c.req.valid("json")), 200));
  app.openapi(getGrants, async (c) => c.json({ items: await listGrants(deps.db, c.req.valid("query").user) }, 200));
  app.openapi(removeGrant, async (c) => {
    const { user, cluster } = c.req.valid("param");
    if (!(await deleteGrant(deps.db, user, cluster))) {
      throw new ApiProblem("not_found", "no such grant");
    }
    return c.body(null, 204);
  });

  return app;
}
